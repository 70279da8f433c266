"""The judge's protocol: the DPO paper's TL;DR prompt, the settings, and an answer parsed into a
verdict for the generated summary (both orders asked; see the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

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


class LLMJudgeError(RuntimeError):
    """The judge could not run: no API key, an endpoint that refuses, retries exhausted, a
    damaged cache file, or a table without the columns it needs."""


@dataclass(frozen=True)
class LLMJudgeSettings:
    """An llm judge of `evaluate.judges` in the config, less its `name` and `kind`
    (workflow/schemas/config.schema.yaml documents each key; the defaults here are the
    schema's). `model` and `base_url` have no default. `config_key` is where the judge sits in
    the config (e.g. `evaluate.judges[1]`), named in the errors about its keys."""

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
    config_key: str = "evaluate.judges[] (kind llm)"

    def __post_init__(self):
        try:
            self.post_template.format(subreddit="", title="", post="")
        except (KeyError, IndexError, ValueError) as error:
            raise LLMJudgeError(
                f"{self.config_key}.post_template: {self.post_template!r} is not a format "
                f"string over {{subreddit}}, {{title}} and {{post}} ({type(error).__name__}: "
                f"{error})"
            ) from error
        if self.lc_l2_penalty <= 0:
            raise LLMJudgeError(
                f"{self.config_key}.lc_l2_penalty: {self.lc_l2_penalty} must be > 0 (it keeps "
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
