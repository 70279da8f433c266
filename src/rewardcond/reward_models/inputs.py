"""Reward-model inputs: (post, summary) -> token ids, and length-bucketed batches.

Two input formats cover both kinds of reward model:
- `causal` (the RM trained here): `prompt + summary` tokenized as one text, then EOS; the prompt is
  the shared `prompt.template`.
- `pair` (a pretrained sequence classifier such as OpenAssistant's DeBERTa): the tokenizer's own
  (question, answer) pair encoding of `(prompt, summary)`.
Either way, a text longer than the model's context is shortened on the post side only (the
summary is what is being judged) and flagged as truncated. A CNN/DailyMail article (a post whose
`domain` is `cnndm`) is rendered with its own template (`prompt.cnndm_template`), never with the
TL;DR template's `SUBREDDIT:` header.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np
import pandas as pd

INPUT_FORMATS = ("causal", "pair")
CNNDM_FIELDS = ("article", "title", "site")


def post_fields(posts: pd.DataFrame) -> list[dict]:
    """Rows of a posts table as `{"subreddit", "title", "post"}` dicts (the template's fields),
    plus `domain` (`tldr` / `cnndm`) when the table has that column."""
    columns = ["subreddit", "title", "post", *(["domain"] if "domain" in posts.columns else [])]
    return posts[columns].to_dict("records")


def check_cnndm_template(template: str) -> str:
    """`template` if it is a valid `prompt.cnndm_template`: a format string that uses `{article}`
    and may use `{title}` and `{site}`; ValueError naming the key otherwise."""
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if "article" not in fields or not fields <= set(CNNDM_FIELDS):
        raise ValueError(
            "prompt.cnndm_template must use {article} and may use {title} and {site}; got "
            f"{sorted(fields)} in {template!r}"
        )
    return template


class InputBuilder:
    """Turns (post, summary) into reward-model token ids; shortens the post to fit `max_length`.

    A post is a dict of the template's fields (`subreddit`, `title`, `post`) and optionally
    `domain`: a `cnndm` one (a CNN/DM article stored as post = article, subreddit = site) is
    rendered with `cnndm_template` over `{article}`, `{title}`, `{site}`; without one it is an
    error (ValueError naming `prompt.cnndm_template`).
    """

    def __init__(
        self,
        tokenizer,
        template: str,
        *,
        max_length: int,
        input_format: str = "causal",
        cnndm_template: str | None = None,
    ):
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format={input_format!r}; expected one of {INPUT_FORMATS}")
        if input_format == "causal" and tokenizer.eos_token_id is None:
            raise ValueError("a causal reward model needs a tokenizer with an EOS token")
        self.tokenizer = tokenizer
        self.template = template
        self.cnndm_template = check_cnndm_template(cnndm_template) if cnndm_template else None
        self.max_length = int(max_length)
        self.input_format = input_format

    def prompt(self, post: dict) -> str:
        """The prompt (or, for a pair RM, the question) of one post."""
        domain = post.get("domain", "tldr")
        if domain == "tldr":
            return self.template.format(**post)
        if domain != "cnndm":
            raise ValueError(f"post domain {domain!r}; expected 'tldr' or 'cnndm'")
        if self.cnndm_template is None:
            raise ValueError(
                "a CNN/DM article needs its own template: set prompt.cnndm_template (the TL;DR "
                "template's SUBREDDIT: header does not fit a news article)"
            )
        return self.cnndm_template.format(
            article=post["post"], title=post["title"], site=post["subreddit"]
        )

    def _encode(self, prompts: list[str], summaries: list[str]) -> list[dict]:
        if self.input_format == "pair":
            encoded = self.tokenizer(prompts, summaries)
            keys = [key for key in ("input_ids", "token_type_ids") if key in encoded]
            return [{key: encoded[key][i] for key in keys} for i in range(len(prompts))]
        texts = [prompt + summary for prompt, summary in zip(prompts, summaries, strict=True)]
        eos = self.tokenizer.eos_token_id
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [{"input_ids": [*row, eos]} for row in ids]

    def encode(
        self, posts: Sequence[dict], summaries: Sequence[str]
    ) -> tuple[list[dict], np.ndarray]:
        """Encodings (dicts of token-id lists) and a bool array: was the post shortened?"""
        prompts = [self.prompt(post) for post in posts]
        encodings = self._encode(prompts, list(summaries))
        truncated = np.zeros(len(encodings), dtype=bool)
        for i, encoding in enumerate(encodings):
            if len(encoding["input_ids"]) > self.max_length:
                encodings[i] = self._fit(posts[i], summaries[i], len(encoding["input_ids"]))
                truncated[i] = True
        return encodings, truncated

    def _fit(self, post: dict, summary: str, length: int) -> dict:
        body = self.tokenizer(post["post"], add_special_tokens=False)["input_ids"]
        keep = len(body)
        while length > self.max_length:
            keep -= max(1, length - self.max_length)
            if keep < 0:
                empty = self._encode([self.prompt({**post, "post": ""})], [summary])[0]
                raise ValueError(
                    f"cannot fit a {post.get('subreddit')!r} post into {self.max_length} tokens: "
                    f"without its body, prompt + summary is already {len(empty['input_ids'])} "
                    "tokens; raise reward_model max_length or shorten the template"
                )
            shortened = {**post, "post": self.tokenizer.decode(body[:keep])}
            encoding = self._encode([self.prompt(shortened)], [summary])[0]
            length = len(encoding["input_ids"])
        return encoding


def length_batches(
    lengths: Sequence[int], batch_tokens: int, max_batch_size: int = 512
) -> list[np.ndarray]:
    """Indices grouped longest first so that each padded batch holds <= `batch_tokens` tokens.

    Sorting by length keeps padding small; a sequence longer than `batch_tokens` gets a batch of
    its own. Longest first makes an out-of-memory error show up at the start, not at the end.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, start = [], 0
    while start < len(order):
        width = lengths[order[start]]
        size = max(1, min(max_batch_size, batch_tokens // max(1, width)))
        batches.append(order[start : start + size])
        start += size
    return batches
