"""Scoring: input building and truncation, bucketed batching, bad input, loaders, the stage."""

import copy
import json
import logging

import huggingface_hub.constants
import numpy as np
import pandas as pd
import pytest
import torch
from real_layout import LONG_POST
from reward_helpers import TEMPLATE, tiny_reward_model, toy_posts
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
)

from rewardcond import DEMO_COMMAND
from rewardcond.reward_models.completions import score_completions
from rewardcond.reward_models.inputs import InputBuilder, length_batches, post_fields
from rewardcond.reward_models.scoring import RewardModelScorer, load_scorer


def _summaries(n):
    return [" roommate" + " is messy" * (i % 5) for i in range(n)]


def test_causal_input_is_prompt_summary_eos(tiny_tokenizer):
    post = {"subreddit": "r", "title": "t", "post": "p"}
    builder = InputBuilder(tiny_tokenizer, TEMPLATE, max_length=100)
    (encoding,), truncated = builder.encode([post], [" a summary"])
    text = TEMPLATE.format(**post) + " a summary"
    assert encoding["input_ids"] == tiny_tokenizer(text)["input_ids"] + [
        tiny_tokenizer.eos_token_id
    ]
    assert truncated.tolist() == [False]


def test_long_post_is_shortened_on_the_post_side_only(tiny_tokenizer):
    post = {"subreddit": "relationships", "title": "My roommate", "post": "We share a flat. " * 40}
    summary = " roommate is messy"
    builder = InputBuilder(tiny_tokenizer, TEMPLATE, max_length=60)
    (encoding,), truncated = builder.encode([post], [summary])
    ids = encoding["input_ids"]
    assert truncated.tolist() == [True]
    assert 55 <= len(ids) <= 60
    text = tiny_tokenizer.decode(ids[:-1])
    assert text.startswith("SUBREDDIT: r/relationships\n\nTITLE: My roommate\n\nPOST: We share")
    assert text.endswith("\n\nTL;DR: roommate is messy")
    with pytest.raises(ValueError, match="without its body, prompt \\+ summary is already"):
        InputBuilder(tiny_tokenizer, TEMPLATE, max_length=10).encode([post], [summary])


CNNDM_TEMPLATE = "Article:\n\n{article}\n\nTL;DR:"


def test_cnndm_article_gets_its_own_template_never_the_subreddit_header(tiny_tokenizer):
    article = {"subreddit": "dailymail", "title": "Bakery", "post": "We won.", "domain": "cnndm"}
    reddit = {"subreddit": "r", "title": "t", "post": "p", "domain": "tldr"}
    builder = InputBuilder(tiny_tokenizer, TEMPLATE, max_length=100, cnndm_template=CNNDM_TEMPLATE)
    encodings, _ = builder.encode([article, reddit], [" a prize", " a summary"])
    texts = [tiny_tokenizer.decode(e["input_ids"][:-1]) for e in encodings]
    assert texts == [
        "Article:\n\nWe won.\n\nTL;DR: a prize",
        "SUBREDDIT: r/r\n\nTITLE: t\n\nPOST: p\n\nTL;DR: a summary",
    ]
    with_title = InputBuilder(tiny_tokenizer, TEMPLATE, max_length=100,
                              cnndm_template="{site}: {title}\n{article}\nTL;DR:")  # fmt: skip
    assert with_title.prompt(article) == "dailymail: Bakery\nWe won.\nTL;DR:"
    no_template = InputBuilder(tiny_tokenizer, TEMPLATE, max_length=100)
    with pytest.raises(ValueError, match="a CNN/DM article needs its own template: set prompt"):
        no_template.encode([article], [" a prize"])
    with pytest.raises(ValueError, match="prompt.cnndm_template must use {article}.*'subreddit'"):
        InputBuilder(tiny_tokenizer, TEMPLATE, max_length=100, cnndm_template=TEMPLATE)


def test_long_cnndm_article_is_shortened_on_the_article_side(tiny_tokenizer):
    article = {
        "subreddit": "cnn",
        "title": "t",
        "post": "We share a flat. " * 40,
        "domain": "cnndm",
    }
    builder = InputBuilder(tiny_tokenizer, TEMPLATE, max_length=40, cnndm_template=CNNDM_TEMPLATE)
    (encoding,), truncated = builder.encode([article], [" roommate is messy"])
    text = tiny_tokenizer.decode(encoding["input_ids"][:-1])
    assert truncated.tolist() == [True] and len(encoding["input_ids"]) <= 40
    assert text.startswith("Article:\n\nWe share") and text.endswith("\n\nTL;DR: roommate is messy")


def test_post_longer_than_any_context_is_shortened_to_fit(tiny_tokenizer):
    """A 42,000-character post (33,000 tokens of the tiny tokenizer) fits in 64 tokens."""
    post = {"subreddit": "Breadit", "title": "My starter", "post": LONG_POST}
    builder = InputBuilder(tiny_tokenizer, TEMPLATE, max_length=64)
    (encoding,), truncated = builder.encode([post], [" a summary"])
    text = tiny_tokenizer.decode(encoding["input_ids"][:-1])
    assert truncated.tolist() == [True] and 58 <= len(encoding["input_ids"]) <= 64
    assert text.startswith("SUBREDDIT: r/Breadit\n\nTITLE: My starter\n\nPOST: Day 1: I fed")
    assert text.endswith("\n\nTL;DR: a summary")


def test_post_fields_carry_the_domain_when_the_table_has_one():
    posts = toy_posts(2)
    assert post_fields(posts)[0] == {"subreddit": "relationships", "title": "My roommate 0",
                                     "post": "We share a flat. I asked twice."}  # fmt: skip
    assert post_fields(posts.assign(domain=["tldr", "cnndm"]))[1]["domain"] == "cnndm"


def test_length_batches_respect_the_token_budget():
    lengths = [5, 50, 7, 30, 30, 2, 120, 9]
    batches = length_batches(lengths, batch_tokens=100, max_batch_size=3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    assert batches[0].tolist() == [6]  # longer than the budget: alone
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= 3 and (len(batch) * width <= 100 or len(batch) == 1)
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)


def test_bucketed_scores_equal_one_at_a_time_in_row_order(tiny_tokenizer):
    posts = post_fields(toy_posts(12))
    summaries = _summaries(12)
    model = tiny_reward_model(tiny_tokenizer)
    bucketed = RewardModelScorer(
        model, tiny_tokenizer, template=TEMPLATE, identity="t", batch_tokens=200, progress=False
    )
    rewards = bucketed.score(posts, summaries)
    single = [
        model(torch.tensor([bucketed.builder.encode([p], [s])[0][0]["input_ids"]])).logits.item()
        for p, s in zip(posts, summaries, strict=True)
    ]
    np.testing.assert_allclose(rewards, single, atol=1e-5)
    assert rewards.dtype == np.float64 and len(set(rewards.round(6))) == 12


def test_empty_summary_raises_or_is_counted_as_skip(tiny_tokenizer):
    posts = post_fields(toy_posts(4))
    summaries = [" fine", "  ", " also fine", ""]
    model = tiny_reward_model(tiny_tokenizer)
    strict = RewardModelScorer(
        model, tiny_tokenizer, template=TEMPLATE, identity="t", progress=False
    )
    with pytest.raises(ValueError, match="2 empty summaries \\(first: row 1\\).*on_empty: skip"):
        strict.score(posts, summaries)
    lenient = RewardModelScorer(
        model, tiny_tokenizer, template=TEMPLATE, identity="t", on_empty="skip", progress=False
    )
    result = lenient.score_detailed(posts, summaries)
    assert result.skipped.tolist() == [False, True, False, True]
    assert np.isnan(result.rewards).tolist() == [False, True, False, True]
    np.testing.assert_allclose(
        result.rewards[[0, 2]], strict.score(posts[0::2], summaries[0::2]), atol=1e-6
    )
    with pytest.raises(ValueError, match="on_empty='ignore'; expected one of"):
        RewardModelScorer(model, tiny_tokenizer, template=TEMPLATE, identity="t", on_empty="ignore")


def test_non_finite_reward_is_an_error(tiny_tokenizer):
    model = tiny_reward_model(tiny_tokenizer)
    with torch.no_grad():
        model.score.bias.fill_(float("inf"))
    scorer = RewardModelScorer(
        model, tiny_tokenizer, template=TEMPLATE, identity="broken", progress=False
    )
    with pytest.raises(ValueError, match="reward model broken gave a non-finite reward \\(inf\\)"):
        scorer.score(post_fields(toy_posts(2)), [" a", " b"])


def _completions(posts, summaries):
    return pd.DataFrame(
        {
            "completion_id": [f"{i:016x}" for i in range(len(summaries))],
            "post_id": posts["post_id"].tolist(),
            "text": summaries,
            "policy": "sup",
            "source": "comparison",
            "split": "train",
        }
    )


def test_score_completions_stage_writes_contract_columns_and_report(tiny_tokenizer, tmp_path):
    posts = toy_posts(6)
    posts.loc[5, "post"] = "a very long post body. " * 30
    summaries = [" one", " two", "", " four", " five", " six"]
    posts.to_parquet(tmp_path / "posts.parquet")
    _completions(posts, summaries).to_parquet(tmp_path / "completions.parquet")
    scorer = RewardModelScorer(
        tiny_reward_model(tiny_tokenizer, n_positions=128),
        tiny_tokenizer,
        template=TEMPLATE,
        identity="trained:0123456789abcdef",
        on_empty="skip",
        progress=False,
    )
    report = score_completions(
        completions_path=tmp_path / "completions.parquet",
        posts_path=tmp_path / "posts.parquet",
        output_path=tmp_path / "scored" / "completions.parquet",
        report_path=tmp_path / "scored" / "report.json",
        scorer=scorer,
    )
    scored = pd.read_parquet(tmp_path / "scored" / "completions.parquet")
    assert list(scored.columns) == [
        "completion_id", "post_id", "text", "policy", "source", "split",
        "reward", "reward_model", "truncated",
    ]  # fmt: skip
    assert scored["completion_id"].tolist() == [f"{i:016x}" for i in (0, 1, 3, 4, 5)]
    assert scored["reward"].dtype == np.float64 and scored["truncated"].tolist()[-1]
    assert scored["truncated"].sum() == 1 and (scored["reward_model"] == scorer.identity).all()
    on_disk = json.loads((tmp_path / "scored" / "report.json").read_text())
    assert on_disk == report
    assert (report["n_in"], report["n_scored"], report["n_skipped_empty"]) == (6, 5, 1)
    assert report["n_truncated"] == 1 and report["skipped_completion_ids"] == [f"{2:016x}"]


def test_score_completions_scores_cnndm_articles_with_their_template(tiny_tokenizer, tmp_path):
    posts = toy_posts(2).assign(domain=["tldr", "cnndm"], subreddit=["relationships", "cnn"])
    posts.to_parquet(tmp_path / "posts.parquet")
    _completions(posts, [" one", " two"]).to_parquet(tmp_path / "completions.parquet")
    model = tiny_reward_model(tiny_tokenizer, n_positions=128)

    def run(**kwargs):
        scorer = RewardModelScorer(
            model, tiny_tokenizer, template=TEMPLATE, identity="t", progress=False, **kwargs
        )
        score_completions(
            completions_path=tmp_path / "completions.parquet",
            posts_path=tmp_path / "posts.parquet",
            output_path=tmp_path / "scored.parquet",
            report_path=tmp_path / "report.json",
            scorer=scorer,
        )
        return pd.read_parquet(tmp_path / "scored.parquet")["reward"].tolist()

    with pytest.raises(ValueError, match="a CNN/DM article needs its own template"):
        run()
    rewards = run(cnndm_template="Article:\n\n{article}\n\nTL;DR:")
    as_article = RewardModelScorer(
        model,
        tiny_tokenizer,
        template="Article:\n\n{post}\n\nTL;DR:",
        identity="t",
        progress=False,
    )
    as_reddit = RewardModelScorer(
        model, tiny_tokenizer, template=TEMPLATE, identity="t", progress=False
    )
    article = post_fields(posts.drop(columns="domain"))[1]
    assert rewards[1] == pytest.approx(as_article.score([article], [" two"])[0], abs=1e-6)
    assert rewards[1] != pytest.approx(as_reddit.score([article], [" two"])[0], abs=1e-3)
    assert rewards[0] == pytest.approx(as_reddit.score(post_fields(posts.iloc[:1]), [" one"])[0])


def test_score_completions_rejects_unknown_post(tiny_tokenizer, tmp_path):
    posts = toy_posts(2)
    posts.iloc[:1].to_parquet(tmp_path / "posts.parquet")
    _completions(posts, [" a", " b"]).to_parquet(tmp_path / "completions.parquet")
    scorer = RewardModelScorer(tiny_reward_model(tiny_tokenizer), tiny_tokenizer, template=TEMPLATE,
                    identity="t", progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="1 rows have a post_id missing from .*e.g. 'p1'"):
        score_completions(
            completions_path=tmp_path / "completions.parquet",
            posts_path=tmp_path / "posts.parquet",
            output_path=tmp_path / "out.parquet",
            report_path=tmp_path / "report.json",
            scorer=scorer,
        )
    assert not (tmp_path / "out.parquet").exists()


def test_pretrained_scorer_uses_question_answer_pairs(tiny_tokenizer, tmp_path):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=128, num_labels=1,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    scorer = load_scorer(
        kind="pretrained", path_or_hub_id=str(tmp_path), revision="local",
        template="{title}\n{post}", device="cpu", progress=False,
    )  # fmt: skip
    assert scorer.identity == f"{tmp_path}@local" and scorer.max_length == 128
    assert scorer.builder.input_format == "pair"
    posts = post_fields(toy_posts(5))
    rewards = scorer.score(posts, _summaries(5))
    alone = []
    for post, summary in zip(posts, _summaries(5), strict=True):
        inputs = tiny_tokenizer(f"{post['title']}\n{post['post']}", summary, return_tensors="pt")
        alone.append(scorer.model(**inputs).logits.item())
    np.testing.assert_allclose(rewards, alone, atol=1e-5)
    encodings, truncated = InputBuilder(
        tiny_tokenizer, "{title}\n{post}", max_length=30, input_format="pair"
    ).encode(posts, _summaries(5))
    assert truncated.tolist() == [False, True, True, True, True]
    assert max(len(e["input_ids"]) for e in encodings) == 30


def test_pretrained_scorer_offline_names_the_demo(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="could not load the pretrained reward model") as error:
        load_scorer(
            kind="pretrained", path_or_hub_id="rewardcond-tests/no-such-reward-model",
            revision="0" * 40, template=TEMPLATE, device="cpu",
        )  # fmt: skip
    assert DEMO_COMMAND in str(error.value)


def test_load_scorer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="pin a revision"):
        load_scorer(kind="pretrained", path_or_hub_id="org/model", template=TEMPLATE)
    with pytest.raises(ValueError, match="kind='ppo'; expected 'pretrained' or 'train'"):
        load_scorer(kind="ppo", path_or_hub_id=tmp_path, template=TEMPLATE)
    with pytest.raises(FileNotFoundError, match="model.safetensors not found"):
        load_scorer(kind="train", path_or_hub_id=tmp_path, template=TEMPLATE)
    with pytest.raises(ValueError, match="dtype='int8'"):
        load_scorer(kind="train", path_or_hub_id=tmp_path, template=TEMPLATE, dtype="int8")


def _gpt2_classifier_without_pad(tiny_tokenizer, folder):
    """A tiny random GPT2ForSequenceClassification (1 label, no pad_token_id) saved to `folder`
    with a copy of the tiny tokenizer that has no pad token, as GPT-2 based reward models come."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tiny_tokenizer), n_positions=128, n_embd=16, n_layer=2, n_head=2,
        num_labels=1, bos_token_id=tiny_tokenizer.eos_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id, pad_token_id=None,
    )  # fmt: skip
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).pad_token_id is None


def test_pretrained_reward_model_without_pad_token_pads_with_eos(tiny_tokenizer, tmp_path, caplog):
    _gpt2_classifier_without_pad(tiny_tokenizer, tmp_path)
    with caplog.at_level(logging.WARNING, logger="rewardcond.reward_models.scoring"):
        scorer = load_scorer(
            kind="pretrained", path_or_hub_id=str(tmp_path), revision="local",
            template="{title}\n{post}", device="cpu", progress=False,
        )  # fmt: skip
    eos = tiny_tokenizer.eos_token_id
    assert scorer.tokenizer.pad_token_id == eos and scorer.model.config.pad_token_id == eos
    assert f"{tmp_path}@local: no pad token; padding with EOS '<|endoftext|>' (id {eos})" in (
        caplog.text
    )
    posts, summaries = post_fields(toy_posts(6)), _summaries(6)
    lengths = {len(e["input_ids"]) for e in scorer.builder.encode(posts, summaries)[0]}
    assert len(lengths) == 6  # six different lengths, scored as one padded batch
    assert len(length_batches(sorted(lengths), scorer.batch_tokens)) == 1
    rewards = scorer.score(posts, summaries)
    # Truth: the model as saved, one unpadded row at a time (GPT-2 reads the last token).
    model = GPT2ForSequenceClassification.from_pretrained(tmp_path).eval()
    alone = []
    for post, summary in zip(posts, summaries, strict=True):
        inputs = tiny_tokenizer(f"{post['title']}\n{post['post']}", summary, return_tensors="pt")
        with torch.no_grad():
            alone.append(model(**inputs).logits.item())
    # fp32 noise between a padded batch and single rows: measured 5.6e-9.
    np.testing.assert_allclose(rewards, alone, rtol=0, atol=1e-5)
    assert len(set(np.round(alone, 4))) == 6


def test_pretrained_reward_model_without_pad_or_eos_is_refused(tiny_tokenizer, tmp_path):
    _gpt2_classifier_without_pad(tiny_tokenizer, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    tokenizer.eos_token = None
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(
        ValueError,
        match=rf"reward model {tmp_path}@local: its tokenizer has neither a pad nor an EOS token",
    ):
        load_scorer(
            kind="pretrained", path_or_hub_id=str(tmp_path), revision="local",
            template="{title}\n{post}", device="cpu", progress=False,
        )  # fmt: skip
