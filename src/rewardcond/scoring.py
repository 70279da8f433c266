"""Scoring summaries with a reward model: input building, length-bucketed batching, the stage.

Two input formats cover both kinds of reward model:
- `causal` (the RM trained here): `prompt + summary` tokenized as one text, then EOS; the prompt is
  the shared `prompt.template`.
- `pair` (a pretrained sequence classifier such as OpenAssistant's DeBERTa): the tokenizer's own
  (question, answer) pair encoding of `(prompt, summary)`.
Either way, a text longer than the model's context is shortened on the post side only (the
summary is what is being judged) and flagged as truncated. A CNN/DailyMail article (a post whose
`domain` is `cnndm`) is rendered with its own template (`prompt.cnndm_template`), never with the
TL;DR template's `SUBREDDIT:` header.

`load_scorer(...)` is the entry point for later stages; `score_completions(...)` is the
`score_completions` rule.
"""

from __future__ import annotations

import json
import logging
import os
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardcond.artifacts import resolve_device, sha256_file, write_json, write_parquet
from rewardcond.distributed import merge_shards, take_shard
from rewardcond.hub import open_hub_model

logger = logging.getLogger(__name__)

INPUT_FORMATS = ("causal", "pair")
ON_EMPTY = ("error", "skip")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEMO_COMMAND = "snakemake --cores 2 --configfile workflow/config/demo.yaml"
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


def pad_encodings(encodings: Sequence[dict], pad_id: int, device: str) -> dict:
    """Right-pad encodings into `input_ids`, `attention_mask` (+ `token_type_ids`) on `device`."""
    width = max(len(e["input_ids"]) for e in encodings)
    batch = {"attention_mask": torch.zeros((len(encodings), width), dtype=torch.long)}
    for key in encodings[0]:
        fill = pad_id if key == "input_ids" else 0
        batch[key] = torch.full((len(encodings), width), fill, dtype=torch.long)
        for row, encoding in enumerate(encodings):
            batch[key][row, : len(encoding[key])] = torch.as_tensor(encoding[key])
    for row, encoding in enumerate(encodings):
        batch["attention_mask"][row, : len(encoding["input_ids"])] = 1
    return {key: value.to(device) for key, value in batch.items()}


@dataclass
class ScoreResult:
    """Per input: raw reward (NaN where skipped), post shortened to fit, skipped as empty."""

    rewards: np.ndarray
    truncated: np.ndarray
    skipped: np.ndarray


class Scorer:
    """Scores (post, summary) pairs with a reward model in length-bucketed batches.

    `identity` names the model in outputs (`hub_id@revision` or `trained:<sha256[:16]>`).
    `on_empty`: an empty (whitespace-only) summary raises (`error`) or is skipped with a NaN
    reward and counted (`skip`). A non-finite reward always raises. `cnndm_template` renders
    CNN/DM articles (see `InputBuilder`).
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        template: str,
        identity: str,
        input_format: str = "causal",
        max_length: int | None = None,
        device: str = "cpu",
        batch_tokens: int = 16384,
        max_batch_size: int = 512,
        on_empty: str = "error",
        progress: bool = True,
        cnndm_template: str | None = None,
    ):
        if on_empty not in ON_EMPTY:
            raise ValueError(f"on_empty={on_empty!r}; expected one of {ON_EMPTY}")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.identity = identity
        self.device = device
        self.batch_tokens = batch_tokens
        self.max_batch_size = max_batch_size
        self.on_empty = on_empty
        self.progress = progress
        self.builder = InputBuilder(
            tokenizer,
            template,
            max_length=max_length or model_context(model, tokenizer),
            input_format=input_format,
            cnndm_template=cnndm_template,
        )

    @property
    def max_length(self) -> int:
        return self.builder.max_length

    def score(self, posts: Sequence[dict], summaries: Sequence[str]) -> np.ndarray:
        """Raw rewards (float64) for `summaries` of `posts` (dicts of subreddit, title, post)."""
        return self.score_detailed(posts, summaries).rewards

    def score_detailed(
        self, posts: Sequence[dict], summaries: Sequence[str], names: Sequence[str] | None = None
    ) -> ScoreResult:
        """Rewards plus truncation and skip flags; `names` label rows in error messages."""
        if len(posts) != len(summaries):
            raise ValueError(f"{len(posts)} posts but {len(summaries)} summaries")
        names = list(names) if names is not None else [f"row {i}" for i in range(len(summaries))]
        skipped = np.array([not str(s).strip() for s in summaries], dtype=bool)
        if skipped.any() and self.on_empty == "error":
            first = names[int(np.flatnonzero(skipped)[0])]
            raise ValueError(
                f"{int(skipped.sum())} empty summaries (first: {first}); "
                "set reward_model.on_empty: skip to skip and count them"
            )
        keep = np.flatnonzero(~skipped)
        encodings, truncated_kept = self.builder.encode(
            [posts[i] for i in keep], [summaries[i] for i in keep]
        )
        rewards = np.full(len(summaries), np.nan)
        truncated = np.zeros(len(summaries), dtype=bool)
        truncated[keep] = truncated_kept
        lengths = [len(e["input_ids"]) for e in encodings]
        batches = length_batches(lengths, self.batch_tokens, self.max_batch_size)
        kept_rewards = self.run_batches(encodings, batches, [names[i] for i in keep])
        rewards[keep] = kept_rewards
        return ScoreResult(rewards=rewards, truncated=truncated, skipped=skipped)

    @torch.inference_mode()
    def run_batches(
        self, encodings: Sequence[dict], batches: Sequence[np.ndarray], names: Sequence[str]
    ) -> np.ndarray:
        """Score `encodings` batch by batch (any grouping); rewards come back in input order."""
        rewards = np.full(len(encodings), np.nan)
        pad_id = self.tokenizer.pad_token_id
        total = sum(len(e["input_ids"]) for e in encodings)
        with tqdm(total=total, desc="scoring", unit="tok", disable=not self.progress) as bar:
            for batch in batches:
                inputs = pad_encodings([encodings[i] for i in batch], pad_id, self.device)
                values = self.model(**inputs).logits[:, 0].float().cpu().numpy()
                bad = ~np.isfinite(values)
                if bad.any():
                    raise ValueError(
                        f"reward model {self.identity} gave a non-finite reward "
                        f"({values[bad][0]}) for {names[batch[np.flatnonzero(bad)[0]]]}"
                    )
                rewards[batch] = values
                bar.update(int(inputs["attention_mask"].sum()))
        return rewards


def model_context(model, tokenizer) -> int:
    """The longest input the model takes: its own setting or position table, capped by the
    tokenizer's limit."""
    config = model.config
    limits = [
        getattr(model, "max_length", None)
        or getattr(config, "n_positions", None)
        or getattr(config, "max_position_embeddings", None),
        tokenizer.model_max_length if tokenizer.model_max_length < 10**9 else None,
    ]
    limits = [limit for limit in limits if limit]
    if not limits:
        raise ValueError(
            "the reward model has no known context length; set reward_model.max_length"
        )
    return int(min(limits))


def load_scorer(
    *,
    kind: str,
    path_or_hub_id: str | os.PathLike,
    revision: str | None = None,
    template: str,
    device: str = "auto",
    dtype: str = "float32",
    max_length: int | None = None,
    batch_tokens: int = 16384,
    on_empty: str = "error",
    progress: bool = True,
    cnndm_template: str | None = None,
) -> Scorer:
    """A `Scorer` for a reward model.

    kind `pretrained`: an `AutoModelForSequenceClassification` fed `(prompt, summary)` pairs, where
    `template` renders the prompt (question); `path_or_hub_id` is a folder of the
    `download_hub_model` rule (read from disk only; identity `hub_id@revision` from its
    manifest), any local folder, or a hub id at a pinned `revision`, loaded from the local
    cache first and else fetched once with a time-out (`rewardcond.hub.local_snapshot`).
    kind `train`: the reward model this pipeline trained, from its folder, fed
    `prompt + summary + EOS`. Either way `cnndm_template` renders a CNN/DM article
    (`InputBuilder`). `dtype` applies on CUDA only; CPU always runs float32.
    Never runs remote code. A hub id that is neither cached nor reachable fails within the
    time-out (`HubModelUnavailableError`, a RuntimeError) naming the model, the revision, what
    to do and the offline demo.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; expected one of {sorted(DTYPES)}")
    device = resolve_device(device)
    torch_dtype = DTYPES[dtype] if device.startswith("cuda") else torch.float32
    if kind == "train":
        from rewardcond.reward_model import RewardModel  # imports scoring; loaded on demand

        path = Path(path_or_hub_id)
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} not found: train the reward model first")
        model = RewardModel.from_pretrained(path, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
        identity = f"trained:{sha256_file(weights)[:16]}"
        input_format = "causal"
    elif kind == "pretrained":
        # A folder of the download_hub_model rule (read from disk only), or the cache first.
        folder, identity = open_hub_model(path_or_hub_id, revision, what="pretrained reward model")
        model, tokenizer = _load_pretrained(str(folder), revision, torch_dtype)
        use_eos_as_pad(model, tokenizer, identity)
        input_format = "pair"
    else:
        raise ValueError(f"kind={kind!r}; expected 'pretrained' or 'train'")
    return Scorer(
        model,
        tokenizer,
        template=template,
        identity=identity,
        input_format=input_format,
        max_length=max_length,
        device=device,
        batch_tokens=batch_tokens,
        on_empty=on_empty,
        progress=progress,
        cnndm_template=cnndm_template,
    )


def _load_pretrained(hub_id: str, revision: str | None, dtype: torch.dtype):
    if not Path(hub_id).is_dir() and not revision:
        raise ValueError(f"reward model {hub_id!r}: pin a revision (reward_model.revision)")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            hub_id, revision=revision, dtype=dtype, trust_remote_code=False
        )
        tokenizer = AutoTokenizer.from_pretrained(
            hub_id, revision=revision, trust_remote_code=False
        )
    except OSError as error:
        raise RuntimeError(
            f"could not load the pretrained reward model {hub_id}@{revision} ({error}). "
            "It must be downloadable from the Hugging Face Hub or already cached. Without "
            f"internet, run the offline demo instead: {DEMO_COMMAND}"
        ) from error
    if model.config.num_labels != 1:
        raise ValueError(
            f"{hub_id} has {model.config.num_labels} output labels; a reward model has exactly 1"
        )
    return model, tokenizer


def use_eos_as_pad(model, tokenizer, name: str) -> None:
    """Make a pretrained sequence classifier and its tokenizer agree on a pad token (in place).

    Batched scoring pads every row to the longest, so it needs one; GPT-2 and Llama based
    reward models ship without. A tokenizer without a pad token gets its EOS as pad, and the
    model config's `pad_token_id` is set to the tokenizer's pad id: the GPT-2 / Llama classifiers
    read the score at the last token that is not `config.pad_token_id`, so it must be the id the
    batches are padded with (a row that itself ends in EOS is then read one token earlier, alone
    or batched alike). Both changes are logged as warnings naming `name`.

    Raises:
        ValueError: naming `name`, if the tokenizer has neither a pad nor an EOS token.
    """
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ValueError(
                f"reward model {name}: its tokenizer has neither a pad nor an EOS token, so rows "
                "of different lengths cannot be batched; set pad_token in its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
        logger.warning(
            "reward model %s: no pad token; padding with EOS %r (id %d)",
            name,
            tokenizer.eos_token,
            tokenizer.eos_token_id,
        )
    if model.config.pad_token_id != tokenizer.pad_token_id:
        logger.warning(
            "reward model %s: config pad_token_id %s -> %d, the id its tokenizer pads with",
            name,
            model.config.pad_token_id,
            tokenizer.pad_token_id,
        )
        model.config.pad_token_id = tokenizer.pad_token_id


def score_completions(
    *,
    completions_path: str | os.PathLike,
    posts_path: str | os.PathLike,
    output_path: str | os.PathLike,
    report_path: str | os.PathLike,
    scorer: Scorer,
    shard: str = "1-of-1",
) -> dict:
    """The `score_completions` stage: every completion scored, plus a report of what happened.

    Output = the completions table + `reward` (float64, raw), `reward_model` (identity) and
    `truncated` (bool), in the input's row order; rows skipped as empty are left out and counted.
    `shard` ("<i>-of-<n>") scores only that contiguous block of rows; `merge_scored_shards`
    joins the blocks into the single-job output.
    """
    completions = take_shard(pd.read_parquet(completions_path), shard)
    posts = pd.read_parquet(posts_path).set_index("post_id", drop=False)
    missing = ~completions["post_id"].isin(posts.index)
    if missing.any():
        raise ValueError(
            f"{completions_path}: {int(missing.sum())} rows have a post_id missing from "
            f"{posts_path}, e.g. {completions['post_id'][missing].iloc[0]!r}"
        )
    started = time.perf_counter()
    result = scorer.score_detailed(
        post_fields(posts.loc[completions["post_id"]]),
        completions["text"].tolist(),
        names=[f"completion_id {c}" for c in completions["completion_id"]],
    )
    seconds = time.perf_counter() - started
    scored = completions.assign(
        reward=result.rewards, reward_model=scorer.identity, truncated=result.truncated
    )[~result.skipped]
    write_parquet(output_path, scored.reset_index(drop=True))
    report = {
        "reward_model": scorer.identity,
        "max_length": scorer.max_length,
        "n_in": len(completions),
        "n_scored": len(scored),
        "n_skipped_empty": int(result.skipped.sum()),
        "skipped_completion_ids": completions["completion_id"][result.skipped].tolist(),
        "n_truncated": int(result.truncated.sum()),
        "seconds": round(seconds, 3),
        "device": scorer.device,
        "reward_by_source_split": reward_by_source_split(scored),
    }
    write_json(report_path, report)
    logger.info(
        "scored %d of %d completions in %.1f s (%d truncated, %d skipped as empty)",
        report["n_scored"],
        report["n_in"],
        seconds,
        report["n_truncated"],
        report["n_skipped_empty"],
    )
    return report


def reward_by_source_split(scored: pd.DataFrame) -> list[dict]:
    """Reward count, mean, std, min and max per completion source and split (for reports)."""
    return json.loads(
        scored.groupby(["source", "split"], dropna=False)["reward"]
        .agg(["count", "mean", "std", "min", "max"])
        .reset_index()
        .to_json(orient="records")
    )


def merge_scored_shards(
    *,
    shard_paths: Sequence[str | os.PathLike],
    report_paths: Sequence[str | os.PathLike],
    output_path: str | os.PathLike,
    report_path: str | os.PathLike,
) -> dict:
    """Join the shards of `score_completions` into its single-job output and report.

    Rows come back in input order (shards are contiguous blocks, concatenated in shard order);
    counts add up, and the per-source summary is recomputed on the joined table.
    """
    reports = [json.loads(Path(path).read_text()) for path in report_paths]
    identities = {report["reward_model"] for report in reports}
    if len(identities) != 1:
        raise ValueError(f"shards were scored by different reward models: {sorted(identities)}")
    scored = merge_shards(shard_paths, output_path)
    report = {
        "reward_model": reports[0]["reward_model"],
        "max_length": reports[0]["max_length"],
        **{
            key: sum(r[key] for r in reports)
            for key in ("n_in", "n_scored", "n_skipped_empty", "n_truncated")
        },
        "skipped_completion_ids": [i for r in reports for i in r["skipped_completion_ids"]],
        "seconds": round(sum(r["seconds"] for r in reports), 3),
        "device": reports[0]["device"],
        "shards": len(reports),
        "reward_by_source_split": reward_by_source_split(scored),
    }
    write_json(report_path, report)
    return report
