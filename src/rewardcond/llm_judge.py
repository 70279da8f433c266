"""A pairwise LLM judge of TL;DR summaries against the human reference, as the field uses it.

Protocol (Rafailov et al. 2023, "Direct Preference Optimization", arXiv:2305.18290, Appendix
C.2, the GPT-4 TL;DR win-rate prompt): the judge sees the post and two summaries, writes a
one-sentence comparison and then `Preferred: A` or `Preferred: B` (`TLDR_PAIRWISE_PROMPT`: the
paper's wording, with a blank line between its blocks; the post is filled in as `post_template`
says, the summaries stripped of outer whitespace). The paper drew the order at random
per comparison; here **both orders are asked** (position swap): the generated summary first as
A, then as B. A generated summary wins (verdict 1) when both orders prefer it, loses (0) when
both prefer the reference, and ties (0.5) when the orders disagree, i.e. the judge preferred a
position, not a summary; `disagreement_share` reports how often that happened. An answer with
no parsable `Preferred:` line is **malformed**: its row is kept in the verdicts with verdict
NaN, counted (`n_malformed`) and left out of the win rates. A generated summary identical to the
reference is a tie without asking (`n_identical`).

Statistics per (method, target_name), over the rows with a verdict:
- `win_rate`: mean verdict (ties count 0.5) with a percentile bootstrap interval that resamples
  prompts (`rewardcond.stats.bootstrap_ci` with post ids as groups);
- `lc_win_rate`: the length-controlled win rate, after AlpacaEval 2 (Dubois et al. 2024,
  "Length-Controlled AlpacaEval", arXiv:2404.04475): a logistic regression of the verdict on the
  normalised length difference `tanh(d / sd(d))`, `d` = characters of the generated summary
  minus the reference's (AlpacaEval's feature), predicted at `d = 0`, i.e. `sigmoid(intercept)`.
  Ties enter as the fractional outcome 0.5 (the same as a half-weight win plus a half-weight
  loss, which is how AlpacaEval fits its preferences in [0, 1]); the fit is Newton's method
  (IRLS) with an L2 penalty `lc_l2_penalty` on the slope only, which keeps it finite when length
  separates the verdicts perfectly. Its interval comes from the same prompt bootstrap.

Cost and robustness: every request is cached on disk, one JSON file per key, the key being a
sha256 of (judge model, the full request: prompt text and sampling parameters); a file is
written atomically once its answer arrived (malformed answers too: they were paid for), so a
rerun, or a run resumed after a kill, pays nothing twice. Requests run in a thread pool of
`concurrency`; 429, 408, 409, 5xx, time-outs (`timeout_s`) and lost connections are retried up
to `max_retries` times after `backoff_initial_s * 2**k` seconds (at most `backoff_max_s`); other
errors (401, 400, 404) stop at once. Tokens (prompt, completion) come from the endpoint's
`usage`; cost = tokens x configured USD price per million tokens.

The API key is read from the environment variable named by `api_key_env` and goes nowhere but
the Authorization header: not into the cache, the verdicts, the summary, logs or errors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rewardcond.artifacts import write_json, write_parquet
from rewardcond.stats import BootstrapSettings, bootstrap_ci, prompt_bootstrap

log = logging.getLogger(__name__)

#: DPO paper, Appendix C.2, "Summarization GPT-4 win rate prompt (S)", with its placeholders.
TLDR_PAIRWISE_PROMPT = (
    "Which of the following summaries does a better job of summarizing the most important "
    "points in the given forum post, without including unimportant or irrelevant details? A "
    "good summary is both precise and concise.\n\n"
    "Post:\n{post}\n\n"
    "Summary A:\n{summary_a}\n\n"
    "Summary B:\n{summary_b}\n\n"
    "FIRST provide a one-sentence comparison of the two summaries, explaining which you prefer "
    'and why. SECOND, on a new line, state only "A" or "B" to indicate your choice. Your '
    "response should use the format:\n"
    "Comparison: <one-sentence comparison and explanation>\n"
    'Preferred: <"A" or "B">'
)
#: The post as the TL;DR queries write it (OpenAI's summarize-from-feedback format).
DEFAULT_POST_TEMPLATE = "SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}"
INPUT_COLUMNS = (
    "post_id",
    "subreddit",
    "title",
    "post",
    "reference",
    "text",
    "method",
    "target_name",
)
GROUP_COLUMNS = ("method", "target_name")
#: `Preferred: A` on a line of its own; quotes, markdown bold and a full stop are tolerated.
_PREFERRED = re.compile(
    r"^[ \t*_#>-]*preferred[ \t*_]*:[ \t*_]*[\"'“”‘’]?([AB])[\"'“”‘’]?[ \t*_.]*$",
    re.IGNORECASE | re.MULTILINE,
)
_COMPARISON = re.compile(r"^[ \t*_]*comparison[ \t*_]*:[ \t*_]*(.*)$", re.IGNORECASE | re.MULTILINE)
_RETRIED_STATUS = (408, 409, 429)


class LLMJudgeError(RuntimeError):
    """The judge could not run: no API key, an endpoint that refuses, retries exhausted, a
    damaged cache file, or a table without the columns it needs."""


@dataclass(frozen=True)
class LLMJudgeSettings:
    """`evaluate.llm_judge` of the config (workflow/schemas/config.schema.yaml documents each
    key; the defaults here are the schema's). `model` and `base_url` have no default."""

    model: str
    base_url: str
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_completion_tokens: int = 256
    timeout_s: float = 60.0
    max_retries: int = 6
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    concurrency: int = 4
    price_prompt_per_million: float = 0.0
    price_completion_per_million: float = 0.0
    post_template: str = DEFAULT_POST_TEMPLATE
    lc_l2_penalty: float = 1.0

    def __post_init__(self):
        try:
            self.post_template.format(subreddit="", title="", post="")
        except (KeyError, IndexError, ValueError) as error:
            raise LLMJudgeError(
                f"evaluate.llm_judge.post_template: {self.post_template!r} is not a format "
                f"string over {{subreddit}}, {{title}} and {{post}} ({type(error).__name__}: "
                f"{error})"
            ) from error
        if self.lc_l2_penalty <= 0:
            raise LLMJudgeError(
                f"evaluate.llm_judge.lc_l2_penalty: {self.lc_l2_penalty} must be > 0 (it keeps "
                "the length regression finite when length separates the verdicts)"
            )

    def request(self, prompt: str) -> dict:
        """The chat-completions request body (less `model`) that judges `prompt`."""
        return {
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
            "max_completion_tokens": self.max_completion_tokens,
        }

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Estimated USD for that many tokens at the configured prices."""
        return (
            prompt_tokens * self.price_prompt_per_million
            + completion_tokens * self.price_completion_per_million
        ) / 1e6


# --- the protocol -----------------------------------------------------------------------------


def judge_prompt(post: str, summary_a: str, summary_b: str) -> str:
    """The DPO TL;DR prompt for one ordered pair; summaries are stripped of outer whitespace
    (OpenAI's references start with a space)."""
    return TLDR_PAIRWISE_PROMPT.format(
        post=post.strip(), summary_a=summary_a.strip(), summary_b=summary_b.strip()
    )


def format_post(row: Mapping, template: str = DEFAULT_POST_TEMPLATE) -> str:
    """The post as the judge sees it: `template` over the row's subreddit, title and post."""
    return template.format(
        subreddit=row["subreddit"], title=str(row["title"]).strip(), post=str(row["post"]).strip()
    )


def parse_answer(content: str | None) -> tuple[str | None, str]:
    """(`"A"` or `"B"`, the comparison sentence) of a judge's answer; (None, ...) when no
    `Preferred:` line names exactly one of A and B (no line, another letter, or lines that
    contradict each other)."""
    if not content:
        return None, ""
    letters = {letter.upper() for letter in _PREFERRED.findall(content)}
    comparison = _COMPARISON.search(content)
    rationale = comparison[1].strip() if comparison else ""
    return (letters.pop() if len(letters) == 1 else None), rationale


def combine_orders(first: str | None, second: str | None) -> tuple[float, bool]:
    """(verdict for the generated summary, whether the orders disagree) from the preferred
    positions of the two orders: `first` with the generated summary as A, `second` with it as
    B. Verdict 1 = both orders prefer it, 0 = both prefer the reference, 0.5 = they disagree;
    (NaN, False) when either answer was malformed (None)."""
    if first is None or second is None:
        return float("nan"), False
    generated_first, generated_second = first == "A", second == "B"
    if generated_first == generated_second:
        return float(generated_first), False
    return 0.5, True


def row_verdict(answer_1: str | None, answer_2: str | None) -> dict:
    """The verdict columns of one row from its answers with the generated summary as A
    (`answer_1`) and as B (`answer_2`); (None, None) is an identical pair: a tie, not asked."""
    if answer_1 is None and answer_2 is None:
        preferred_1 = preferred_2 = None
        rationale_1 = rationale_2 = ""
        verdict, disagree = 0.5, False
    else:
        preferred_1, rationale_1 = parse_answer(answer_1)
        preferred_2, rationale_2 = parse_answer(answer_2)
        verdict, disagree = combine_orders(preferred_1, preferred_2)
    return {
        "preferred_1": preferred_1,
        "preferred_2": preferred_2,
        "rationale_1": rationale_1,
        "rationale_2": rationale_2,
        "answer_1": answer_1,
        "answer_2": answer_2,
        "malformed": bool(np.isnan(verdict)),
        "disagree": disagree,
        "verdict": verdict,
    }


# --- requests, retries and the cache ------------------------------------------------------------


def request_key(model: str, request: Mapping) -> str:
    """sha256 of the judge model and the full request (prompt text and sampling parameters)."""
    blob = json.dumps({"model": model, "request": request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class Completion:
    """One judge answer: its text, why it stopped, and the tokens it cost."""

    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class JudgmentCache:
    """One JSON file per request key under `root/<key[:2]>/<key>.json`, written atomically."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, model: str, request: Mapping) -> Completion | None:
        """The cached answer, or None. A file that is not a complete record of this very
        request is an error naming it (atomic writes never leave one)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record["model"] != model or record["request"] != json.loads(json.dumps(request)):
                raise ValueError("it records another request")
            return Completion(**record["completion"])
        except (ValueError, KeyError, TypeError) as error:
            raise LLMJudgeError(
                f"{path}: not a cached judgment of this request ({error}); delete the file to "
                "ask the judge again"
            ) from error

    def put(self, key: str, model: str, request: Mapping, completion: Completion) -> None:
        record = {"model": model, "request": request, "completion": asdict(completion)}
        write_json(self.path(key), record)


@dataclass
class RequestCounts:
    """What a run sent: answered requests, retries (failed attempts retried) and cache hits."""

    api_calls: int = 0
    retries: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class ChatJudge:
    """Sends judge prompts to an OpenAI-compatible endpoint with the `openai` client, retrying
    transient failures with exponential backoff, and caches every answer.

    `environ` is where the API key is read (default `os.environ`); `sleep` is called with each
    backoff delay in seconds (tests pass a recorder).
    """

    def __init__(
        self,
        settings: LLMJudgeSettings,
        cache: JudgmentCache,
        *,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import openai  # only a run that judges needs the client

        environ = os.environ if environ is None else environ
        api_key = environ.get(settings.api_key_env)
        if not api_key:
            raise LLMJudgeError(
                f"evaluate.llm_judge.api_key_env: the environment variable "
                f"{settings.api_key_env!r} is not set or empty; export the judge endpoint's API "
                "key there (a local `vllm serve` without --api-key takes any value, e.g. EMPTY)"
            )
        self.settings = settings
        self.cache = cache
        self.counts = RequestCounts()
        self._sleep = sleep
        self._openai = openai
        # Retries are ours (counted, tested); the client makes one attempt per call.
        self._client = openai.OpenAI(
            api_key=api_key, base_url=settings.base_url, timeout=settings.timeout_s, max_retries=0
        )

    def judge(self, prompt: str) -> Completion:
        """The answer to `prompt`, from the cache when it holds it, else from the endpoint."""
        request = self.settings.request(prompt)
        key = request_key(self.settings.model, request)
        cached = self.cache.get(key, self.settings.model, request)
        if cached is not None:
            self.counts.add(cache_hits=1)
            return cached
        completion = self._complete(request)
        self.cache.put(key, self.settings.model, request, completion)
        self.counts.add(
            api_calls=1,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
        return completion

    def _retryable(self, error: Exception) -> bool:
        if isinstance(error, self._openai.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(error, self._openai.APIStatusError):
            return error.status_code in _RETRIED_STATUS or error.status_code >= 500
        return False

    def _describe(self, error: Exception) -> str:
        if isinstance(error, self._openai.APITimeoutError):
            return f"no answer within timeout_s={self.settings.timeout_s}"
        if isinstance(error, self._openai.APIStatusError):
            return f"HTTP {error.status_code}: {str(error)[:300]}"
        return f"{type(error).__name__}: {str(error)[:300]}"

    def _complete(self, request: dict) -> Completion:
        settings = self.settings
        attempts = settings.max_retries + 1
        for attempt in range(attempts):
            try:
                response = self._client.chat.completions.create(model=settings.model, **request)
            except self._openai.OpenAIError as error:
                where = f"judge endpoint {settings.base_url} (model {settings.model!r})"
                if not self._retryable(error):
                    hint = ""
                    if isinstance(error, self._openai.AuthenticationError):
                        hint = f"; check the key in the environment variable {settings.api_key_env}"
                    raise LLMJudgeError(f"{where}: {self._describe(error)}{hint}") from error
                if attempt == attempts - 1:
                    raise LLMJudgeError(
                        f"{where} failed {attempts} attempts (max_retries={settings.max_retries}),"
                        f" the last with {self._describe(error)}; the judgments answered so far "
                        f"are cached in {self.cache.root} and a rerun resumes from there"
                    ) from error
                delay = min(settings.backoff_max_s, settings.backoff_initial_s * 2**attempt)
                log.warning(
                    "%s: %s; retry %d of %d in %.3g s",
                    where,
                    self._describe(error),
                    attempt + 1,
                    settings.max_retries,
                    delay,
                )
                self.counts.add(retries=1)
                self._sleep(delay)
                continue
            choice = response.choices[0] if response.choices else None
            usage = response.usage
            return Completion(
                content=(choice.message.content or "") if choice else "",
                finish_reason=choice.finish_reason if choice else None,
                prompt_tokens=int(usage.prompt_tokens) if usage else 0,
                completion_tokens=int(usage.completion_tokens) if usage else 0,
            )
        raise AssertionError("unreachable")

    def judge_all(self, prompts: Sequence[str]) -> dict[str, Completion]:
        """{prompt: answer} for the distinct `prompts`, `concurrency` at a time. The first
        error stops the run: no new request starts, those in flight finish (and are cached),
        and the error is raised."""
        unique = list(dict.fromkeys(prompts))
        failed = threading.Event()

        def task(prompt: str) -> Completion | None:
            if failed.is_set():
                return None
            try:
                return self.judge(prompt)
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            futures = [pool.submit(task, prompt) for prompt in unique]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                future.cancel()
        for future in futures:
            if not future.cancelled() and future.exception() is not None:
                raise future.exception()
        return {prompt: future.result() for prompt, future in zip(unique, futures, strict=True)}


# --- statistics ----------------------------------------------------------------------------------


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def fit_fractional_logit(
    x: Sequence[float], y: Sequence[float], l2: float = 1.0, *, max_iter: int = 100
) -> tuple[float, float]:
    """(intercept, slope) maximising sum y log p + (1 - y) log(1 - p) - l2/2 slope^2 with
    p = sigmoid(intercept + slope x), for outcomes y in [0, 1] (fractional logit). Newton's
    method with step halving; the intercept is not penalised. Raises ValueError when all y are
    0 or all are 1 (the intercept is infinite) or when it does not converge."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(
            f"x and y must be two 1-d arrays of one non-zero length: {x.shape}, {y.shape}"
        )
    mean = y.mean()
    if mean <= 0.0 or mean >= 1.0:
        raise ValueError(f"all outcomes are {mean:g}: the intercept is infinite")
    design = np.column_stack([np.ones_like(x), x])
    penalty = np.diag([0.0, l2])

    def objective(beta):
        eta = design @ beta
        # log p = -log(1 + e^-eta), log(1 - p) = -log(1 + e^eta)
        return (
            -(y * np.logaddexp(0.0, -eta) + (1.0 - y) * np.logaddexp(0.0, eta)).sum()
            - 0.5 * l2 * beta[1] ** 2
        )

    beta = np.array([np.log(mean / (1.0 - mean)), 0.0])
    value = objective(beta)
    for _ in range(max_iter):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (y - p) - penalty @ beta
        hessian = (design.T * (p * (1.0 - p))) @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while objective(beta + scale * step) < value - 1e-12 and scale > 1e-8:
            scale /= 2.0
        beta = beta + scale * step
        new_value = objective(beta)
        if np.max(np.abs(scale * step)) < 1e-10 or abs(new_value - value) < 1e-12 * max(
            1.0, abs(value)
        ):
            return float(beta[0]), float(beta[1])
        value = new_value
    raise ValueError(f"the fractional logit did not converge in {max_iter} iterations")


def length_feature(length_differences: Sequence[float]) -> np.ndarray:
    """AlpacaEval's length feature tanh(d / sd(d)) (sd with ddof 1); zeros when sd is 0."""
    d = np.asarray(length_differences, dtype=np.float64)
    sd = d.std(ddof=1) if d.size > 1 else 0.0
    return np.tanh(d / sd) if sd > 0 else np.zeros_like(d)


def length_controlled_win_rate(
    verdicts: Sequence[float], length_differences: Sequence[float], l2: float = 1.0
) -> float:
    """Win rate predicted at zero length difference by the fractional logit of the verdicts
    (1, 0.5, 0) on `length_feature(length_differences)`; the mean verdict when all verdicts are
    equal (0 or 1 exactly); NaN for no verdicts."""
    y = np.asarray(verdicts, dtype=np.float64)
    if y.size == 0:
        return float("nan")
    if y.min() == y.max() and y[0] in (0.0, 1.0):
        return float(y[0])
    intercept, _ = fit_fractional_logit(length_feature(length_differences), y, l2)
    return float(_sigmoid(intercept))


def win_rate_table(
    verdicts: pd.DataFrame, bootstrap: BootstrapSettings, l2: float = 1.0
) -> pd.DataFrame:
    """One row per (method, target_name) of the verdicts table: counts, win rate and
    length-controlled win rate with prompt-bootstrap intervals, and the share of disagreeing
    orders (over rows judged in both orders, identical pairs excluded)."""
    rows = []
    for (method, target), group in verdicts.groupby(list(GROUP_COLUMNS), sort=False):
        judged = group[~group["malformed"]]
        asked = judged[~judged["identical"]]
        values = judged["verdict"].to_numpy(dtype=np.float64)
        posts = judged["post_id"].to_numpy()
        row = {
            "method": method,
            "target_name": target,
            "n_rows": len(group),
            "n_judged": len(judged),
            "n_malformed": int(group["malformed"].sum()),
            "n_identical": int(group["identical"].sum()),
            "n_wins": int((values == 1.0).sum()),
            "n_ties": int((values == 0.5).sum()),
            "n_losses": int((values == 0.0).sum()),
            "n_disagreements": int(asked["disagree"].sum()),
            "disagreement_share": float(asked["disagree"].mean()) if len(asked) else np.nan,
            "mean_length_difference": float(judged["length_difference"].mean())
            if len(judged)
            else np.nan,
            "win_rate": float(values.mean()) if values.size else np.nan,
        }
        row["win_rate_low"], row["win_rate_high"] = bootstrap_ci(
            values,
            posts,
            n_resamples=bootstrap.n_resamples,
            level=bootstrap.level,
            seed=bootstrap.seed,
        )
        row["lc_win_rate"] = length_controlled_win_rate(values, judged["length_difference"], l2)
        row["lc_win_rate_low"], row["lc_win_rate_high"] = prompt_bootstrap(
            lambda drawn: length_controlled_win_rate(
                drawn["verdict"], drawn["length_difference"], l2
            ),
            [judged],
            ["verdict", "length_difference"],
            n_resamples=bootstrap.n_resamples,
            level=bootstrap.level,
            seed=bootstrap.seed,
        )
        rows.append(row)
    return pd.DataFrame(rows)


# --- the stage ----------------------------------------------------------------------------------


def judge_table(
    rows: pd.DataFrame,
    settings: LLMJudgeSettings,
    cache_dir: str | os.PathLike,
    *,
    bootstrap: BootstrapSettings | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    where: str = "the rows",
) -> tuple[pd.DataFrame, dict]:
    """Judge every generated summary (`text`) against its reference in both orders.

    `rows` holds `INPUT_COLUMNS` (post fields, reference, generated text, method, target_name;
    other columns are kept). Returns (verdicts, summary): verdicts are `rows` plus
    `length_difference` (characters, generated - reference), `identical`, `preferred_1`,
    `preferred_2` (position chosen with the generated summary as A, then as B; None when
    malformed), `rationale_1/2`, `answer_1/2` (the raw answers), `malformed`, `disagree` and
    `verdict` (1 win, 0.5 tie, 0 loss, NaN malformed). The summary dict holds the judge, the
    overall counts, tokens and estimated cost (of every judgment used, and of this run's new
    requests) and `groups`, the records of `win_rate_table` (`bootstrap` defaults to
    `BootstrapSettings()`).
    """
    missing = [column for column in INPUT_COLUMNS if column not in rows.columns]
    if missing:
        raise LLMJudgeError(
            f"{where}: missing columns {missing}; the judge needs {list(INPUT_COLUMNS)}"
        )
    frame = rows.reset_index(drop=True).copy()
    generated = frame["text"].fillna("").astype(str).str.strip()
    reference = frame["reference"].fillna("").astype(str).str.strip()
    frame["length_difference"] = generated.str.len() - reference.str.len()
    frame["identical"] = (generated == reference).to_numpy()
    posts = [format_post(row, settings.post_template) for row in frame.to_dict("records")]
    first = [judge_prompt(p, g, r) for p, g, r in zip(posts, generated, reference, strict=True)]
    second = [judge_prompt(p, r, g) for p, g, r in zip(posts, generated, reference, strict=True)]
    asked = ~frame["identical"].to_numpy()
    wanted = [prompt for i, prompt in enumerate(first) if asked[i]]
    wanted += [prompt for i, prompt in enumerate(second) if asked[i]]

    judge = ChatJudge(settings, JudgmentCache(cache_dir), environ=environ, sleep=sleep)
    answers = judge.judge_all(wanted)

    records = [
        row_verdict(answers[first[i]].content, answers[second[i]].content)
        if asked[i]
        else row_verdict(None, None)
        for i in range(len(frame))
    ]
    verdicts = pd.concat([frame, pd.DataFrame(records)], axis=1)

    used = [answers[prompt] for prompt in dict.fromkeys(wanted)]
    prompt_tokens = sum(c.prompt_tokens for c in used)
    completion_tokens = sum(c.completion_tokens for c in used)
    counts = judge.counts
    groups = win_rate_table(verdicts, bootstrap or BootstrapSettings(), settings.lc_l2_penalty)
    summary = {
        "judge": "llm",
        "model": settings.model,
        "base_url": settings.base_url,
        "protocol": "DPO (Rafailov et al. 2023) App. C.2 TL;DR prompt, both orders; a win "
        "needs both, disagreeing orders tie (0.5)",
        "n_rows": len(verdicts),
        "n_judged": int((~verdicts["malformed"]).sum()),
        "n_malformed": int(verdicts["malformed"].sum()),
        "n_identical": int(verdicts["identical"].sum()),
        "n_prompts_distinct": len(used),
        "api_calls": counts.api_calls,
        "retries": counts.retries,
        "cache_hits": counts.cache_hits,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost_usd": settings.cost_usd(prompt_tokens, completion_tokens),
        "prompt_tokens_this_run": counts.prompt_tokens,
        "completion_tokens_this_run": counts.completion_tokens,
        "cost_usd_this_run": settings.cost_usd(counts.prompt_tokens, counts.completion_tokens),
        "price_prompt_per_million": settings.price_prompt_per_million,
        "price_completion_per_million": settings.price_completion_per_million,
        "lc_length_unit": "characters",
        "lc_l2_penalty": settings.lc_l2_penalty,
        "groups": groups.to_dict("records"),
    }
    log.info(
        "LLM judge %s: %d rows, %d malformed, %d API calls (%d retries), %d cache hits, "
        "%d + %d tokens, estimated $%.4f (this run $%.4f)",
        settings.model,
        summary["n_rows"],
        summary["n_malformed"],
        counts.api_calls,
        counts.retries,
        counts.cache_hits,
        prompt_tokens,
        completion_tokens,
        summary["cost_usd"],
        summary["cost_usd_this_run"],
    )
    return verdicts, summary


def run_llm_judge(
    rows_path: str | os.PathLike,
    verdicts_path: str | os.PathLike,
    summary_path: str | os.PathLike,
    *,
    judge: Mapping,
    cache_dir: str | os.PathLike,
    bootstrap_samples: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict:
    """The stage: judge the rows of a Parquet table (`judge_table`), write the verdicts as
    Parquet and the summary as JSON (both atomically), return the summary. `judge` is the
    config's `evaluate.llm_judge` mapping."""
    settings = LLMJudgeSettings(**judge)
    rows = pd.read_parquet(rows_path)
    verdicts, summary = judge_table(
        rows,
        settings,
        cache_dir,
        bootstrap=BootstrapSettings(n_resamples=bootstrap_samples, level=ci_level, seed=seed),
        where=str(rows_path),
    )
    write_parquet(verdicts_path, verdicts)
    write_json(summary_path, summary)
    return summary
