"""Exact invariants of RewardConditionedLM, for every family in conftest.MODEL_FAMILIES.

CPU, fp32, greedy, tiny random models with a large initializer range (so a misplaced position,
mask or label shows up as a large difference). The tests marked `smollm2` (padding, KV cache,
positions, labels, save/load) also run on the real SmolLM2-135M when its folder exists.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from rewardcond.batching import RewardConditionedCollator, encode_example
from rewardcond.modeling import RewardConditionedConfig, RewardConditionedLM
from rewardcond.scalers import load_scaler, make_scaler

TEXTS = [
    "SUBREDDIT: r/personalfinance\n\nTITLE: Paying off debt\n\nTL;DR:",
    "TITLE: My roommate",
    "the quick brown fox jumps",
]
REWARDS = torch.tensor([0.5, -1.0, 2.0])


def encode(tokenizer, texts=TEXTS):
    return [tokenizer(text)["input_ids"] for text in texts]


def pad(rows, pad_id, side):
    """input_ids, attention_mask and text position ids (0 = first real token) for a padded batch."""
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), pad_id)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        where = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        input_ids[i, where] = torch.tensor(row)
        attention_mask[i, where] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids, attention_mask, position_ids


def real_part(tensor, attention_mask, row):
    return tensor[row][attention_mask[row].bool()]


@pytest.mark.smollm2
@pytest.mark.parametrize("explicit_positions", [False, True], ids=["derived", "explicit"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_padding_does_not_change_logits(
    conditioned, explicit_positions, attn_implementation, tolerance
):
    model, tokenizer = conditioned
    model.set_attn_implementation(attn_implementation)
    assert model.language_model.config._attn_implementation == attn_implementation
    rows = encode(tokenizer)
    with torch.no_grad():
        alone = [
            model(torch.tensor([row]), target_rewards=REWARDS[i : i + 1]).logits[0]
            for i, row in enumerate(rows)
        ]
        for side in ("left", "right"):
            input_ids, attention_mask, position_ids = pad(rows, tokenizer.pad_token_id, side)
            logits = model(
                input_ids,
                attention_mask=attention_mask,
                target_rewards=REWARDS,
                position_ids=position_ids if explicit_positions else None,
            ).logits
            assert logits.shape == (*input_ids.shape, len(tokenizer))
            for i, expected in enumerate(alone):
                got = real_part(logits, attention_mask, i)
                assert (got - expected).abs().max().item() <= tolerance, (side, i)
                assert torch.equal(got.argmax(-1), expected.argmax(-1))


def greedy(model, input_ids, attention_mask=None, target_rewards=REWARDS, **kwargs):
    output = model.generate(
        input_ids,
        attention_mask=attention_mask,
        target_rewards=target_rewards,
        max_new_tokens=8,
        min_new_tokens=8,
        do_sample=False,
        return_dict_in_generate=True,
        output_logits=True,
        pad_token_id=0,
        **kwargs,
    )
    return output.sequences[:, input_ids.shape[1] :], torch.stack(output.logits, 1)


@pytest.mark.smollm2
def test_generate_is_padding_invariant(conditioned, tolerance):
    model, tokenizer = conditioned
    rows = encode(tokenizer)
    input_ids, attention_mask, _ = pad(rows, tokenizer.pad_token_id, "left")
    tokens, logits = greedy(model, input_ids, attention_mask)
    for i, row in enumerate(rows):
        alone_tokens, alone_logits = greedy(model, torch.tensor([row]), None, REWARDS[i : i + 1])
        assert torch.equal(tokens[i], alone_tokens[0])
        assert (logits[i] - alone_logits[0]).abs().max().item() <= tolerance


@pytest.mark.smollm2
def test_kv_cache_matches_full_recomputation(conditioned, tolerance):
    model, tokenizer = conditioned
    input_ids, attention_mask, _ = pad(encode(tokenizer), tokenizer.pad_token_id, "left")
    cached_tokens, cached_logits = greedy(model, input_ids, attention_mask, use_cache=True)
    uncached_tokens, uncached_logits = greedy(model, input_ids, attention_mask, use_cache=False)

    sequence, mask = input_ids, attention_mask
    step_logits = []
    with torch.no_grad():
        for _ in range(8):
            logits = model(sequence, attention_mask=mask, target_rewards=REWARDS).logits[:, -1]
            step_logits.append(logits)
            sequence = torch.cat([sequence, logits.argmax(-1, keepdim=True)], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    recomputed_tokens = sequence[:, input_ids.shape[1] :]
    recomputed_logits = torch.stack(step_logits, 1)

    assert torch.equal(cached_tokens, recomputed_tokens)
    assert torch.equal(uncached_tokens, recomputed_tokens)
    assert (cached_logits - recomputed_logits).abs().max().item() <= tolerance
    assert (uncached_logits - recomputed_logits).abs().max().item() <= tolerance


@pytest.mark.smollm2
def test_manual_decoding_with_the_returned_cache(conditioned, tolerance):
    """Positions and masks are derived from the cache when the caller passes none."""
    model, tokenizer = conditioned
    input_ids, attention_mask, _ = pad(encode(tokenizer), tokenizer.pad_token_id, "left")
    next_ids = torch.tensor([[5], [6], [7]])
    with torch.no_grad():
        expected = model(
            torch.cat([input_ids, next_ids], 1),
            attention_mask=torch.cat([attention_mask, torch.ones_like(next_ids)], 1),
            target_rewards=REWARDS,
        ).logits[:, -1]
        cache = model(
            input_ids, attention_mask=attention_mask, target_rewards=REWARDS, use_cache=True
        ).cache
        assert cache.get_seq_length() == input_ids.shape[1] + 1
        step = model(
            next_ids,
            attention_mask=torch.cat([attention_mask, torch.ones_like(next_ids)], 1),
            cache=cache,
        ).logits[:, -1]
    assert (step - expected).abs().max().item() <= tolerance
    unpadded = torch.tensor(encode(tokenizer)[:1])
    with torch.no_grad():
        expected = model(torch.cat([unpadded, next_ids[:1]], 1), target_rewards=REWARDS[:1]).logits
        cache = model(unpadded, target_rewards=REWARDS[:1], use_cache=True).cache
        step = model(next_ids[:1], cache=cache).logits  # no mask, no positions
    assert (step[:, -1] - expected[:, -1]).abs().max().item() <= tolerance


def record_base_calls(model):
    """Record the position ids and attention masks the base model receives."""
    calls = []

    def hook(module, args, kwargs):
        calls.append(
            {
                "position_ids": kwargs["position_ids"].clone(),
                "attention_mask": kwargs["attention_mask"],
                "length": kwargs["inputs_embeds"].shape[1],
            }
        )

    return calls, model.language_model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.smollm2
@pytest.mark.parametrize("side", ["left", "right"])
def test_slot_at_position_zero_and_text_from_one(conditioned, side):
    model, tokenizer = conditioned
    rows = encode(tokenizer)
    input_ids, attention_mask, _ = pad(rows, tokenizer.pad_token_id, side)
    calls, handle = record_base_calls(model)
    with torch.no_grad():
        model(input_ids, attention_mask=attention_mask, target_rewards=REWARDS)
    handle.remove()
    (call,) = calls
    full_mask = call["attention_mask"]
    assert call["length"] == input_ids.shape[1] + 1
    assert torch.equal(full_mask[:, 0], torch.ones(3, dtype=full_mask.dtype))
    assert torch.equal(full_mask[:, 1:], attention_mask.to(full_mask.dtype))
    for i, row in enumerate(rows):
        positions = call["position_ids"][i][full_mask[i].bool()]
        assert positions.tolist() == list(range(len(row) + 1))


@pytest.mark.smollm2
def test_generated_token_k_is_at_prompt_len_plus_k(conditioned):
    model, tokenizer = conditioned
    rows = encode(tokenizer)
    input_ids, attention_mask, _ = pad(rows, tokenizer.pad_token_id, "left")
    calls, handle = record_base_calls(model)
    greedy(model, input_ids, attention_mask)
    handle.remove()
    prefill, *steps = calls
    assert prefill["length"] == input_ids.shape[1] + 1
    assert len(steps) == 7  # the 8th token is sampled from the 7th step's logits
    prompt_lengths = torch.tensor([len(row) for row in rows])
    for k, step in enumerate(steps, start=1):
        assert step["length"] == 1
        assert torch.equal(step["position_ids"][:, 0], prompt_lengths + k)


@pytest.mark.smollm2
def test_loss_equals_hand_computed_cross_entropy(conditioned):
    model, tokenizer = conditioned
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos  # the case where masking by token id would drop EOS
    pairs = [("TITLE: hi\n\nTL;DR:", " a messy roommate"), ("TL;DR:", " debt")]
    features = [encode_example(tokenizer, p, c, max_length=100) for p, c in pairs]
    for side in ("left", "right"):
        batch = RewardConditionedCollator(tokenizer, padding_side=side)(features)
        output = model(**batch, target_rewards=REWARDS[:2])
        terms = []
        for i, (prompt, completion) in enumerate(pairs):
            n_prompt = len(tokenizer(prompt)["input_ids"])
            targets = tokenizer(completion)["input_ids"] + [eos]
            logits = real_part(output.logits, batch["attention_mask"], i)
            # Token j of the text is predicted by the logits at j - 1; EOS is the last target.
            predicted = logits[n_prompt - 1 : n_prompt - 1 + len(targets)]
            terms.append(-F.log_softmax(predicted, -1)[range(len(targets)), targets])
        expected = torch.cat(terms).mean()
        assert abs(output.loss.item() - expected.item()) <= 1e-6
        assert torch.cat(terms).numel() == (batch["labels"] != -100).sum()


@pytest.mark.smollm2
def test_loss_ignores_padding_and_prompt_tokens(conditioned):
    model, tokenizer = conditioned
    features = [
        encode_example(tokenizer, "TITLE: hi\n\nTL;DR:", " a messy roommate", max_length=100),
        encode_example(tokenizer, "TL;DR:", " debt", max_length=100),
    ]
    batch = RewardConditionedCollator(tokenizer)(features)
    loss = model(**batch, target_rewards=REWARDS[:2]).loss
    other_pad = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 7)
    other_pad_batch = {**batch, "input_ids": other_pad}
    assert model(**other_pad_batch, target_rewards=REWARDS[:2]).loss.item() == pytest.approx(
        loss.item(), abs=1e-6
    )
    # Training on the prompt too (loss_on="all") adds every real token but the first as a target.
    with_all = [
        encode_example(tokenizer, p, c, max_length=100, loss_on="all")
        for p, c in [("TITLE: hi\n\nTL;DR:", " a messy roommate"), ("TL;DR:", " debt")]
    ]
    batch_all = RewardConditionedCollator(tokenizer)(with_all)
    assert (batch_all["labels"] != -100).sum() == batch["attention_mask"].sum()
    loss_all = model(**batch_all, target_rewards=REWARDS[:2]).loss
    assert abs(loss_all.item() - loss.item()) > 1e-3


def test_different_targets_give_different_logits_and_gradients_reach_reward_map(conditioned):
    model, tokenizer = conditioned
    input_ids = torch.tensor(encode(tokenizer)[:1] * 2)
    output = model(input_ids, target_rewards=torch.tensor([0.0, 3.0]), labels=input_ids)
    assert (output.logits[0] - output.logits[1]).abs().max().item() > 1e-2
    output.loss.backward()
    assert model.reward_embedding.weight.grad.abs().sum() > 0
    assert model.reward_embedding.bias.grad.abs().sum() > 0


def test_scaler_is_applied_to_raw_targets(conditioned):
    model, tokenizer = conditioned
    input_ids = torch.tensor(encode(tokenizer)[:1] * 2)
    raw = torch.tensor([1.0, 7.0], dtype=torch.float64)
    scaler = make_scaler("standardize").fit([1.0, 3.0, 5.0, 7.0])
    identity_logits = model(input_ids, target_rewards=(raw - 4.0) / 5**0.5).logits
    model.scaler = scaler
    assert model.scaler == scaler
    assert torch.equal(model(input_ids, target_rewards=raw).logits, identity_logits)


@pytest.mark.smollm2
def test_save_load_round_trip_gives_identical_logits(conditioned, tmp_path):
    model, tokenizer = conditioned
    model.scaler = make_scaler("quantile").fit([0.0, 1.0, 1.0, 2.5, 4.0])
    input_ids, attention_mask, _ = pad(encode(tokenizer), tokenizer.pad_token_id, "left")
    targets = torch.tensor([0.5, 3.0, 9.0])  # 9.0 is above the training range
    with torch.no_grad():
        expected = model(input_ids, attention_mask=attention_mask, target_rewards=targets).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert load_scaler(tmp_path / "scaler.json") == model.scaler
    for loader in (RewardConditionedLM, AutoModelForCausalLM):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert type(loaded) is RewardConditionedLM
        assert loaded.scaler == model.scaler
        assert type(loaded.language_model) is type(model.language_model)
        assert loaded.language_model.config._attn_implementation == "sdpa"
        with torch.no_grad():
            logits = loaded(input_ids, attention_mask=attention_mask, target_rewards=targets).logits
        assert torch.equal(logits, expected)
        state, loaded_state = model.state_dict(), loaded.state_dict()
        assert state.keys() == loaded_state.keys()
        assert all(torch.equal(state[key], loaded_state[key]) for key in state)
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        loaded_tied = loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
        assert loaded_tied == tied


def train_steps(model, batch, steps=5, lr=1e-2):
    """A few AdamW steps; returns the losses before and after, and the initial parameters."""
    model.train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = model(**batch).loss.item()
    return losses[0], final, before


def assert_every_parameter_changed(model, before):
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p.detach(), before[n])]
    assert unchanged == []


def training_batch(tokenizer):
    pairs = [("TITLE: hi\n\nTL;DR:", " a messy roommate"), ("TL;DR:", " debt and rent")]
    features = [
        {**encode_example(tokenizer, p, c, max_length=100, loss_on="all"), "target_reward": r}
        for (p, c), r in zip(pairs, [0.5, 2.0], strict=True)
    ]
    return features, RewardConditionedCollator(tokenizer)(features)


def test_plain_training_loop_lowers_loss_and_changes_every_parameter(conditioned):
    model, tokenizer = conditioned
    _, batch = training_batch(tokenizer)
    first, final, before = train_steps(model, batch)
    assert final < first
    assert_every_parameter_changed(model, before)


def test_hf_trainer_with_collator(conditioned, tmp_path):
    from transformers import Trainer, TrainingArguments

    model, tokenizer = conditioned
    features, batch = training_batch(tokenizer)
    with torch.no_grad():
        first = model(**batch).loss.item()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=5,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        remove_unused_columns=False,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=RewardConditionedCollator(tokenizer),
    )
    trainer.train()
    model.eval()
    with torch.no_grad():
        assert model(**batch).loss.item() < first
    assert_every_parameter_changed(model, before)


def test_hf_trainer_that_drops_the_reward_column_fails_clearly(tiny_tokenizer, tmp_path):
    from conftest import tiny_gpt2
    from transformers import Trainer, TrainingArguments

    model = RewardConditionedLM.from_base(tiny_gpt2(tiny_tokenizer)[0])
    features, _ = training_batch(tiny_tokenizer)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=1, report_to="none", use_cpu=True, disable_tqdm=True
    )
    collator = RewardConditionedCollator(tiny_tokenizer)
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=collator)
    with pytest.raises(ValueError, match="target_rewards is required.*remove_unused_columns"):
        trainer.train()


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated:FutureWarning")
@pytest.mark.parametrize(
    "enable", ["activation_checkpointing_enable", "gradient_checkpointing_enable"]
)
def test_gradient_checkpointing_reaches_the_base_and_keeps_gradients(conditioned, enable):
    model, tokenizer = conditioned
    _, batch = training_batch(tokenizer)
    model.train()
    model(**batch).loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    getattr(model, enable)()  # HF Trainer calls activation_checkpointing_enable
    assert model.language_model.is_activation_checkpointing
    model(**batch).loss.backward()
    for name, parameter in model.named_parameters():
        assert torch.allclose(parameter.grad, expected[name], atol=1e-6), name


def test_resize_token_embeddings_reaches_the_base(conditioned, tmp_path):
    model, tokenizer = conditioned
    new_size = len(tokenizer) + 5
    model.resize_token_embeddings(new_size)
    assert model.language_model.get_input_embeddings().num_embeddings == new_size
    assert model.config.text_config.vocab_size == new_size
    logits = model(torch.tensor([[1, 2, 3]]), target_rewards=[1.0]).logits
    assert logits.shape[-1] == new_size
    model.save_pretrained(tmp_path)
    loaded = RewardConditionedLM.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded(torch.tensor([[1, 2, 3]]), target_rewards=[1.0]).logits, logits)


def test_from_config_builds_a_random_base(family, tiny_tokenizer):
    from conftest import MODEL_FAMILIES

    base, _ = MODEL_FAMILIES[family](tiny_tokenizer)
    config = RewardConditionedConfig(text_config=base.config.to_dict())
    model = RewardConditionedLM(config)
    assert type(model.language_model) is type(base)
    assert model.config.text_config is model.language_model.config
    assert model.reward_embedding.out_features == base.get_input_embeddings().embedding_dim
    assert model.scaler == make_scaler("identity")


def test_from_base_shares_the_base_and_keeps_its_attention(base_and_tokenizer):
    base, _ = base_and_tokenizer
    base.set_attn_implementation("eager")
    weights = {name: p.detach().clone() for name, p in base.named_parameters()}
    model = RewardConditionedLM.from_base(base)
    assert model.language_model is base
    assert base.config._attn_implementation == "eager"
    assert all(torch.equal(p, weights[name]) for name, p in base.named_parameters())


@pytest.mark.smollm2
def test_logits_to_keep_and_hidden_states_are_text_aligned(conditioned, tolerance):
    model, tokenizer = conditioned
    input_ids = torch.tensor(encode(tokenizer)[:1])
    full = model(input_ids, target_rewards=[1.0], output_hidden_states=True)
    last = model(input_ids, target_rewards=[1.0], logits_to_keep=1)
    assert last.logits.shape[1] == 1
    assert (last.logits[:, -1] - full.logits[:, -1]).abs().max().item() <= tolerance
    assert all(h.shape[1] == input_ids.shape[1] for h in full.hidden_states)


def test_bf16_model_runs(base_and_tokenizer):
    base, tokenizer = base_and_tokenizer
    model = RewardConditionedLM.from_base(base.to(torch.bfloat16))
    assert model.reward_embedding.weight.dtype == torch.bfloat16
    input_ids = torch.tensor(encode(tokenizer)[:1])
    output = model(input_ids, target_rewards=torch.tensor([1.0]), labels=input_ids)
    assert output.logits.dtype == torch.bfloat16
    assert torch.isfinite(output.loss)


def test_sampling_with_several_sequences_per_row_and_targets_above_range(conditioned):
    model, tokenizer = conditioned
    model.scaler = make_scaler("minmax").fit([0.0, 1.0])
    input_ids, attention_mask, _ = pad(encode(tokenizer), tokenizer.pad_token_id, "left")

    def sample(targets):
        torch.manual_seed(0)
        return model.generate(
            input_ids,
            attention_mask=attention_mask,
            target_rewards=torch.tensor(targets),
            do_sample=True,
            num_return_sequences=2,
            max_new_tokens=4,
            min_new_tokens=4,
            pad_token_id=0,
            output_logits=True,
            return_dict_in_generate=True,
        )

    above, inside = sample([0.0, 1.0, 5.0]), sample([0.0, 1.0, 1.0])
    width = input_ids.shape[1]
    # Each prompt's two sequences follow it, in order, with 4 new tokens each.
    assert torch.equal(above.sequences[:, :width], input_ids.repeat_interleave(2, dim=0))
    assert above.sequences.shape == (6, width + 4)
    # The first step's logits: the two sequences of a prompt share them, since they share its
    # target; a target above the training range (5 = 5x the scaler's maximum) changes them.
    first = above.logits[0]
    for row in range(3):
        assert torch.equal(first[2 * row], first[2 * row + 1]), row
    torch.testing.assert_close(first[:4], inside.logits[0][:4])
    assert (first[4] - inside.logits[0][4]).abs().max() > 1e-3


@pytest.mark.parametrize(
    "target_rewards, message",
    [
        (None, "target_rewards is required"),
        (torch.tensor([[1.0], [2.0], [3.0]]), r"target_rewards must have shape \(3,\)"),
        (torch.tensor([1.0, 2.0]), r"target_rewards must have shape \(3,\)"),
        (torch.tensor([1.0, float("nan"), 2.0]), "target_rewards must be finite"),
        (torch.tensor([1.0, float("inf"), 2.0]), "target_rewards must be finite"),
    ],
)
def test_bad_target_rewards_are_rejected(conditioned, target_rewards, message):
    model, tokenizer = conditioned
    input_ids, attention_mask, _ = pad(encode(tokenizer), tokenizer.pad_token_id, "left")
    with pytest.raises(ValueError, match=message):
        model(input_ids, attention_mask=attention_mask, target_rewards=target_rewards)
    with pytest.raises(ValueError, match=message):
        model.generate(input_ids, attention_mask=attention_mask, target_rewards=target_rewards)


def test_unsupported_generation_caches_are_rejected(conditioned):
    model, tokenizer = conditioned
    input_ids = torch.tensor(encode(tokenizer)[:1])
    with pytest.raises(ValueError, match="cache_implementation"):
        model.generate(input_ids, target_rewards=[1.0], cache_implementation="static")
    cache = model(input_ids, target_rewards=[1.0], use_cache=True).cache
    with pytest.raises(ValueError, match="cache: continuing generation"):
        model.generate(input_ids, target_rewards=[1.0], cache=cache)
    with pytest.raises(ValueError, match="attention_mask must cover the text so far"):
        model(input_ids[:, -1:], attention_mask=torch.ones_like(input_ids), cache=cache)


def test_attention_implementation_can_be_chosen_at_load_time(conditioned, tmp_path, tolerance):
    model, tokenizer = conditioned
    model.save_pretrained(tmp_path)
    input_ids, attention_mask, _ = pad(encode(tokenizer), tokenizer.pad_token_id, "left")
    with torch.no_grad():
        expected = model(input_ids, attention_mask=attention_mask, target_rewards=REWARDS).logits
    loaded = RewardConditionedLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert loaded.language_model.config._attn_implementation == "eager"
    with torch.no_grad():
        logits = loaded(input_ids, attention_mask=attention_mask, target_rewards=REWARDS).logits
    mask = attention_mask.bool()
    assert (logits[mask] - expected[mask]).abs().max().item() <= tolerance


def test_distributed_data_parallel_step(tiny_tokenizer, tmp_path):
    """One DDP (gloo, world size 1) training step: kwargs reach forward, every parameter is used."""
    import torch.distributed as dist
    from conftest import tiny_gpt2

    model = RewardConditionedLM.from_base(tiny_gpt2(tiny_tokenizer)[0])
    _, batch = training_batch(tiny_tokenizer)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        ddp(**batch).loss.backward()
    finally:
        dist.destroy_process_group()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_on_cuda_trains_and_generates(tiny_tokenizer):
    from conftest import tiny_gpt2

    from rewardcond.decoding import complete

    base = tiny_gpt2(tiny_tokenizer)[0].to("cuda", torch.bfloat16)
    model = RewardConditionedLM.from_base(base)
    assert model.reward_embedding.weight.device.type == "cuda"
    _, batch = training_batch(tiny_tokenizer)
    loss = model(**{key: value.cuda() for key, value in batch.items()}).loss
    loss.backward()
    assert torch.isfinite(loss) and model.reward_embedding.weight.grad is not None
    completions = complete(model, tiny_tokenizer, TEXTS, REWARDS.tolist(), max_new_tokens=4)
    assert [c.finished or len(c.token_ids) == 4 for c in completions] == [True] * 3
    assert [tiny_tokenizer.eos_token_id in c.token_ids for c in completions] == [False] * 3


DECODING = {
    "greedy": {"do_sample": False},
    "sampling": {"do_sample": True, "top_k": 0},
    "beam_search": {"do_sample": False, "num_beams": 3},
    "sampling_2_per_row": {"do_sample": True, "top_k": 0, "num_return_sequences": 2},
    "beam_search_2_per_row": {"do_sample": False, "num_beams": 3, "num_return_sequences": 2},
}
REWARD_TYPES = {
    "tensor": lambda rewards: torch.tensor(rewards),
    "list": list,
    "tuple": tuple,
    "numpy": np.array,
}


@pytest.mark.parametrize("strategy", sorted(DECODING))
def test_generate_takes_target_rewards_of_every_type_with_every_strategy(conditioned, strategy):
    model, tokenizer = conditioned
    input_ids, attention_mask, _ = pad(encode(tokenizer), tokenizer.pad_token_id, "left")
    outputs = {}
    for name, make in REWARD_TYPES.items():
        torch.manual_seed(0)
        outputs[name] = model.generate(
            input_ids,
            attention_mask=attention_mask,
            target_rewards=make(REWARDS.tolist()),
            max_new_tokens=6,
            min_new_tokens=6,
            pad_token_id=0,
            **DECODING[strategy],
        )
    per_row = DECODING[strategy].get("num_return_sequences", 1)
    assert outputs["tensor"].shape == (3 * per_row, input_ids.shape[1] + 6)
    for name in ("list", "tuple", "numpy"):
        assert torch.equal(outputs[name], outputs["tensor"]), name
    # The rewards were repeated with the rows, in order: each row's sequences are those of its
    # prompt generated alone at its target (deterministic strategies).
    if not DECODING[strategy]["do_sample"]:
        for i in range(3):
            alone = model.generate(
                input_ids[i : i + 1, attention_mask[i].bool()],
                target_rewards=[REWARDS[i].item()],
                max_new_tokens=6,
                min_new_tokens=6,
                pad_token_id=0,
                **DECODING[strategy],
            )
            got = outputs["list"][i * per_row : (i + 1) * per_row, -6:]
            assert torch.equal(got, alone[:, -6:]), i


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_names_target_rewards_and_the_batch_size_on_a_wrong_length(conditioned, num_beams):
    model, tokenizer = conditioned
    input_ids, attention_mask, _ = pad(encode(tokenizer), tokenizer.pad_token_id, "left")
    with pytest.raises(
        ValueError,
        match=r"target_rewards must have shape \(3,\) \(one per row of input_ids\); got shape "
        r"\(9,\)",
    ):
        model.generate(
            input_ids,
            attention_mask=attention_mask,
            target_rewards=[0.5] * 9,
            num_beams=num_beams,
            max_new_tokens=2,
            pad_token_id=0,
        )
