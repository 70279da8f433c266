"""The trained reward model: head position, loss, training, normalisation, save/load, accuracy."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from reward_helpers import (
    BAD,
    GOOD,
    TEMPLATE,
    tiny_base,
    tiny_reward_model,
    toy_comparisons,
    toy_posts,
)
from transformers import AutoModelForSequenceClassification, TrainerCallback

from rewardcond.curves import loss_curve
from rewardcond.distributed import plan_batches
from rewardcond.reward_models.accuracy import (
    ANCHORS,
    accuracy_table,
    measure_accuracy,
    pairwise_correct,
)
from rewardcond.reward_models.inputs import post_fields
from rewardcond.reward_models.model import RewardModel, last_token_index, pairwise_loss
from rewardcond.reward_models.scoring import RewardModelScorer, load_scorer
from rewardcond.reward_models.training import (
    RewardModelTrainSettings,
    build_trained_reward_model,
    normalize_to_references,
    train_reward_model,
)
from rewardcond.stats import bootstrap_ci
from rewardcond.tables import comparison_pairs


def test_last_token_index_left_and_right_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]])
    assert last_token_index(mask).tolist() == [2, 4, 4, 1]


def test_head_reads_last_real_token_under_left_and_right_padding(tiny_tokenizer):
    model = tiny_reward_model(tiny_tokenizer)
    eos = tiny_tokenizer.eos_token_id  # also the pad id: the mask, not the ids, must decide
    long, short = [5, 6, 7, 8, eos], [9, 10, eos]
    alone = [model(torch.tensor([ids])).logits[0, 0].item() for ids in (long, short)]
    right = model(
        torch.tensor([long, short + [eos, eos]]),
        attention_mask=torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]),
    ).logits[:, 0]
    left = model(
        torch.tensor([long, [eos, eos] + short]),
        attention_mask=torch.tensor([[1] * 5, [0, 0, 1, 1, 1]]),
    ).logits[:, 0]
    assert right.tolist() == pytest.approx(alone, abs=1e-6)
    assert left.tolist() == pytest.approx(alone, abs=1e-6)
    hidden = model.backbone(torch.tensor([short])).last_hidden_state[0, -1]
    assert model.score(hidden).item() == pytest.approx(alone[1], abs=1e-6)


def test_pairwise_loss_matches_hand_computation():
    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(2.0))) / 2
    assert pairwise_loss(chosen, rejected).item() == pytest.approx(expected, rel=1e-6)


def test_comparison_pairs_puts_the_choice_first():
    comparisons = toy_comparisons(toy_posts(4))
    pairs = comparison_pairs(comparisons)
    assert pairs["chosen"].tolist() == [GOOD] * 4
    assert pairs["rejected"].tolist() == [BAD] * 4
    with pytest.raises(ValueError, match="row 1: field 'choice' is 2"):
        comparison_pairs(comparisons.assign(choice=[0, 2, 1, 0]))


def test_training_raises_pair_accuracy_and_bias_gets_no_gradient(tiny_tokenizer, tmp_path):
    posts = post_fields(toy_posts(16))
    model = tiny_reward_model(tiny_tokenizer)
    scorer_kwargs = {"template": TEMPLATE, "identity": "t", "progress": False}

    def pair_accuracy():
        scorer = RewardModelScorer(model, tiny_tokenizer, **scorer_kwargs)
        return np.mean(scorer.score(posts, [GOOD] * 16) > scorer.score(posts, [BAD] * 16))

    bias = model.score.bias.item()
    torch.manual_seed(1)
    with torch.no_grad():  # start from a head that prefers the wrong summary
        model.score.weight.mul_(-1 if pair_accuracy() > 0.5 else 1)
    before = pair_accuracy()
    settings = RewardModelTrainSettings(
        epochs=6, global_batch_size=8, per_device_batch_size=4, lr=1e-2, logging_steps=1
    )
    trainer = train_reward_model(
        model, tiny_tokenizer, posts, [GOOD] * 16, [BAD] * 16, template=TEMPLATE,
        settings=settings, checkpoint_dir=tmp_path / "checkpoints", seed=0,
    )  # fmt: skip
    history = loss_curve(trainer.state.log_history, ("accuracy",))
    assert before <= 0.5
    assert pair_accuracy() == 1.0
    # 16 pairs, 8 per step (2 micro-batches of 4 accumulated), 6 epochs: 12 steps
    assert trainer.args.gradient_accumulation_steps == 2
    assert len(history) == 12 and history["step"].tolist() == list(range(1, 13))
    # transformers' cosine schedule, one warmup step (5% of 12, rounded up); each row shows the
    # rate its step used: 0 at the warmup step, then the peak, decaying over the 11 steps left.
    expected = [0.0] + [1e-2 * 0.5 * (1 + math.cos(math.pi * k / 11)) for k in range(11)]
    assert history["learning_rate"].tolist() == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert np.isfinite(history["loss"]).all()
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert history["accuracy"].iloc[-1] == 1.0
    assert model.score.bias.item() == bias  # the pairwise loss cannot see a constant


def test_training_is_seeded(tiny_tokenizer, tmp_path):
    posts = post_fields(toy_posts(8))
    settings = RewardModelTrainSettings(global_batch_size=4, per_device_batch_size=4, lr=1e-2)
    runs = []
    for run in range(2):
        model = tiny_reward_model(tiny_tokenizer)
        start = model.score.weight.detach().clone()
        train_reward_model(
            model, tiny_tokenizer, posts, [GOOD] * 8, [BAD] * 8, template=TEMPLATE,
            settings=settings, checkpoint_dir=tmp_path / f"run{run}", seed=3,
        )  # fmt: skip
        runs.append(model.score.weight.detach().clone())
    assert not torch.equal(runs[0], start)
    assert torch.equal(runs[0], runs[1])


def test_normalisation_centres_references_and_survives_save_load(tiny_tokenizer, tmp_path):
    model = tiny_reward_model(tiny_tokenizer)
    posts = toy_posts(10)
    references = [f" summary number {i}" for i in range(10)]
    scorer = RewardModelScorer(
        model, tiny_tokenizer, template=TEMPLATE, identity="t", progress=False
    )
    before = scorer.score(post_fields(posts), references)
    shift = normalize_to_references(model, before)
    assert shift == {"reference_mean_before": pytest.approx(before.mean()), "n_references": 10}
    assert abs(scorer.score(post_fields(posts), references).mean()) < 1e-6
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    reloaded = load_scorer(
        kind="train", path_or_hub_id=tmp_path, template=TEMPLATE, device="cpu", progress=False
    )
    assert isinstance(reloaded.model, RewardModel)
    after = reloaded.score(post_fields(posts), references)
    assert abs(after.mean()) < 1e-6
    np.testing.assert_allclose(after, before - before.mean(), atol=1e-6)
    assert reloaded.identity.startswith("trained:") and len(reloaded.identity) == 8 + 16
    assert isinstance(AutoModelForSequenceClassification.from_pretrained(tmp_path), RewardModel)


def test_build_trained_reward_model_stage(tiny_tokenizer, tmp_path):
    posts = toy_posts(12).assign(domain="tldr")
    comparisons = pd.concat([toy_comparisons(posts), toy_comparisons(posts, "valid2")])
    comparisons = comparisons.assign(domain="tldr")
    # a CNN/DM article compared in the train split: never trained on, counted
    article = toy_posts(1).assign(post_id="cnn0", subreddit="dailymail", domain="cnndm")
    comparisons = pd.concat([comparisons, toy_comparisons(article).assign(domain="cnndm")])
    posts = pd.concat([posts, article.assign(reference=None, split=None)], ignore_index=True)
    posts.to_parquet(tmp_path / "posts.parquet")
    comparisons.to_parquet(tmp_path / "comparisons.parquet")
    base = tiny_base(tiny_tokenizer)
    base.save_pretrained(tmp_path / "base")
    tiny_tokenizer.save_pretrained(tmp_path / "base")
    params = {"epochs": 2, "global_batch_size": 4, "per_device_batch_size": 4, "lr": 1e-2,
              "max_length": 64, "batch_tokens": 256}  # fmt: skip
    manifest = build_trained_reward_model(
        comparisons_path=tmp_path / "comparisons.parquet",
        posts_path=tmp_path / "posts.parquet",
        base_path=tmp_path / "base",
        output_dir=tmp_path / "rm",
        checkpoint_dir=tmp_path / "checkpoints",
        template=TEMPLATE,
        params=params,
        seed=0,
        device="cpu",
    )
    files = sorted(p.name for p in (tmp_path / "rm").iterdir())
    assert {"config.json", "model.safetensors", "manifest.json", "loss.csv", "loss.png"} <= set(
        files
    )
    assert manifest["global_step"] == 6 and manifest["resumed_from"] is None  # 12 pairs / 4 x 2
    assert manifest["n_train_pairs"] == 12 and manifest["n_train_other_domains"] == 1
    assert manifest["normalization"]["n_references"] == 6
    assert json.loads((tmp_path / "rm" / "manifest.json").read_text())["seed"] == 0
    scorer = load_scorer(kind="train", path_or_hub_id=tmp_path / "rm", template=TEMPLATE,
                         device="cpu", progress=False)  # fmt: skip
    train_refs = posts[posts["split"] == "train"]
    rewards = scorer.score(post_fields(train_refs), train_refs["reference"].tolist())
    assert abs(rewards.mean()) < 1e-6


def _rm_world(tiny_tokenizer, tmp_path, n_posts=24):
    posts = toy_posts(n_posts).assign(domain="tldr")
    posts["post"] = [p + " More." * (i % 5) for i, p in enumerate(posts["post"])]
    posts.to_parquet(tmp_path / "posts.parquet")
    toy_comparisons(posts).to_parquet(tmp_path / "comparisons.parquet")
    tiny_base(tiny_tokenizer).save_pretrained(tmp_path / "base")
    tiny_tokenizer.save_pretrained(tmp_path / "base")


def _build_rm(tmp_path, name, params, callbacks=()):
    return build_trained_reward_model(
        comparisons_path=tmp_path / "comparisons.parquet",
        posts_path=tmp_path / "posts.parquet",
        base_path=tmp_path / "base",
        output_dir=tmp_path / name,
        checkpoint_dir=tmp_path / f"{name}-checkpoints",
        template=TEMPLATE,
        params=params,
        seed=5,
        device="cpu",
        callbacks=callbacks,
    )


RESUME_PARAMS = {"global_batch_size": 4, "per_device_batch_size": 2, "lr": 1e-2,
                 "save_steps": 2, "logging_steps": 1, "max_length": 64}  # fmt: skip


def test_a_killed_reward_model_training_resumes_to_the_same_weights(tiny_tokenizer, tmp_path):
    """24 pairs in steps of 4 (2 accumulated micro-batches of 2): 6 steps, killed after the
    checkpoint of step 4, resumed: the same weights bit for bit as a run never killed."""
    _rm_world(tiny_tokenizer, tmp_path)

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 4:
                raise KeyboardInterrupt("killed after the checkpoint of step 4")

    with pytest.raises(KeyboardInterrupt):
        _build_rm(tmp_path, "resumed", RESUME_PARAMS, callbacks=[Kill()])
    assert not (tmp_path / "resumed").exists()
    assert (tmp_path / "resumed-checkpoints" / "checkpoint-4").is_dir()

    class CountSteps(TrainerCallback):
        steps = []

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(state.global_step)

    manifest = _build_rm(tmp_path, "resumed", RESUME_PARAMS, callbacks=[CountSteps()])
    assert CountSteps.steps == [5, 6]  # only the steps after the checkpoint ran again
    _build_rm(tmp_path, "straight", RESUME_PARAMS)
    assert manifest["resumed_from"].endswith("checkpoint-4") and manifest["global_step"] == 6
    resumed = RewardModel.from_pretrained(tmp_path / "resumed").state_dict()
    straight = RewardModel.from_pretrained(tmp_path / "straight").state_dict()
    base = RewardModel.from_base(tiny_base(tiny_tokenizer)).state_dict()
    assert resumed.keys() == straight.keys()
    for key in resumed:
        assert torch.equal(resumed[key], straight[key]), key
    changed = [key for key in base if not torch.equal(base[key], straight[key])]
    # Every parameter trained but the final layer norm's bias: it adds the same w.b to every
    # reward, which the pairwise loss cannot see (the head's bias moved by normalisation).
    assert sorted(set(base) - set(changed)) == ["backbone.ln_f.bias"]
    curve = pd.read_csv(tmp_path / "resumed" / "loss.csv")
    pd.testing.assert_frame_equal(curve, pd.read_csv(tmp_path / "straight" / "loss.csv"))
    assert curve["step"].tolist() == list(range(1, 7)) and np.isfinite(curve["loss"]).all()


def test_reward_model_checkpoints_of_other_settings_are_discarded(tiny_tokenizer, tmp_path):
    _rm_world(tiny_tokenizer, tmp_path, n_posts=8)
    _build_rm(tmp_path, "rm", RESUME_PARAMS)
    assert (tmp_path / "rm-checkpoints" / "checkpoint-2").is_dir()
    manifest = _build_rm(tmp_path, "rm", {**RESUME_PARAMS, "lr": 5e-3})
    assert manifest["resumed_from"] is None
    with pytest.raises(ValueError, match="reward_model.train.global_batch_size=3 does not divide"):
        plan_batches(3, num_processes=2, max_per_device_batch_size=2, section="reward_model.train")


def test_build_trained_reward_model_rejects_unknown_posts(tiny_tokenizer, tmp_path):
    posts = toy_posts(4)
    posts.iloc[:3].to_parquet(tmp_path / "posts.parquet")
    toy_comparisons(posts).to_parquet(tmp_path / "comparisons.parquet")
    with pytest.raises(ValueError, match="1 post_id.*not in.*posts.parquet, e.g. 'p3'"):
        build_trained_reward_model(
            comparisons_path=tmp_path / "comparisons.parquet",
            posts_path=tmp_path / "posts.parquet",
            base_path=tmp_path / "missing",
            output_dir=tmp_path / "rm",
            checkpoint_dir=tmp_path / "checkpoints",
            template=TEMPLATE,
            params={"epochs": 1, "global_batch_size": 2, "lr": 1e-3},
            seed=0,
        )
    assert not (tmp_path / "rm").exists()


def test_pairwise_correct_counts_ties_as_half():
    correct = pairwise_correct([1.0, 0.0, 2.0, 1.0], [0.0, 1.0, 2.0, 3.0], [0, 1, 0, 0])
    assert correct.tolist() == [1.0, 1.0, 0.5, 0.0]


def test_bootstrap_ci_on_known_cases():
    assert bootstrap_ci(np.ones(50)) == (1.0, 1.0)
    values = np.array([1.0, 0.0] * 500)
    low, high = bootstrap_ci(values, n_resamples=2000, seed=0)
    # Normal approximation: 0.5 +- 1.96 * sqrt(0.25 / 1000) = 0.5 +- 0.031.
    assert low == pytest.approx(0.469, abs=0.006) and high == pytest.approx(0.531, abs=0.006)
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)


def _toy_accuracy_inputs():
    # valid2: 4 comparisons, the RM right on 3 (one with confidence 9, two with 5); valid1: 2 right.
    comparisons = pd.DataFrame(
        {
            "post_id": ["a", "b", "c", "d", "e", "f"],
            "summary_0": [" x", " x", " x", " x", " x", " x"],
            "summary_1": [" y", " y", " y", " y", " y", " y"],
            "choice": [1, 1, 0, 0, 1, 0],
            "split": ["valid2"] * 4 + ["valid1"] * 2,
            "confidence": [9.0, 5.0, 5.0, 9.0, np.nan, np.nan],
        }
    )
    reward_y = {"a": 1.0, "b": 1.0, "c": -1.0, "d": 1.0, "e": 2.0, "f": -2.0}
    scored = pd.DataFrame(
        {
            "post_id": [*reward_y, *reward_y],
            "text": [" y"] * 6 + [" x"] * 6,
            "reward": [*reward_y.values(), *[0.0] * 6],
        }
    )
    return comparisons, scored


def test_accuracy_table_on_a_toy_case():
    comparisons, scored = _toy_accuracy_inputs()
    table = accuracy_table(
        comparisons, scored, model_name="m", bayes_optimal={"valid2": 0.9, "valid1": 1.0}
    )
    measured = table[table["kind"] == "measured"].set_index(["split", "subset"])
    assert measured.loc[("valid2", "all"), "accuracy"] == 0.75
    assert measured.loc[("valid2", "all"), "n"] == 4
    assert measured.loc[("valid2", "confidence=5"), "accuracy"] == 1.0
    assert measured.loc[("valid2", "confidence=9"), "accuracy"] == 0.5
    assert measured.loc[("valid1", "all"), "accuracy"] == 1.0
    assert measured.loc[("valid2", "all"), "signal_captured"] == pytest.approx(0.25 / 0.4)
    assert measured.loc[("valid1", "all"), "signal_captured"] == pytest.approx(1.0)
    assert measured.loc[("valid1", "all"), ["ci_low", "ci_high"]].tolist() == [1.0, 1.0]
    anchors = table[table["kind"] == "anchor"]
    assert anchors["model"].tolist() == [name for name, _, _ in ANCHORS]
    assert anchors["accuracy"].tolist() == [0.72, 0.63, 0.67, 0.69, 0.77]


def test_accuracy_table_counts_unscored_comparisons():
    comparisons, scored = _toy_accuracy_inputs()
    table = accuracy_table(comparisons, scored[scored["post_id"] != "a"], model_name="m")
    row = table[(table["split"] == "valid2") & (table["subset"] == "all")].iloc[0]
    assert (row["n"], row["n_unscored"], row["accuracy"]) == (3, 1, pytest.approx(2 / 3))
    assert "bayes_optimal" not in table.columns


def test_accuracy_table_keeps_cnndm_comparisons_in_their_own_rows():
    """CNN/DM comparisons (the paper's transfer test) get rows of domain cnndm; the TL;DR rows
    are those of the TL;DR comparisons alone."""
    comparisons, scored = _toy_accuracy_inputs()
    cnndm = pd.DataFrame(
        {"post_id": ["g", "h", "i"], "summary_0": " x", "summary_1": " y", "choice": [0, 0, 1],
         "split": "valid2", "confidence": np.nan, "domain": "cnndm"}
    )  # fmt: skip
    reward_y = {"g": 1.0, "h": 1.0, "i": 1.0}  # right on i only
    scored_cnndm = pd.DataFrame(
        {"post_id": [*reward_y, *reward_y], "text": [" y"] * 3 + [" x"] * 3,
         "reward": [*reward_y.values(), *[0.0] * 3]}
    )  # fmt: skip
    mixed = pd.concat([comparisons.assign(domain="tldr"), cnndm], ignore_index=True)
    table = accuracy_table(
        mixed, pd.concat([scored, scored_cnndm]), model_name="m", bayes_optimal={"valid2": 0.9}
    )
    tldr_only = accuracy_table(comparisons, scored, model_name="m", bayes_optimal={"valid2": 0.9})
    measured = table[table["kind"] == "measured"]
    assert measured[["domain", "split", "subset"]].values.tolist() == [
        ["tldr", "valid2", "all"], ["tldr", "valid2", "confidence=5"],
        ["tldr", "valid2", "confidence=9"], ["tldr", "valid1", "all"],
        ["cnndm", "valid2", "all"], ["cnndm", "valid1", "all"],
    ]  # fmt: skip
    pd.testing.assert_frame_equal(
        measured[measured["domain"] == "tldr"], tldr_only[tldr_only["kind"] == "measured"]
    )
    cnndm_valid2 = measured.iloc[4]
    assert (cnndm_valid2["n"], cnndm_valid2["accuracy"]) == (3, pytest.approx(1 / 3))
    assert np.isnan(cnndm_valid2["bayes_optimal"])  # the synthetic world's figure is TL;DR's
    assert (measured.iloc[5]["n"], np.isnan(measured.iloc[5]["accuracy"])) == (0, True)
    assert set(table.loc[table["kind"] == "anchor", "domain"]) == {"tldr"}


def test_measure_accuracy_writes_csv_and_markdown(tmp_path):
    comparisons, scored = _toy_accuracy_inputs()
    comparisons.to_parquet(tmp_path / "comparisons.parquet")
    scored.assign(reward_model="trained:abc").to_parquet(tmp_path / "scored.parquet")
    (tmp_path / "report.json").write_text(json.dumps({"bayes_optimal_accuracy": {"valid2": 0.9}}))
    measure_accuracy(
        comparisons_path=tmp_path / "comparisons.parquet",
        scored_path=tmp_path / "scored.parquet",
        data_report_path=tmp_path / "report.json",
        csv_path=tmp_path / "accuracy.csv",
        md_path=tmp_path / "accuracy.md",
        samples=100,
    )
    table = pd.read_csv(tmp_path / "accuracy.csv")
    assert table["model"].iloc[0] == "trained:abc"
    assert len(table) == 4 + len(ANCHORS)  # valid2: all + 2 confidence buckets; valid1: all
    markdown = (tmp_path / "accuracy.md").read_text()
    assert "anchor" in markdown and "Pythia-6.9B RM" in markdown
