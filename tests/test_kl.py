"""KL(pi || pi_sft): sequence log-probabilities, the Monte Carlo estimator against exact sums on
tiny vocabularies, best-of-N's bound and estimate, and the stage."""

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from experiment_world import MAX_PROMPT_TOKENS, TEMPLATE, write_world
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from rewardcond.kl.estimators import (
    best_of_n_kl_bound,
    best_of_n_kl_estimate,
    exact_sequence_kl,
    per_prompt_kl,
    sample_log_ratios,
)
from rewardcond.kl.logprobs import (
    BEST_OF_N_ESTIMATE,
    KL_COLUMNS,
    MONTE_CARLO,
    check_same_vocabulary,
    completion_logprobs,
)
from rewardcond.kl.stage import run_best_of_n_kl, run_kl
from rewardcond.kl.summary import summarize_kl
from rewardcond.methods import get_method
from rewardcond.methods.tokens import GOOD
from rewardcond.modeling import RewardConditionedLM
from rewardcond.stats import bootstrap_ci
from rewardcond.summaries import GenerateSettings, generate_method
from rewardcond.trainset import draw_eval_prompts

PROMPTS = [
    "SUBREDDIT: r/relationships\n\nTITLE: My roommate never cleans\n\nTL;DR:",
    "TL;DR:",
    "TITLE: Paying off debt\n\nTL;DR:",
    "the quick brown fox",
]
TARGETS = [0.0, 1.0, -2.0, 5.0]


def completions_of(tokenizer):
    """Completions of different lengths, EOS-terminated or not (as generation records them)."""
    eos = tokenizer.eos_token_id
    texts = [" roommate is messy", " debt", " the quick brown fox jumps", " rent"]
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    return [ids[0] + [eos], ids[1], ids[2] + [eos], ids[3]]


def manual_logprob(model, tokenizer, prompt, completion, target=None):
    """log p(completion | prompt) from one unpadded forward pass, the slot built by hand."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = torch.tensor([prompt_ids + completion])
    with torch.no_grad():
        if isinstance(model, RewardConditionedLM):
            embeds = model.get_input_embeddings()(ids)
            scaled = torch.tensor([[[float(model.scaler.transform([target])[0])]]])
            slot = model.reward_embedding(scaled)
            logits = model.language_model(inputs_embeds=torch.cat([slot, embeds], 1)).logits[:, 1:]
        else:
            logits = model(input_ids=ids).logits
    logprobs = torch.log_softmax(logits[0, :-1].double(), -1)
    positions = range(len(prompt_ids), ids.shape[1])
    return sum(float(logprobs[t - 1, ids[0, t]]) for t in positions)


def test_conditioned_logprobs_equal_a_manual_forward_with_the_slot(conditioned):
    model, tokenizer = conditioned
    completions = completions_of(tokenizer)
    got = completion_logprobs(model, tokenizer, PROMPTS, completions, TARGETS, batch_size=3)
    expected = [
        manual_logprob(model, tokenizer, p, c, t)
        for p, c, t in zip(PROMPTS, completions, TARGETS, strict=True)
    ]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # The slot matters: another target gives other log-probabilities.
    other = completion_logprobs(model, tokenizer, PROMPTS, completions, [9.0] * 4)
    assert np.abs(other - got).min() > 1e-3


def test_plain_logprobs_count_the_completion_and_its_eos_not_the_prompt(base_and_tokenizer):
    model, tokenizer = base_and_tokenizer
    completions = completions_of(tokenizer)
    got = completion_logprobs(model, tokenizer, PROMPTS, completions)
    expected = [
        manual_logprob(model, tokenizer, p, c) for p, c in zip(PROMPTS, completions, strict=True)
    ]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # The EOS is counted: the finished completion scores below the same tokens without it.
    eos = tokenizer.eos_token_id
    without_eos = completion_logprobs(model, tokenizer, PROMPTS[:1], [completions[0][:-1]])
    assert completions[0][-1] == eos
    assert got[0] < without_eos[0]


@pytest.mark.parametrize("kind", ["plain", "conditioned"])
def test_logprobs_do_not_depend_on_padding_or_batching(base_and_tokenizer, kind):
    base, tokenizer = base_and_tokenizer
    model = RewardConditionedLM.from_base(base).eval() if kind == "conditioned" else base
    targets = TARGETS if kind == "conditioned" else None
    completions = completions_of(tokenizer)
    together = completion_logprobs(model, tokenizer, PROMPTS, completions, targets, batch_size=4)
    for i in range(len(PROMPTS)):
        alone = completion_logprobs(
            model,
            tokenizer,
            [PROMPTS[i]],
            [completions[i]],
            None if targets is None else [targets[i]],
            batch_size=1,
        )
        assert abs(alone[0] - together[i]) < 1e-4


def test_a_token_the_model_cannot_emit_has_probability_zero(base_and_tokenizer):
    model, tokenizer = base_and_tokenizer
    vocab = model.get_input_embeddings().num_embeddings
    completions = completions_of(tokenizer)
    completions[1] = completions[1] + [vocab + 1]
    got = completion_logprobs(model, tokenizer, PROMPTS, completions, batch_size=4)
    assert np.isneginf(got[1])
    assert np.isfinite(got[[0, 2, 3]]).all()


def test_logprobs_reject_bad_input(base_and_tokenizer):
    model, tokenizer = base_and_tokenizer
    with pytest.raises(ValueError, match="completions: expected one per prompt \\(4\\), got 1"):
        completion_logprobs(model, tokenizer, PROMPTS, [[1]])
    with pytest.raises(ValueError, match="completions\\[0\\] is empty"):
        completion_logprobs(model, tokenizer, PROMPTS[:1], [[]])
    with pytest.raises(ValueError, match="target_rewards must be None"):
        completion_logprobs(model, tokenizer, PROMPTS[:1], [[1]], [0.0])
    with pytest.raises(ValueError, match="exceed the model's context of 128 tokens"):
        completion_logprobs(model, tokenizer, PROMPTS[:1], [[1] * 120])


def test_a_model_against_itself_has_kl_exactly_zero(tiny_tokenizer):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(_gpt2_config(len(tiny_tokenizer), tiny_tokenizer.eos_token_id)).eval()
    copied = copy.deepcopy(model)
    for reference in (model, copied):
        rows = sample_log_ratios(
            model,
            tiny_tokenizer,
            PROMPTS,
            reference,
            tiny_tokenizer,
            PROMPTS,
            samples=3,
            max_new_tokens=6,
            batch_size=5,
            seed=1,
        )
        assert len(rows) == 12
        assert (rows["log_ratio"] == 0.0).all()
        assert (per_prompt_kl(rows)["kl"] == 0.0).all()
        assert (per_prompt_kl(rows)["kl_k3"] == 0.0).all()
    other = GPT2LMHeadModel(_gpt2_config(len(tiny_tokenizer), tiny_tokenizer.eos_token_id))
    rows = sample_log_ratios(
        model, tiny_tokenizer, PROMPTS, other.eval(), tiny_tokenizer, PROMPTS,
        samples=3, max_new_tokens=6, seed=1,
    )  # fmt: skip
    assert (rows["log_ratio"] != 0.0).all()


# --- exact sums on a tiny vocabulary ------------------------------------------------------------

WORDS = ["<eos>", "a", "b", "c", "d"]


@pytest.fixture(scope="module")
def word_tokenizer():
    """Words of WORDS (ids 0..4), `<eos>` the EOS and pad."""
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="a"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<eos>")


def _gpt2_config(vocab, eos, n_embd=16, n_head=2):
    return GPT2Config(
        vocab_size=vocab,
        n_positions=128,
        n_embd=n_embd,
        n_layer=1,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=0.3,
        bos_token_id=eos,
        eos_token_id=eos,
    )


def context_free(logits):
    """A GPT-2 whose next-token distribution is softmax(`logits`) whatever the context: the final
    layer norm outputs its bias only, and the (tied) embedding matrix is the identity."""
    vocab = len(logits)
    model = GPT2LMHeadModel(_gpt2_config(vocab, 0, n_embd=vocab, n_head=1)).eval()
    with torch.no_grad():
        model.transformer.wte.weight.copy_(torch.eye(vocab))
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(torch.tensor(logits))
    return model


def test_context_free_models_against_a_hand_computed_kl(word_tokenizer):
    # Each step draws a token from p (policy) or q (sft), stopping at <eos> (id 0) or after two
    # tokens. The log-ratio of a sequence is a sum of i.i.d. per-step log-ratios over its
    # E[steps] = 1 + (1 - p_eos) steps, so by Wald's identity KL = (2 - p_eos) KL(p || q).
    p_logits, q_logits = [1.0, 0.0, -0.5, 1.0, 0.2], [-0.5, 0.3, 0.0, 0.0, -0.4]
    p, q = (
        torch.softmax(torch.tensor(p_logits).double(), 0),
        torch.softmax(torch.tensor(q_logits).double(), 0),
    )
    by_hand = float((2 - p[0]) * (p * (p / q).log()).sum())
    assert by_hand == pytest.approx(0.43086123, abs=1e-8)  # also by summing all 21 outcomes
    policy, reference = context_free(p_logits), context_free(q_logits)
    prompt = "a b c"
    exact = exact_sequence_kl(
        policy, word_tokenizer, prompt, reference, word_tokenizer, prompt, max_new_tokens=2
    )
    assert exact == pytest.approx(by_hand, abs=1e-6)
    rows = sample_log_ratios(
        policy, word_tokenizer, [prompt], reference, word_tokenizer, [prompt],
        samples=4000, max_new_tokens=2, batch_size=500, seed=0,
    )  # fmt: skip
    assert rows["n_tokens"].max() == 2
    assert rows["finished"].mean() == pytest.approx(float(p[0] + (1 - p[0]) * p[0]), abs=0.03)
    estimate = per_prompt_kl(rows)["kl"].iloc[0]
    low, high = bootstrap_ci(rows["log_ratio"], level=0.99, seed=0)
    assert low < by_hand < high
    assert high - low < 0.08
    assert estimate == pytest.approx(rows["log_ratio"].mean())


def test_samples_the_reference_cannot_emit_are_counted_and_infinite(word_tokenizer):
    policy_tokenizer = copy.deepcopy(word_tokenizer)
    policy_tokenizer.add_tokens(["<|good|>"], special_tokens=True)
    # The policy emits its extra token 5 with probability about 0.3 a step; sft has no id 5.
    policy = context_free([0.0, 0.0, 0.0, 0.0, 0.0, 0.8])
    reference = context_free([0.0, 0.0, 0.0, 0.0, 0.0])
    rows = sample_log_ratios(
        policy, policy_tokenizer, ["a", "b c"], reference, word_tokenizer, ["a", "b c"],
        samples=4, max_new_tokens=1, seed=0,
    )  # fmt: skip
    assert rows["unsupported"].any() and not rows["unsupported"].all()
    assert np.isposinf(rows.loc[rows["unsupported"], "log_ratio"]).all()
    assert np.isfinite(rows.loc[~rows["unsupported"], "log_ratio"]).all()
    per_prompt = per_prompt_kl(rows)
    assert list(per_prompt["n_unsupported"]) == list(rows.groupby("prompt")["unsupported"].sum())
    assert (np.isposinf(per_prompt["kl"]) == (per_prompt["n_unsupported"] > 0)).all()
    exact = exact_sequence_kl(
        policy, policy_tokenizer, "a", reference, word_tokenizer, "a", max_new_tokens=1
    )
    assert exact == math.inf


def test_monte_carlo_converges_to_the_exact_kl_of_a_conditioned_model(word_tokenizer):
    torch.manual_seed(1)
    base = GPT2LMHeadModel(_gpt2_config(len(WORDS), 0)).eval()
    policy = RewardConditionedLM.from_base(base).eval()
    torch.nn.init.normal_(policy.reward_embedding.weight, std=0.5)
    reference = GPT2LMHeadModel(_gpt2_config(len(WORDS), 0)).eval()
    prompts = ["a b", "c d a"]
    for prompt, target in zip(prompts, [-1.0, 2.0], strict=True):
        exact = exact_sequence_kl(
            policy, word_tokenizer, prompt, reference, word_tokenizer, prompt, target,
            max_new_tokens=3,
        )  # fmt: skip
        other_target = exact_sequence_kl(
            policy, word_tokenizer, prompt, reference, word_tokenizer, prompt, target + 3,
            max_new_tokens=3,
        )  # fmt: skip
        assert exact > 0.05 and abs(other_target - exact) > 1e-3
        rows = sample_log_ratios(
            policy, word_tokenizer, [prompt], reference, word_tokenizer, [prompt], [target],
            samples=4000, max_new_tokens=3, batch_size=500, seed=3,
        )  # fmt: skip
        low, high = bootstrap_ci(rows["log_ratio"], level=0.99, seed=0)
        assert low < exact < high, (prompt, exact, low, high)
    itself = exact_sequence_kl(
        reference, word_tokenizer, "a b", reference, word_tokenizer, "a b", max_new_tokens=3
    )
    assert itself == 0.0


def test_exact_sum_refuses_a_large_vocabulary(tiny_tokenizer):
    model = GPT2LMHeadModel(_gpt2_config(len(tiny_tokenizer), tiny_tokenizer.eos_token_id))
    with pytest.raises(ValueError, match="max_prefixes=100000: enumerating 3 tokens"):
        exact_sequence_kl(model, tiny_tokenizer, "a", model, tiny_tokenizer, "a", max_new_tokens=3)


# --- best-of-N ----------------------------------------------------------------------------------


def test_best_of_n_bound():
    assert best_of_n_kl_bound(1) == 0.0
    assert best_of_n_kl_bound(4) == pytest.approx(math.log(4) - 0.75)
    assert best_of_n_kl_bound(16) == pytest.approx(1.8350887222397811, abs=1e-12)
    with pytest.raises(ValueError, match="integer n >= 1, got 0"):
        best_of_n_kl_bound(0)


def exact_best_of_n_kl(reference: np.ndarray, n: int) -> float:
    """KL(best-of-n || reference) of a distribution over outcomes listed by increasing reward:
    best-of-n picks outcome i with probability F_i^n - F_{i-1}^n (the largest of n draws)."""
    cdf = np.cumsum(reference)
    picked = cdf**n - np.concatenate([[0.0], cdf[:-1]]) ** n
    keep = picked > 0
    return float((picked[keep] * np.log(picked[keep] / reference[keep])).sum())


@pytest.mark.parametrize("n", [2, 4, 16])
@pytest.mark.parametrize("epsilon", [0.01, 0.2, 0.7])
def test_best_of_n_estimate_is_exact_for_an_atom_over_a_continuum(n, epsilon):
    # The reference: 200,000 outcomes of equal tiny mass (nearly a continuum), then the best
    # outcome with mass epsilon.
    many = 200_000
    reference = np.concatenate([np.full(many, (1 - epsilon) / many), [epsilon]])
    exact = exact_best_of_n_kl(reference, n)
    assert best_of_n_kl_estimate(n, math.log(epsilon)) == pytest.approx(exact, abs=1e-4)
    assert exact < best_of_n_kl_bound(n)


def test_best_of_n_estimate_limits():
    for n in (1, 4, 16):
        assert best_of_n_kl_estimate(n, -200.0) == pytest.approx(best_of_n_kl_bound(n), abs=1e-12)
        assert best_of_n_kl_estimate(n, 0.0) == 0.0
    grid = np.log(np.linspace(1e-6, 1, 500))
    values = best_of_n_kl_estimate(16, grid)
    assert values.shape == (500,)
    assert (values <= best_of_n_kl_bound(16)).all() and (values >= 0).all()
    # A continuous reference: no atom at all, the bound is exact.
    assert exact_best_of_n_kl(np.full(100_000, 1e-5), 4) == pytest.approx(
        best_of_n_kl_bound(4), abs=1e-3
    )


# --- the stage ----------------------------------------------------------------------------------

STAGE_TARGETS = [
    {"name": "q50", "value": 0.5, "in_range": True},
    {"name": "q100", "value": 2.0, "in_range": True},
]
N_PROMPTS = 3
SETTINGS = GenerateSettings(max_new_tokens=5, batch_size=8, max_prompt_tokens=MAX_PROMPT_TOKENS)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenizer):
    """Untrained models saved as each method saves them, eval prompts and targets."""
    root = tmp_path_factory.mktemp("world")
    paths = write_world(root, tiny_tokenizer)
    draw_eval_prompts(
        paths["posts"], N_PROMPTS, seed=0, output_path=str(root / "eval_prompts.parquet")
    )
    (root / "targets.json").write_text(json.dumps(STAGE_TARGETS))
    trainset = pd.DataFrame({"reward": [0.0, 1.0, 2.0]})
    torch.manual_seed(0)
    for method in ("scalar", "sft", "tokens", "text"):
        model, tokenizer = get_method(method).build_model(paths["base"], trainset)
        if method == "scalar":
            torch.nn.init.normal_(model.reward_embedding.weight, std=1.0)
        if method == "tokens":
            # Make <|good|> likely (about 5% a step): its embedding and the final layer norm's
            # bias along one direction, so that the policy emits a token sft cannot.
            direction = torch.nn.functional.normalize(torch.randn(32), dim=0) * 1.68
            with torch.no_grad():
                model.transformer.wte.weight[tokenizer.convert_tokens_to_ids(GOOD)] = direction
                model.transformer.ln_f.bias += direction
        model.save_pretrained(root / method)
        tokenizer.save_pretrained(root / method)
    return root


def _run(world, tmp_path, method, seed=0):
    return run_kl(
        get_method(method),
        model_path=str(world / method),
        sft_path=str(world / "sft"),
        prompts_path=str(world / "eval_prompts.parquet"),
        targets_path=str(world / "targets.json"),
        output_path=str(tmp_path / f"{method}.parquet"),
        template=TEMPLATE,
        settings=SETTINGS,
        samples=3,
        seed=seed,
        device="cpu",
    )


def test_stage_writes_per_prompt_kl_per_condition(world, tmp_path):
    table = _run(world, tmp_path, "scalar")
    assert table.equals(pd.read_parquet(tmp_path / "scalar.parquet"))
    assert list(table.columns) == KL_COLUMNS
    prompts = pd.read_parquet(world / "eval_prompts.parquet")
    assert len(table) == N_PROMPTS * len(STAGE_TARGETS)
    assert list(table["target_name"]) == ["q50"] * N_PROMPTS + ["q100"] * N_PROMPTS
    assert list(table["post_id"]) == list(prompts["post_id"]) * 2
    assert (table["estimator"] == MONTE_CARLO).all() and table["kl_bound"].isna().all()
    assert (table["n_samples"] == 3).all() and (table["n_unsupported"] == 0).all()
    assert np.isfinite(table["kl"]).all() and (table["kl"] != 0).all()
    np.testing.assert_allclose(table["kl"], table["logp_policy"] - table["logp_sft"], atol=1e-9)
    assert table["mean_tokens"].between(1, 5).all()
    # Seeded: the same table again, and the targets see the same sampling seed.
    assert table.equals(_run(world, tmp_path, "scalar"))
    assert not table.equals(_run(world, tmp_path, "scalar", seed=1))


@pytest.mark.parametrize("method", ["scalar", "text", "tokens"])
def test_stage_prompts_the_policy_as_generation_does_and_sft_plainly(
    world, tmp_path, monkeypatch, method
):
    import rewardcond.kl.stage

    calls = []
    real = rewardcond.kl.stage.sample_log_ratios

    def spy(policy, tokenizer, policy_prompts, reference, ref_tokenizer, ref_prompts, *a, **k):
        calls.append((policy_prompts, ref_prompts, a[0] if a else None))
        return real(
            policy, tokenizer, policy_prompts, reference, ref_tokenizer, ref_prompts, *a, **k
        )

    monkeypatch.setattr(rewardcond.kl.stage, "sample_log_ratios", spy)
    _run(world, tmp_path, method)
    generated = generate_method(
        get_method(method),
        model_path=str(world / method),
        prompts_path=str(world / "eval_prompts.parquet"),
        targets_path=str(world / "targets.json"),
        output_path=str(tmp_path / "generated.parquet"),
        template=TEMPLATE,
        settings=GenerateSettings(max_new_tokens=5, max_prompt_tokens=MAX_PROMPT_TOKENS),
        seed=0,
        device="cpu",
    )
    conditions = list(generated["target_name"].unique())
    assert len(calls) == len(conditions)
    for (policy_prompts, reference_prompts, rewards), name in zip(calls, conditions, strict=True):
        plain = [prompt.split("SUBREDDIT:", 1)[1] for prompt in policy_prompts]
        prefixes = {prompt.split("SUBREDDIT:", 1)[0] for prompt in policy_prompts}
        assert reference_prompts == ["SUBREDDIT:" + prompt for prompt in plain]
        target = {t["name"]: t["value"] for t in STAGE_TARGETS}.get(name)
        if method == "scalar":
            assert prefixes == {""} and rewards == [target] * N_PROMPTS
        elif method == "text":
            text = get_method("text")
            text.load_model(str(world / "text"))
            assert prefixes == {text.prefix(target)} and rewards is None
        else:
            assert prefixes == {GOOD} and rewards is None


def test_stage_gives_sft_exactly_zero(world, tmp_path):
    table = _run(world, tmp_path, "sft")
    assert list(table["target_name"]) == ["none"] * N_PROMPTS
    assert table["target_reward"].isna().all()
    assert (table["kl"] == 0.0).all() and (table["kl_k3"] == 0.0).all()


def test_stage_samples_text_with_its_prefix_and_counts_unsupported_tokens(world, tmp_path):
    text = _run(world, tmp_path, "text")
    assert list(text["target_name"].unique()) == ["q50", "q100"]
    assert np.isfinite(text["kl"]).all() and (text["kl"] != 0).all()
    tokens = _run(world, tmp_path, "tokens")
    # The untrained `tokens` model emits its new <|good|>/<|bad|> ids, which sft cannot.
    unsupported = tokens["n_unsupported"] > 0
    assert unsupported.any()
    assert np.isposinf(tokens.loc[unsupported, "kl"]).all()
    assert np.isfinite(tokens.loc[~unsupported, "kl"]).all()
    summary = summarize_kl(tokens)
    assert summary["kl"].iloc[0] == math.inf and summary["kl_low"].isna().all()
    assert summary["n_unsupported"].iloc[0] == tokens["n_unsupported"].sum()


def test_kl_needs_the_same_token_ids(tiny_tokenizer):
    class Vocabulary:
        def __init__(self, vocab):
            self.vocab = vocab

        def get_vocab(self):
            return self.vocab

    vocab = tiny_tokenizer.get_vocab()
    # More tokens on top (as `tokens` adds its control tokens) are fine ...
    check_same_vocabulary(Vocabulary(vocab | {"<|good|>": len(vocab)}), tiny_tokenizer)
    # ... a token under another id is not.
    shifted = Vocabulary({token: index + 1 for token, index in vocab.items()})
    first = min(vocab, key=vocab.get)
    with pytest.raises(
        ValueError, match=f"policy's tokenizer gives token {first!r} the id 1, sft's gives it 0"
    ):
        check_same_vocabulary(shifted, tiny_tokenizer)


def test_best_of_n_stage(world, tmp_path):
    generations = tmp_path / "bon4.parquet"
    method = get_method("bon4")
    prompts = pd.read_parquet(world / "eval_prompts.parquet")
    table = pd.DataFrame(
        {
            "method": "bon4",
            "post_id": list(prompts["post_id"]) * 2,
            "target_name": "none",
            "target_reward": np.nan,
            "sample": [0] * N_PROMPTS + [1] * N_PROMPTS,
            "text": [" roommate is messy", " debt", " the quick brown fox"] * 2,
            "n_tokens": [3, 1, 4] * 2,
            "finished": [True, False, True, True, True, False],
            "n_candidates": 4,
        }
    )
    table.to_parquet(generations)
    kl = run_best_of_n_kl(
        method,
        generations_path=str(generations),
        sft_path=str(world / "sft"),
        prompts_path=str(world / "eval_prompts.parquet"),
        output_path=str(tmp_path / "kl_bon4.parquet"),
        template=TEMPLATE,
        settings=SETTINGS,
        device="cpu",
    )
    assert list(kl.columns) == KL_COLUMNS
    assert list(kl["post_id"]) == list(prompts["post_id"])
    assert (kl["estimator"] == BEST_OF_N_ESTIMATE).all()
    assert (kl["kl_bound"] == best_of_n_kl_bound(4)).all()
    assert (kl["n_samples"] == 2).all() and list(kl["n_finished"]) == [2, 1, 1]
    # By hand: sft's log-probability of each kept text (+ EOS when finished) after its prompt.
    sft, tokenizer = get_method("sft").load_model(str(world / "sft"))
    from rewardcond.batching import PromptTemplate
    from rewardcond.summaries import render_prompts

    rendered = render_prompts(prompts, tokenizer, PromptTemplate(TEMPLATE), MAX_PROMPT_TOKENS)
    eos = tokenizer.eos_token_id
    expected = []
    for i in range(N_PROMPTS):
        values = []
        for row in table[table["post_id"] == prompts["post_id"][i]].itertuples():
            ids = tokenizer(row.text, add_special_tokens=False)["input_ids"]
            ids = ids + [eos] if row.finished else ids
            values.append(manual_logprob(sft, tokenizer, rendered[i], ids))
        expected.append(np.mean(best_of_n_kl_estimate(4, np.array(values))))
        assert kl["logp_sft"][i] == pytest.approx(np.mean(values), abs=1e-4)
    np.testing.assert_allclose(kl["kl"], expected, rtol=1e-6)
    # The near-uniform untrained sft gives each text a tiny probability: the estimate is at the
    # bound.
    np.testing.assert_allclose(kl["kl"], best_of_n_kl_bound(4), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="method_options.bon: temperature=0.7, top_p=1.0"):
        run_best_of_n_kl(
            get_method("bon4", {"temperature": 0.7}),
            generations_path=str(generations),
            sft_path=str(world / "sft"),
            prompts_path=str(world / "eval_prompts.parquet"),
            output_path=str(tmp_path / "x.parquet"),
            template=TEMPLATE,
            settings=SETTINGS,
        )


def test_best_of_n_stage_on_real_generations(world, tmp_path):
    # Generations as generate_best_of_n writes them, with a fake reward model (longest wins).
    class Longest:
        def score(self, posts, summaries):
            return np.array([len(s) for s in summaries], dtype=float)

    generate_method(
        get_method("bon4"),
        model_path=str(world / "sft"),
        prompts_path=str(world / "eval_prompts.parquet"),
        targets_path=str(world / "targets.json"),
        output_path=str(tmp_path / "bon4.parquet"),
        template=TEMPLATE,
        settings=GenerateSettings(max_new_tokens=5, max_prompt_tokens=MAX_PROMPT_TOKENS),
        seed=0,
        device="cpu",
        scorer=Longest(),
    )
    kl = run_best_of_n_kl(
        get_method("bon4"),
        generations_path=str(tmp_path / "bon4.parquet"),
        sft_path=str(world / "sft"),
        prompts_path=str(world / "eval_prompts.parquet"),
        output_path=str(tmp_path / "kl.parquet"),
        template=TEMPLATE,
        settings=SETTINGS,
        device="cpu",
    )
    assert len(kl) == N_PROMPTS and np.isfinite(kl["logp_sft"]).all()
    assert (kl["kl"] <= best_of_n_kl_bound(4)).all()


def test_summarize_kl_gives_the_mean_and_a_bootstrap_interval_over_prompts():
    table = pd.DataFrame(
        {
            "method": "scalar",
            "target_name": ["q50"] * 4 + ["q100"] * 4,
            "target_reward": [0.5] * 4 + [2.0] * 4,
            "estimator": MONTE_CARLO,
            "kl": [0.1, 0.2, 0.3, 0.6, 1.0, 1.0, 2.0, 4.0],
            "kl_bound": np.nan,
            "n_unsupported": 0,
        }
    )
    summary = summarize_kl(table, n_resamples=500, level=0.9, seed=3)
    assert list(summary["target_name"]) == ["q50", "q100"]
    assert list(summary["kl"]) == pytest.approx([0.3, 2.0])
    assert (summary["kl_low"][0], summary["kl_high"][0]) == bootstrap_ci(
        [0.1, 0.2, 0.3, 0.6], n_resamples=500, level=0.9, seed=3
    )
    assert list(summary["n_prompts"]) == [4, 4]
