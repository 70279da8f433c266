"""Training sets, target rewards and evaluation prompts, from the scored completions and posts.

Every row of a training set is a train-split completion of a TL;DR post with its post's fields,
the prompt rendered (post body shortened to fit), the completion text and its raw reward-model
score. The same filters build the pool the target rewards are read from, so that "q95" is the
95th percentile of the rewards the conditioned models were trained on (before any rebalancing).
CNN/DailyMail rows (`domain` cnndm) are never trained on, drawn as prompts or used for targets;
the trainset report counts the rows left out (`excluded_domains`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rewardcond.artifacts import write_json, write_parquet
from rewardcond.batching import PromptTemplate
from rewardcond.methods import Method

log = logging.getLogger(__name__)

#: The columns of every trainset row (`filter_rows`); a method adds its own.
TRAINSET_COLUMNS = [
    "completion_id",
    "post_id",
    "subreddit",
    "title",
    "post",
    "prompt",
    "completion",
    "reward",
    "source",
    "policy",
]

SCORED_COLUMNS = ("completion_id", "post_id", "text", "policy", "source", "split", "reward")
POST_COLUMNS = ("post_id", "subreddit", "title", "post")
EVAL_COLUMNS = ["post_id", "subreddit", "title", "post", "reference"]


@dataclass(frozen=True)
class TrainsetSettings:
    """How scored completions become training rows (config section `trainset`).

    sources: completion sources of the reward-conditioned pool (`comparison`, `reference`).
    min_completion_tokens, max_completion_tokens: length bounds of a completion, in tokens of the
        base tokenizer (EOS not counted); rows outside are skipped and counted.
    max_prompt_tokens: prompts longer than this have their post body shortened; a post that cannot
        fit (title alone too long) is skipped and counted.
    dedupe: keep one row per (post, completion text).
    rebalance_bins: 0 keeps the reward distribution; K > 0 cuts the reward range into K bins of
        equal width and resamples every non-empty bin to `rebalance_per_bin` rows.
    rebalance_per_bin: rows per bin (None: the mean count of the non-empty bins, rounded).
    """

    sources: tuple[str, ...] = ("comparison", "reference")
    min_completion_tokens: int = 1
    max_completion_tokens: int = 48
    max_prompt_tokens: int = 512
    dedupe: bool = True
    rebalance_bins: int = 0
    rebalance_per_bin: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))


def read_scored(scored_path: str, posts_path: str, *, scores: bool = True) -> pd.DataFrame:
    """Train-split scored completions joined with their posts' prompt fields. With
    `scores=False`, `scored_path` may be the unscored completions (no `reward` column): `reward`
    is then NaN on every row, for a method that does not learn from scores."""
    scored = pd.read_parquet(scored_path)
    posts = pd.read_parquet(posts_path)
    if not scores:
        scored = scored.assign(reward=np.nan)
    for name, frame, columns in (
        (scored_path, scored, SCORED_COLUMNS),
        (posts_path, posts, POST_COLUMNS),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")
    train = scored[scored["split"] == "train"]
    joined = train.merge(posts[list(POST_COLUMNS)], on="post_id", how="left", validate="m:1")
    orphans = joined["post"].isna()
    if orphans.any():
        raise ValueError(
            f"{scored_path}: {int(orphans.sum())} train completion(s) have no post in {posts_path}"
            f" (first post_id {joined.loc[orphans, 'post_id'].iloc[0]!r})"
        )
    return joined.reset_index(drop=True)


def tldr_only(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of TL;DR posts (`domain` tldr; all rows when there is no `domain` column) and the
    count of the others per domain (e.g. `{"cnndm": 12}`)."""
    if "domain" not in rows.columns:
        return rows, {}
    keep = rows["domain"] == "tldr"
    return rows[keep], {str(k): int(n) for k, n in rows["domain"][~keep].value_counts().items()}


def filter_rows(
    rows: pd.DataFrame, tokenizer, template: PromptTemplate, settings: TrainsetSettings
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Render prompts and apply the length bounds and dedupe; returns (rows, counts by reason).

    Output columns: completion_id, post_id, subreddit, title, post, prompt, completion, reward,
    source, policy.
    """
    counts = {"in": len(rows)}
    if settings.dedupe:
        key = rows["post_id"] + "\x00" + rows["text"].str.strip()
        keep = ~key.duplicated()
        counts["duplicate"] = int((~keep).sum())
        rows = rows[keep]
    lengths = np.array([len(ids) for ids in tokenizer(list(rows["text"]))["input_ids"]])
    too_short = lengths < settings.min_completion_tokens
    too_long = lengths > settings.max_completion_tokens
    counts["completion_too_short"] = int(too_short.sum())
    counts["completion_too_long"] = int(too_long.sum())
    rows = rows[~(too_short | too_long)]

    prompts = {}
    for post in rows.drop_duplicates("post_id").itertuples(index=False):
        try:
            prompts[post.post_id] = template.render_truncated(
                tokenizer,
                settings.max_prompt_tokens,
                subreddit=post.subreddit,
                title=post.title,
                post=post.post,
            )
        except ValueError:
            prompts[post.post_id] = None
    prompt = rows["post_id"].map(prompts)
    counts["prompt_too_long"] = int(prompt.isna().sum())
    rows = rows.assign(prompt=prompt)[prompt.notna()]
    counts["out"] = len(rows)
    out = rows.rename(columns={"text": "completion"})[TRAINSET_COLUMNS]
    return out.reset_index(drop=True), counts


def rebalance(
    rows: pd.DataFrame, bins: int, per_bin: int | None, seed: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Resample `rows` to `per_bin` rows in each non-empty equal-width reward bin.

    A bin with more rows is subsampled without replacement; one with fewer keeps all its rows and
    draws the rest with replacement. Returns the rows (sorted back into input order) and the
    count per bin before resampling.
    """
    if bins < 1:
        raise ValueError(f"trainset.rebalance_bins must be >= 1 to rebalance, got {bins}")
    rewards = rows["reward"].to_numpy(dtype="float64")
    edges = np.linspace(rewards.min(), rewards.max(), bins + 1)
    index = np.clip(np.searchsorted(edges, rewards, side="right") - 1, 0, bins - 1)
    sizes = np.bincount(index, minlength=bins)
    target = per_bin if per_bin is not None else round(len(rows) / int((sizes > 0).sum()))
    rng = np.random.default_rng(seed)
    chosen = []
    for b in np.flatnonzero(sizes):
        members = np.flatnonzero(index == b)
        if len(members) >= target:
            chosen.append(rng.choice(members, size=target, replace=False))
        else:
            extra = rng.choice(members, size=target - len(members), replace=True)
            chosen.append(np.concatenate([members, extra]))
    picked = np.sort(np.concatenate(chosen))
    counts = {f"bin{b}": int(n) for b, n in enumerate(sizes)}
    return rows.iloc[picked].reset_index(drop=True), counts


def build_trainset(
    method: Method,
    *,
    scored_path: str,
    posts_path: str,
    base_path: str,
    template: str,
    settings: TrainsetSettings,
    seed: int,
    output_path: str,
    report_path: str,
    comparisons_path: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Write the training rows of `method` (Parquet) and a report of what was kept, skipped and
    why (JSON); lengths are counted with the tokenizer of the base folder. Returns both.

    A method that learns from pairs (`dpo`) gets one row per train comparison of
    `comparisons_path` whose two summaries passed the filters (columns of `Method.pair_rows`).
    A method that does not learn from scores (`Method.learns_from_scores` False: sft, dpo) gets
    the same rows from the scored or the unscored completions, its `reward` column NaN."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    scores = method.learns_from_scores
    rows, excluded = tldr_only(read_scored(scored_path, posts_path, scores=scores))
    sources = method.sources if method.sources is not None else settings.sources
    rows = rows[rows["source"].isin(sources)]
    if rows.empty:
        raise ValueError(f"{scored_path} has no train-split completions from sources {sources}")
    template = PromptTemplate(template)
    rows, counts = filter_rows(rows, tokenizer, template, settings)
    if rows.empty:
        raise ValueError(f"every train row of {scored_path} was filtered out: {counts}")
    rows = method.label_rows(rows)
    report = {
        "method": method.name,
        "sources": list(sources),
        "excluded_domains": excluded,
        "filter": counts,
    }
    if method.learns_from_pairs:
        if comparisons_path is None:
            raise ValueError(f"method {method.name!r} learns from pairs: pass comparisons_path")
        comparisons = pd.read_parquet(comparisons_path)
        comparisons, excluded_pairs = tldr_only(comparisons[comparisons["split"] == "train"])
        rows, report["pairs"] = method.pair_rows(
            rows, comparisons, tokenizer=tokenizer, template=template
        )
        report["pairs"]["excluded_domains"] = excluded_pairs
        if rows.empty:
            raise ValueError(f"no train comparison of {comparisons_path} kept: {report}")
    if method.conditioned and settings.rebalance_bins > 0:
        rows, report["rebalance_bins"] = rebalance(
            rows, settings.rebalance_bins, settings.rebalance_per_bin, seed
        )
    report["rows"] = len(rows)
    log.info("trainset %s: %s", method.name, report)
    write_parquet(output_path, rows)
    write_json(report_path, report)
    return rows, report


def post_order(post_ids, seed: int) -> list[str]:
    """The distinct `post_ids` in a seeded random order: sorted by the BLAKE2b hash of
    `<seed>:<post_id>`, so that a post keeps its place relative to any other post whatever set it
    is drawn from (the same order for every method's pool)."""

    def key(post_id: str) -> tuple[bytes, str]:
        return hashlib.blake2b(f"{seed}:{post_id}".encode(), digest_size=16).digest(), post_id

    return sorted(set(post_ids), key=key)


def pool_fraction(
    trainset_path: str, percent: int, seed: int, output_path: str, report_path: str
) -> tuple[pd.DataFrame, dict]:
    """Write the rows of `percent` % of the posts of a trainset (whole posts: every row of a kept
    post) and a report of the rows and posts kept (issue 19's `<method>-f<percent>` models).

    The posts kept are the first round(percent x posts / 100) (at least 1) of `post_order(...,
    seed)`: drawn with the run's seed, the same posts for every method whose pool holds them, and
    nested (a smaller percent keeps a prefix of a larger one's posts). Row order is kept.

    Raises:
        ValueError: naming `percent`, when it is not in 1..100.
    """
    if not 1 <= percent <= 100:
        raise ValueError(f"percent {percent} of the pool is not in 1..100")
    rows = pd.read_parquet(trainset_path)
    order = post_order(rows["post_id"], seed)
    n_posts = max(1, (percent * len(order) + 50) // 100)
    kept = rows[rows["post_id"].isin(set(order[:n_posts]))]
    report = {
        "trainset": str(trainset_path),
        "percent": percent,
        "seed": seed,
        "pool_posts": len(order),
        "pool_rows": len(rows),
        "posts": n_posts,
        "rows": len(kept),
    }
    log.info("pool fraction of %s: %s", trainset_path, report)
    write_parquet(output_path, kept)
    write_json(report_path, report)
    return kept, report


def target_rewards(
    rewards, quantiles=(0.05, 0.25, 0.5, 0.75, 0.95, 1.0), beyond_max_sd=(1, 2)
) -> list[dict]:
    """Targets: quantiles of the training rewards, then max + k standard deviations (population).

    Names are `q05`, ..., `q100` and `max+1sd`; `in_range` says whether a target lies within the
    training rewards (max + k sd for k > 0 does not).
    """
    rewards = np.asarray(rewards, dtype="float64")
    if rewards.size == 0 or not np.isfinite(rewards).all():
        raise ValueError("target_rewards needs a non-empty array of finite rewards")
    top, spread = float(rewards.max()), float(rewards.std())
    targets = [
        {"name": f"q{round(q * 100):02d}", "value": float(np.quantile(rewards, q))}
        for q in quantiles
    ]
    targets += [{"name": f"max+{k:g}sd", "value": top + k * spread} for k in beyond_max_sd]
    return [{**t, "in_range": t["value"] <= top} for t in targets]


def build_targets(
    *,
    scored_path: str,
    posts_path: str,
    base_path: str,
    template: str,
    settings: TrainsetSettings,
    quantiles,
    beyond_max_sd,
    output_path: str,
) -> list[dict]:
    """Write (JSON) and return the `target_rewards` of the reward-conditioned training pool
    (`settings.sources` of TL;DR posts, filtered and deduplicated as the training sets are, not
    rebalanced)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    rows, _ = tldr_only(read_scored(scored_path, posts_path))
    rows = rows[rows["source"].isin(settings.sources)]
    rows, counts = filter_rows(rows, tokenizer, PromptTemplate(template), settings)
    if rows.empty:
        raise ValueError(f"every train row of {scored_path} was filtered out: {counts}")
    targets = target_rewards(rows["reward"], quantiles, beyond_max_sd)
    write_json(output_path, targets)
    return targets


def draw_eval_prompts(posts_path: str, n: int, seed: int, output_path: str) -> pd.DataFrame:
    """Write and return `n` TL;DR posts with a reference, drawn (seeded) from the valid2
    comparison posts, or from the test posts when valid2 holds fewer than `n`. Columns: post_id,
    subreddit, title, post, reference, pool (valid2|test)."""
    posts, _ = tldr_only(pd.read_parquet(posts_path))
    with_reference = posts[posts["reference"].notna()]
    pools = {
        "valid2": with_reference[with_reference["comparison_split"] == "valid2"],
        "test": with_reference[with_reference["split"] == "test"],
    }
    for name, pool in pools.items():
        if len(pool) >= n:
            pool = pool.sort_values("post_id")
            picked = pool.sample(n=n, random_state=np.random.RandomState(seed % 2**32))
            log.info("eval prompts: %d of %d %s posts", n, len(pool), name)
            picked = picked[EVAL_COLUMNS].assign(pool=name).reset_index(drop=True)
            write_parquet(output_path, picked)
            return picked
    sizes = {name: len(pool) for name, pool in pools.items()}
    raise ValueError(
        f"generate.n_prompts = {n} but {posts_path} has only {sizes} posts with a reference in"
        " valid2 / test; lower generate.n_prompts"
    )
