"""The pairwise LLM judge (issue 17 section 2) against a local chat-completions server.

Every fault case of `tests/mock_chat_server.py` has a test asserting what it produced: 429/500
then 200 (one retry, the same verdicts), 500 for ever (an error after max_retries + 1 attempts),
401 (an error at once), a slow answer past the time-out (retried), malformed answers (counted,
kept as rows, out of the win rate), a judge that always prefers position A (all ties), and a
rerun (no request at all). The statistics are checked against direct computations.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mock_chat_server import MockChatServer, judgment
from scipy import optimize
from snakemake.utils import update_config

from rewardcond.config_schema import validate_config
from rewardcond.llm_judge.client import JudgmentCache, request_key
from rewardcond.llm_judge.protocol import (
    TLDR_PAIRWISE_PROMPT,
    LLMJudgeError,
    LLMJudgeSettings,
    combine_orders,
    format_post,
    judge_prompt,
    parse_answer,
)
from rewardcond.llm_judge.stage import judge_table, run_llm_judge
from rewardcond.llm_judge.win_rates import (
    fit_fractional_logit,
    length_controlled_win_rate,
    length_feature,
)
from rewardcond.stats import BootstrapSettings, bootstrap_ci

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow/schemas/config.schema.yaml"
KEY = "sk-test-never-written-7f3a9c"
ENV = {"JUDGE_KEY": KEY}
BOOT = BootstrapSettings(n_resamples=200, level=0.95, seed=0)
REFERENCE = " my dog ate the cake"


def make_settings(server: MockChatServer, **overrides) -> LLMJudgeSettings:
    values = dict(
        model="judge-model",
        base_url=server.base_url,
        api_key_env="JUDGE_KEY",
        timeout_s=5.0,
        max_retries=3,
        backoff_initial_s=0.001,
        backoff_max_s=0.01,
        concurrency=2,
    )
    return LLMJudgeSettings(**(values | overrides))


def make_rows(texts, method="scalar", target_name="q50") -> pd.DataFrame:
    """One row per generated text, each of its own post, all with the reference REFERENCE."""
    return pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(len(texts))],
            "subreddit": "tifu",
            "title": [f"title {i}" for i in range(len(texts))],
            "post": [
                f"Post number {i}: my dog ate the cake at the party." for i in range(len(texts))
            ],
            "reference": REFERENCE,
            "text": list(texts),
            "method": method,
            "target_name": target_name,
        }
    )


# Under the "longer" rule the first three win (longer than the reference), the last two lose.
TEXTS = [
    " my dog ate the whole birthday cake",
    " the dog ate the cake at the party today",
    " my dog ate my sister's cake at her party",
    " dog ate cake",
    " cake gone",
]


def run(server, rows=None, tmp_path=None, sleep=None, **overrides):
    kwargs = {"sleep": sleep} if sleep is not None else {}
    return judge_table(
        make_rows(TEXTS) if rows is None else rows,
        make_settings(server, **overrides),
        tmp_path / "cache",
        bootstrap=BOOT,
        environ=ENV,
        **kwargs,
    )


def group(summary, method="scalar", target_name="q50") -> dict:
    (found,) = [
        g for g in summary["groups"] if (g["method"], g["target_name"]) == (method, target_name)
    ]
    return found


# --- the protocol --------------------------------------------------------------------------------


def test_prompt_is_the_dpo_tldr_prompt():
    post = format_post({"subreddit": "tifu", "title": " T ", "post": "P\n"})
    assert post == "SUBREDDIT: r/tifu\nTITLE: T\nPOST: P"
    assert judge_prompt(post, " first", "second ") == (
        "Which of the following summaries does a better job of summarizing the most important "
        "points in the given forum post, without including unimportant or irrelevant details? "
        "A good summary is both precise and concise.\n\n"
        "Post:\nSUBREDDIT: r/tifu\nTITLE: T\nPOST: P\n\n"
        "Summary A:\nfirst\n\n"
        "Summary B:\nsecond\n\n"
        "FIRST provide a one-sentence comparison of the two summaries, explaining which you "
        'prefer and why. SECOND, on a new line, state only "A" or "B" to indicate your choice. '
        "Your response should use the format:\n"
        "Comparison: <one-sentence comparison and explanation>\n"
        'Preferred: <"A" or "B">'
    )
    assert TLDR_PAIRWISE_PROMPT.count("{") == 3


@pytest.mark.parametrize(
    "content, expected",
    [
        ("Comparison: A is shorter.\nPreferred: A", ("A", "A is shorter.")),
        ("Comparison: B keeps the facts.\nPreferred: B\n", ("B", "B keeps the facts.")),
        ('**Comparison:** x\n**Preferred:** "B".', ("B", "x")),
        ("Comparison: x\npreferred: a", ("A", "x")),
        ("Comparison: I cannot decide.", (None, "I cannot decide.")),
        ("Comparison: x\nPreferred: C", (None, "x")),
        ("Comparison: x\nPreferred: A or B", (None, "x")),
        ("Comparison: x\nPreferred: A\nPreferred: B", (None, "x")),
        ("", (None, "")),
        (None, (None, "")),
    ],
)
def test_parse_answer(content, expected):
    assert parse_answer(content) == expected


@pytest.mark.parametrize(
    "first, second, expected",
    [
        ("A", "B", (1.0, False)),  # the generated summary in both orders
        ("B", "A", (0.0, False)),  # the reference in both orders
        ("A", "A", (0.5, True)),  # position A both times: a tie
        ("B", "B", (0.5, True)),
    ],
)
def test_a_win_needs_both_orders(first, second, expected):
    assert combine_orders(first, second) == expected


@pytest.mark.parametrize("first, second", [(None, "B"), ("A", None), (None, None)])
def test_a_malformed_order_leaves_no_verdict(first, second):
    verdict, disagree = combine_orders(first, second)
    assert np.isnan(verdict) and disagree is False


# --- a clean run, its statistics, tokens and cost ------------------------------------------------


def test_length_biased_judge_verdicts_counts_tokens_and_cost(tmp_path):
    with MockChatServer("longer") as server:
        verdicts, summary = run(
            server,
            tmp_path=tmp_path,
            price_prompt_per_million=2.5,
            price_completion_per_million=10.0,
        )
    assert verdicts["verdict"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert verdicts["preferred_1"].tolist() == ["A", "A", "A", "B", "B"]
    assert verdicts["preferred_2"].tolist() == ["B", "B", "B", "A", "A"]
    assert verdicts["rationale_1"].tolist()[0] == "Summary A is better because it is more detailed."
    lengths = [len(t.strip()) - len(REFERENCE.strip()) for t in TEXTS]
    assert verdicts["length_difference"].tolist() == lengths
    # Both orders asked for each row, with the key as a bearer token, nothing else.
    assert len(server.requests) == 10
    assert {r["auth"] for r in server.requests} == {f"Bearer {KEY}"}
    assert {r["path"] for r in server.requests} == {"/v1/chat/completions"}
    body = server.requests[0]["body"]
    assert (body["model"], body["temperature"], body["max_completion_tokens"]) == (
        "judge-model",
        0.0,
        256,
    )
    prompts = {r["body"]["messages"][0]["content"] for r in server.requests}
    assert judge_prompt(format_post(make_rows(TEXTS).iloc[3]), TEXTS[3], REFERENCE) in prompts
    assert judge_prompt(format_post(make_rows(TEXTS).iloc[3]), REFERENCE, TEXTS[3]) in prompts
    # Tokens are the endpoint's usage; the mock counts words.
    prompt_tokens = sum(len(p.split()) for p in prompts)
    completion_tokens = sum(
        len(judgment("A" if i < 3 else "B", "it is more detailed").split()) for i in range(5)
    ) + sum(len(judgment("B" if i < 3 else "A", "it is more detailed").split()) for i in range(5))
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (
        prompt_tokens,
        completion_tokens,
    )
    cost = (prompt_tokens * 2.5 + completion_tokens * 10.0) / 1e6
    assert summary["cost_usd"] == pytest.approx(cost, rel=1e-12)
    assert summary["cost_usd_this_run"] == pytest.approx(cost, rel=1e-12)
    assert (summary["api_calls"], summary["retries"], summary["cache_hits"]) == (10, 0, 0)
    assert (summary["n_rows"], summary["n_judged"], summary["n_malformed"]) == (5, 5, 0)
    g = group(summary)
    assert (g["n_wins"], g["n_ties"], g["n_losses"], g["n_disagreements"]) == (3, 0, 2, 0)
    assert (g["win_rate"], g["disagreement_share"]) == (0.6, 0.0)
    assert (g["win_rate_low"], g["win_rate_high"]) == bootstrap_ci(
        [1, 1, 1, 0, 0], [f"p{i}" for i in range(5)], n_resamples=200, level=0.95, seed=0
    )
    assert g["lc_win_rate"] == length_controlled_win_rate([1, 1, 1, 0, 0], lengths)
    assert g["lc_win_rate_low"] <= g["lc_win_rate"] <= g["lc_win_rate_high"]


def test_groups_are_method_and_target(tmp_path):
    rows = pd.concat(
        [make_rows(TEXTS[:3], "scalar", "q95"), make_rows(TEXTS[3:], "sft", "none")],
        ignore_index=True,
    )
    with MockChatServer("longer") as server:
        verdicts, summary = run(server, rows, tmp_path)
    assert len(verdicts) == 5
    assert [(g["method"], g["target_name"], g["n_rows"]) for g in summary["groups"]] == [
        ("scalar", "q95", 3),
        ("sft", "none", 2),
    ]
    assert (
        group(summary, "scalar", "q95")["win_rate"],
        group(summary, "sft", "none")["win_rate"],
    ) == (
        1.0,
        0.0,
    )


def test_identical_summary_is_a_tie_without_a_request(tmp_path):
    texts = [TEXTS[0], "my dog ate the cake  "]  # the reference, other whitespace
    with MockChatServer("longer") as server:
        verdicts, summary = run(server, make_rows(texts), tmp_path)
    assert len(server.requests) == 2
    assert verdicts["identical"].tolist() == [False, True]
    assert verdicts["verdict"].tolist() == [1.0, 0.5]
    g = group(summary)
    assert (g["n_identical"], g["n_ties"], g["win_rate"], g["disagreement_share"]) == (
        1,
        1,
        0.75,
        0.0,
    )


def test_the_same_pair_is_asked_once(tmp_path):
    rows = pd.concat(
        [make_rows(TEXTS[:2], "scalar", "q95"), make_rows(TEXTS[:2], "scalar", "q100")],
        ignore_index=True,
    )
    with MockChatServer("longer") as server:
        verdicts, summary = run(server, rows, tmp_path)
    assert len(server.requests) == 4
    assert verdicts["verdict"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert summary["n_prompts_distinct"] == 4


# --- the fault cases --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503, 408])
def test_a_transient_error_is_retried_once_with_the_same_result(tmp_path, status):
    with MockChatServer("longer", faults=[("status", status)]) as server:
        verdicts, summary = run(server, tmp_path=tmp_path)
    assert len(server.requests) == 11
    assert (summary["api_calls"], summary["retries"]) == (10, 1)
    assert verdicts["verdict"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_backoff_doubles_up_to_its_cap(tmp_path):
    delays = []
    faults = [("status", 429)] * 5
    with MockChatServer("longer", faults=faults) as server:
        _, summary = run(
            server,
            make_rows(TEXTS[:1]),
            tmp_path,
            sleep=delays.append,
            concurrency=1,
            max_retries=5,
            backoff_initial_s=0.001,
            backoff_max_s=0.005,
        )
    assert delays == [0.001, 0.002, 0.004, 0.005, 0.005]
    assert (summary["retries"], len(server.requests)) == (5, 7)


def test_a_server_that_keeps_failing_stops_after_its_retries(tmp_path):
    with MockChatServer("longer", always=("status", 500)) as server:
        with pytest.raises(LLMJudgeError) as error:
            run(server, make_rows(TEXTS[:1]), tmp_path, concurrency=1, max_retries=2)
        assert len(server.requests) == 3
    message = str(error.value)
    assert f"judge endpoint {server.base_url} (model 'judge-model') failed 3 attempts" in message
    assert "(max_retries=2), the last with HTTP 500" in message
    assert f"cached in {tmp_path / 'cache'} and a rerun resumes" in message
    assert KEY not in message


def test_a_refused_key_stops_at_once_naming_its_variable(tmp_path):
    with MockChatServer("longer", always=("status", 401)) as server:
        with pytest.raises(LLMJudgeError, match="HTTP 401.*environment variable JUDGE_KEY"):
            run(server, make_rows(TEXTS[:1]), tmp_path, concurrency=1)
        assert len(server.requests) == 1


def test_a_slow_answer_past_the_time_out_is_retried(tmp_path):
    with MockChatServer("longer", faults=[("sleep", 2.0)]) as server:
        verdicts, summary = run(
            server, make_rows(TEXTS[:1]), tmp_path, concurrency=1, timeout_s=0.5
        )
        assert len(server.requests) == 3
    assert (summary["api_calls"], summary["retries"]) == (2, 1)
    assert verdicts["verdict"].tolist() == [1.0]


def test_an_endpoint_that_never_answers_in_time_is_an_error(tmp_path):
    with MockChatServer("longer", always=("sleep", 1.0)) as server:
        with pytest.raises(LLMJudgeError, match=r"the last with no answer within timeout_s=0\.3"):
            run(server, make_rows(TEXTS[:1]), tmp_path, concurrency=1, timeout_s=0.3, max_retries=1)
        assert len(server.requests) == 2


def garble_some(a: str, b: str) -> str:
    """Malformed when either summary says "GARBLE", else prefers the longer one."""
    if "GARBLE" in a + b:
        return "Comparison: both are fine.\nPreferred: neither"
    return judgment("A" if len(a) >= len(b) else "B")


def test_malformed_answers_are_counted_kept_and_left_out_of_the_win_rate(tmp_path):
    texts = [*TEXTS[:3], " GARBLE long long long long", " GARBLE"]
    with MockChatServer(garble_some) as server:
        verdicts, summary = run(server, make_rows(texts), tmp_path)
    assert len(verdicts) == 5
    assert verdicts["malformed"].tolist() == [False, False, False, True, True]
    assert verdicts["verdict"].iloc[:3].tolist() == [1.0, 1.0, 1.0]
    assert verdicts["verdict"].iloc[3:].isna().all()
    assert verdicts["answer_1"].iloc[4] == "Comparison: both are fine.\nPreferred: neither"
    assert (summary["n_rows"], summary["n_judged"], summary["n_malformed"]) == (5, 3, 2)
    g = group(summary)
    assert (g["n_rows"], g["n_judged"], g["n_malformed"], g["win_rate"]) == (5, 3, 2, 1.0)


def test_a_judge_that_never_answers_properly_gives_no_win_rate(tmp_path):
    with MockChatServer("malformed") as server:
        verdicts, summary = run(server, tmp_path=tmp_path)
    assert verdicts["malformed"].all()
    g = group(summary)
    assert (g["n_judged"], g["n_malformed"]) == (0, 5)
    assert np.isnan(g["win_rate"]) and np.isnan(g["lc_win_rate"])
    assert np.isnan(g["win_rate_low"]) and np.isnan(g["disagreement_share"])


def test_a_judge_that_always_prefers_position_a_gives_only_ties(tmp_path):
    with MockChatServer("always_a") as server:
        verdicts, summary = run(server, tmp_path=tmp_path)
    assert verdicts["preferred_1"].tolist() == ["A"] * 5
    assert verdicts["preferred_2"].tolist() == ["A"] * 5
    assert verdicts["verdict"].tolist() == [0.5] * 5
    g = group(summary)
    assert (g["n_ties"], g["n_disagreements"], g["disagreement_share"]) == (5, 5, 1.0)
    assert (g["win_rate"], g["win_rate_low"], g["win_rate_high"]) == (0.5, 0.5, 0.5)
    assert g["lc_win_rate"] == pytest.approx(0.5, abs=1e-12)


# --- the cache: reruns and resumed runs pay nothing twice ------------------------------------


def test_a_rerun_sends_no_request(tmp_path):
    with MockChatServer("longer") as server:
        first, first_summary = run(server, tmp_path=tmp_path, price_prompt_per_million=1.0)
    with MockChatServer("always_a") as server:  # a different answer would show
        again, summary = run(server, tmp_path=tmp_path, price_prompt_per_million=1.0)
        assert server.requests == []
    pd.testing.assert_frame_equal(first, again)
    assert (summary["api_calls"], summary["cache_hits"], summary["cost_usd_this_run"]) == (
        0,
        10,
        0.0,
    )
    assert summary["cost_usd"] == first_summary["cost_usd"] > 0
    assert summary["prompt_tokens"] == first_summary["prompt_tokens"]
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 10


def test_a_run_resumed_after_a_failure_asks_only_what_is_missing(tmp_path):
    faults = [("ok", None)] * 3
    with MockChatServer("longer", faults=faults, always=("status", 500)) as server:
        with pytest.raises(LLMJudgeError):
            run(server, tmp_path=tmp_path, concurrency=1, max_retries=0)
        assert len(server.requests) == 4
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 3
    with MockChatServer("longer") as server:
        verdicts, summary = run(server, tmp_path=tmp_path)
        assert len(server.requests) == 7
    assert (summary["cache_hits"], summary["api_calls"]) == (3, 7)
    assert verdicts["verdict"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_another_judge_model_is_asked_again(tmp_path):
    with MockChatServer("longer") as server:
        run(server, tmp_path=tmp_path)
        run(server, tmp_path=tmp_path, model="another-judge")
        assert len(server.requests) == 20
        assert {r["body"]["model"] for r in server.requests[10:]} == {"another-judge"}


def test_a_damaged_cache_file_is_an_error_naming_it(tmp_path):
    settings = LLMJudgeSettings(model="judge-model", base_url="http://127.0.0.1:9/v1")
    request = settings.request(judge_prompt("post", "a", "b"))
    key = request_key("judge-model", request)
    cache = JudgmentCache(tmp_path)
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text('{"model": "judge-model", "req')
    with pytest.raises(LLMJudgeError, match=f"{cache.path(key)}: not a cached judgment"):
        cache.get(key, "judge-model", request)


# --- the API key -------------------------------------------------------------------------------


def test_the_key_goes_only_into_the_authorization_header(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    rows_path = tmp_path / "rows.parquet"
    make_rows(TEXTS).to_parquet(rows_path)
    with MockChatServer("longer", faults=[("status", 429)]) as server:
        settings = make_settings(server)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("JUDGE_KEY", KEY)
            run_llm_judge(
                rows_path,
                tmp_path / "out/verdicts.parquet",
                tmp_path / "out/summary.json",
                judge=vars(settings),
                cache_dir=tmp_path / "cache",
                bootstrap_samples=100,
            )
    assert {r["auth"] for r in server.requests} == {f"Bearer {KEY}"}
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) == 13  # rows, verdicts, summary and ten cached answers
    assert not [path for path in written if KEY.encode() in path.read_bytes()]
    assert "retry 1 of 3" in caplog.text and KEY not in caplog.text


def test_a_missing_key_is_an_error_naming_the_variable(tmp_path):
    with MockChatServer("longer") as server:
        with pytest.raises(LLMJudgeError) as error:
            settings = make_settings(server, config_key="evaluate.judges[2]")
            judge_table(make_rows(TEXTS), settings, tmp_path, environ={})
        assert server.requests == []
    assert str(error.value).startswith(
        "evaluate.judges[2].api_key_env: the environment variable 'JUDGE_KEY' is not set or empty"
    )


def test_requests_in_flight_are_bounded_by_concurrency(tmp_path):
    with MockChatServer("longer", delay_s=0.3) as server:
        run(server, tmp_path=tmp_path, concurrency=3)
        assert (len(server.requests), server.max_in_flight) == (10, 3)


# --- the stage -----------------------------------------------------------------------------------


def test_stage_writes_verdicts_and_summary(tmp_path):
    rows_path = tmp_path / "rows.parquet"
    make_rows(TEXTS).assign(sample=0).to_parquet(rows_path)
    with MockChatServer("longer") as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUDGE_KEY", KEY)
        summary = run_llm_judge(
            rows_path,
            tmp_path / "verdicts.parquet",
            tmp_path / "summary.json",
            judge={"model": "judge-model", "base_url": server.base_url, "api_key_env": "JUDGE_KEY"},
            cache_dir=tmp_path / "cache",
            bootstrap_samples=100,
            ci_level=0.9,
            seed=3,
        )
    verdicts = pd.read_parquet(tmp_path / "verdicts.parquet")
    assert len(verdicts) == 5 and verdicts["sample"].tolist() == [0] * 5
    assert verdicts["verdict"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert (summary["model"], summary["n_rows"], len(summary["groups"])) == ("judge-model", 5, 1)
    assert (group(summary)["win_rate_low"], group(summary)["win_rate_high"]) == bootstrap_ci(
        [1, 1, 1, 0, 0], [f"p{i}" for i in range(5)], n_resamples=100, level=0.9, seed=3
    )


def test_rows_without_the_needed_columns_are_an_error_naming_the_file(tmp_path):
    rows_path = tmp_path / "rows.parquet"
    make_rows(TEXTS).drop(columns=["reference", "target_name"]).to_parquet(rows_path)
    with pytest.raises(LLMJudgeError) as error:
        run_llm_judge(
            rows_path,
            tmp_path / "v.parquet",
            tmp_path / "s.json",
            judge={"model": "m", "base_url": "http://127.0.0.1:9/v1"},
            cache_dir=tmp_path / "cache",
        )
    assert str(error.value) == (
        f"{rows_path}: missing columns ['reference', 'target_name']; the judge needs "
        "['post_id', 'subreddit', 'title', 'post', 'reference', 'text', 'method', 'target_name']"
    )


def load_config(*overlays):
    """config.yaml with the overlays deep-merged over it, as `--configfile` does."""
    config = {}
    for name in ("config.yaml", *overlays):
        update_config(config, yaml.safe_load((ROOT / "workflow/config" / name).read_text()))
    return config


@pytest.mark.parametrize("overlays", [(), ("demo.yaml",), ("demo.yaml", "smollm.yaml")])
def test_shipped_configs_leave_the_llm_judge_off(overlays):
    config = validate_config(load_config(*overlays), SCHEMA_PATH)
    assert [judge["kind"] for judge in config["evaluate"]["judges"] if judge["kind"] == "llm"] == []


def test_a_configured_judge_gets_the_schema_defaults():
    config = load_config("demo.yaml")
    config["evaluate"]["judges"] = [
        {"name": "gpt", "kind": "llm", "model": "m", "base_url": "http://localhost:8000/v1"}
    ]
    config["evaluate"]["main_judge"] = "gpt"
    judge = validate_config(config, SCHEMA_PATH)["evaluate"]["judges"][0]
    assert (judge.pop("name"), judge.pop("kind")) == ("gpt", "llm")
    assert LLMJudgeSettings(**judge) == LLMJudgeSettings(
        model="m", base_url="http://localhost:8000/v1"
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"post_template": "POST: {body}"},
            "evaluate.judges[0].post_template: 'POST: {body}' is not a format string over "
            "{subreddit}, {title} and {post} (KeyError: 'body')",
        ),
        (
            {"lc_l2_penalty": 0.0},
            "evaluate.judges[0].lc_l2_penalty: 0.0 must be > 0 (it keeps the length regression "
            "finite when length separates the verdicts)",
        ),
    ],
)
def test_bad_settings_are_errors_naming_their_key(overrides, message):
    with pytest.raises(LLMJudgeError) as error:
        LLMJudgeSettings(
            model="m",
            base_url="http://127.0.0.1:9/v1",
            config_key="evaluate.judges[0]",
            **overrides,
        )
    assert str(error.value) == message


# --- the length-controlled win rate ------------------------------------------------------------


def penalised_log_likelihood(beta, x, y, l2):
    eta = beta[0] + beta[1] * x
    return (y * -np.logaddexp(0, -eta) + (1 - y) * -np.logaddexp(0, eta)).sum() - (
        0.5 * l2 * beta[1] ** 2
    )


@pytest.mark.parametrize("l2", [0.0, 1.0, 10.0])
def test_fractional_logit_is_the_penalised_maximum_likelihood(l2):
    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(size=300))
    y = rng.choice([0.0, 0.5, 1.0], size=300, p=[0.3, 0.2, 0.5])
    y[x > 0.5] = 1.0
    fitted = fit_fractional_logit(x, y, l2)
    best = optimize.minimize(
        lambda b: -penalised_log_likelihood(b, x, y, l2), x0=[0.0, 0.0], method="BFGS", tol=1e-12
    )
    np.testing.assert_allclose(fitted, best.x, atol=1e-5)


def test_a_tie_counts_as_half_a_win_and_half_a_loss():
    x = np.array([-0.9, -0.4, 0.0, 0.3, 0.8, 0.95])
    y = np.array([0.0, 0.5, 1.0, 0.5, 1.0, 0.0])
    # Every row twice, a tie as one win and one loss: the same likelihood, doubled.
    x2 = np.repeat(x, 2)
    y2 = np.where(np.repeat(y, 2) == 0.5, np.tile([1.0, 0.0], len(y)), np.repeat(y, 2))
    np.testing.assert_allclose(fit_fractional_logit(x, y, 1.0), fit_fractional_logit(x2, y2, 2.0))


def test_length_controlled_win_rate_removes_a_length_bias():
    """Verdicts driven by length only, summaries mostly longer: the raw win rate is high, the
    win rate at zero length difference is one half."""
    rng = np.random.default_rng(1)
    d = rng.normal(40.0, 40.0, size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-3.0 * length_feature(d)))).astype(float)
    assert y.mean() > 0.7
    assert length_controlled_win_rate(y, d) == pytest.approx(0.5, abs=0.04)


def test_length_controlled_win_rate_edge_cases():
    assert length_controlled_win_rate([1.0, 1.0], [3, -2]) == 1.0
    assert length_controlled_win_rate([0.0, 0.0, 0.0], [3, -2, 1]) == 0.0
    assert np.isnan(length_controlled_win_rate([], []))
    # No length difference varies: the fit is the mean verdict.
    assert length_controlled_win_rate([1.0, 0.5, 0.0, 1.0], [5, 5, 5, 5]) == pytest.approx(0.625)
    assert length_feature([2.0, -2.0]).tolist() == pytest.approx(
        [np.tanh(2 / np.sqrt(8))] * 1 + [-np.tanh(2 / np.sqrt(8))]
    )
    with pytest.raises(ValueError, match="all outcomes are 1"):
        fit_fractional_logit([0.1, 0.2], [1.0, 1.0])
