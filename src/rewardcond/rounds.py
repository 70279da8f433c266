"""Online rounds of a conditioned method (issue 18): sample from round r's model, score the
samples with the proxy reward model, add them to round r's pool; round r + 1 trains on the grown
pool, continuing from round r's model.

This is the loop of Quark (Lu et al. 2022, "Quark: Controllable Text Generation with Reinforced
Unlearning"): the policy explores, the reward model scores what it wrote, the pool keyed by
reward grows, and the policy is trained again on it, conditioned on each row's reward. Round 1 is
the offline method of `rewardcond.train` on `rewardcond.trainset`'s rows; round r >= 2 is:

1. `sample_round`: `samples_per_prompt` (K) completions of every train prompt of the pool, each at
   its own target reward drawn from the pool of round r - 1 (`target_draw: quantile`: the pool
   quantile at a level drawn uniformly from `target_quantiles`; `above_max`: the pool maximum plus
   a multiple, drawn uniformly from `above_max_sd`, of its standard deviation), sampled at
   `temperature`. Targets and sampling are seeded by `round_seed(seed, round)`: one job, no
   shards, so no scale-out setting can change them.
2. `score_samples`: the proxy's raw score of each sample, by `RewardModelScorer.score_detailed`
   exactly as `rewardcond.reward_models.completions.score_completions` scores the data (the full
   post; an empty sample is skipped and counted, or an error, per `train.online.on_empty`); a
   sample cut at `max_new_tokens` without EOS is scored as it stands (as a logged completion is)
   and counted (`n_unfinished`).
3. `grow_pool`: the pool plus the scored samples (`source` "online", `policy` `<method>-r<r>`),
   all kept, or the `pool_per_prompt` best of each post (by reward; ties keep the earlier row).

**The reward scaler is not refit.** Round r + 1 continues from round r's saved model through the
method's `load_model`, which keeps the scaler that round 1 fitted on the offline rewards
(`scalar`'s `RewardConditionedLM.scaler`, `text`'s written reward); so a target of 2.0 asks for
the same reward-model score in every round, and the evaluation targets (`targets.json`, from the
offline pool) mean the same thing for every round's model. Refitting on the grown pool would move
every scaled target as the pool improves, and a round's gain could not be told from a shifted
scale. `tokens` relabels `<|good|>` at its quantile of the grown pool (Korbak et al.'s threshold
is a quantile of the data trained on).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rewardcond.artifacts import write_json, write_parquet
from rewardcond.methods import Method
from rewardcond.modeling import RewardConditionedLM
from rewardcond.trainset import TRAINSET_COLUMNS

log = logging.getLogger(__name__)

#: The columns every pool row has: a round's pool is a trainset.
POOL_COLUMNS = TRAINSET_COLUMNS
TARGET_DRAWS = ("quantile", "above_max")


@dataclass(frozen=True)
class OnlineSettings:
    """How a round samples and grows the pool (config section `train.online`).

    samples_per_prompt: K, completions sampled per train prompt (post) of the pool.
    target_draw: `quantile` (targets from the pool's upper quantiles) or `above_max`.
    target_quantiles: [low, high], the quantile levels a target is drawn from, uniformly.
    above_max_sd: [low, high], multiples of the pool's standard deviation added to its maximum.
    pool_per_prompt: keep at most this many rows per post, the best by reward (None: keep all).
    temperature, top_p: sampling settings.
    max_new_tokens: a sample stops at EOS or after this many tokens.
    batch_size: prompts per generation batch.
    """

    samples_per_prompt: int = 4
    target_draw: str = "quantile"
    target_quantiles: tuple[float, float] = (0.75, 1.0)
    above_max_sd: tuple[float, float] = (0.0, 1.0)
    pool_per_prompt: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    batch_size: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_quantiles", tuple(self.target_quantiles))
        object.__setattr__(self, "above_max_sd", tuple(self.above_max_sd))
        if self.target_draw not in TARGET_DRAWS:
            raise ValueError(
                f"train.online.target_draw: {self.target_draw!r}; expected one of {TARGET_DRAWS}"
            )
        low, high = self.target_quantiles
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(
                f"train.online.target_quantiles: {list(self.target_quantiles)}; expected"
                " [low, high] with 0 <= low <= high <= 1"
            )
        if not self.above_max_sd[0] <= self.above_max_sd[1]:
            raise ValueError(
                f"train.online.above_max_sd: {list(self.above_max_sd)}; expected [low, high]"
                " with low <= high"
            )
        if self.samples_per_prompt < 1:
            raise ValueError(
                f"train.online.samples_per_prompt: {self.samples_per_prompt}; expected >= 1"
            )
        if self.pool_per_prompt is not None and self.pool_per_prompt < 1:
            raise ValueError(
                f"train.online.pool_per_prompt: {self.pool_per_prompt}; expected >= 1 or null"
            )


def round_seed(seed: int, round_number: int) -> int:
    """The seed of round `round_number`'s targets and sampling: a function of the run's seed and
    the round only (numpy's `SeedSequence` of the pair, so rounds do not share streams)."""
    return int(np.random.SeedSequence([seed, round_number]).generate_state(1)[0])


def draw_targets(rewards, n: int, settings: OnlineSettings, seed: int) -> np.ndarray:
    """`n` target rewards (raw reward-model units, float64) drawn from the pool's `rewards` as
    `settings.target_draw` says (see the module docstring), with numpy's generator at `seed`.

    Raises:
        ValueError: if `rewards` is empty or not finite.
    """
    rewards = np.asarray(rewards, dtype="float64")
    if rewards.size == 0 or not np.isfinite(rewards).all():
        raise ValueError("draw_targets needs a non-empty array of finite pool rewards")
    rng = np.random.default_rng(seed)
    if settings.target_draw == "quantile":
        levels = rng.uniform(*settings.target_quantiles, size=n)
        return np.quantile(rewards, levels)
    multiples = rng.uniform(*settings.above_max_sd, size=n)
    return rewards.max() + multiples * rewards.std()


def pool_prompts(pool: pd.DataFrame) -> pd.DataFrame:
    """One row per post of the pool (its first row's post fields and rendered prompt), in
    order of first appearance."""
    missing = [column for column in POOL_COLUMNS if column not in pool.columns]
    if missing:
        raise ValueError(f"the pool lacks column(s) {missing}; it has {list(pool.columns)}")
    columns = ["post_id", "subreddit", "title", "post", "prompt"]
    return pool.drop_duplicates("post_id")[columns].reset_index(drop=True)


def sample_round(
    method: Method,
    model,
    tokenizer,
    pool: pd.DataFrame,
    settings: OnlineSettings,
    *,
    seed: int,
    round_number: int,
) -> pd.DataFrame:
    """K samples per post of `pool` from round `round_number - 1`'s `model`, each at its own
    drawn target (module docstring, step 1).

    Returns one row per (post, sample): post_id, subreddit, title, post, prompt, sample (0..K-1),
    target_reward (raw units; NaN for a method without targets, `tokens`, which samples at
    `<|good|>`), completion, n_tokens (EOS excluded), finished (ended with EOS); posts in pool
    order, samples in order within a post.
    """
    prompts = pool_prompts(pool)
    k = settings.samples_per_prompt
    rows = prompts.loc[prompts.index.repeat(k)].reset_index(drop=True)
    rows.insert(1, "sample", np.tile(np.arange(k, dtype="int64"), len(prompts)))
    seed = round_seed(seed, round_number)
    targets = draw_targets(pool["reward"], len(rows), settings, seed)
    conditions = [method.conditions([{"name": "online", "value": t}])[0] for t in targets]
    prefixed = [c.prefix + p for c, p in zip(conditions, rows["prompt"], strict=True)]
    conditioned = isinstance(model, RewardConditionedLM)
    rewards = [c.target_reward for c in conditions] if conditioned else None
    completions = method.complete(
        model,
        tokenizer,
        prefixed,
        rewards,
        posts=rows[["subreddit", "title", "post"]].to_dict("records"),
        generation={
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": True,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "batch_size": settings.batch_size,
        },
        seed=seed % 2**32,
    )
    return rows.assign(
        target_reward=np.array([c.target_reward for c in conditions], dtype="float64"),
        completion=[c.text for c in completions],
        n_tokens=np.array([len(c.token_ids) for c in completions], dtype="int64"),
        finished=[c.finished for c in completions],
    )


def score_samples(samples: pd.DataFrame, scorer) -> tuple[pd.DataFrame, dict]:
    """The samples plus `reward` (the proxy's raw score) and `truncated` (post shortened to fit
    the reward model), scored as `score_completions` scores the data (module docstring, step 2);
    rows skipped as empty are left out. Returns (scored rows, counts: n_in, n_scored,
    n_skipped_empty, n_unfinished, n_truncated, reward_model)."""
    result = scorer.score_detailed(
        samples[["subreddit", "title", "post"]].to_dict("records"),
        samples["completion"].tolist(),
        names=[
            f"post_id {p} sample {s}"
            for p, s in zip(samples["post_id"], samples["sample"], strict=True)
        ],
    )
    scored = samples.assign(reward=result.rewards, truncated=result.truncated)
    scored = scored[~result.skipped].reset_index(drop=True)
    counts = {
        "reward_model": scorer.identity,
        "n_in": len(samples),
        "n_scored": len(scored),
        "n_skipped_empty": int(result.skipped.sum()),
        "n_unfinished": int((~scored["finished"]).sum()),
        "n_truncated": int(scored["truncated"].sum()),
    }
    return scored, counts


def grow_pool(
    method: Method,
    pool: pd.DataFrame,
    scored: pd.DataFrame,
    settings: OnlineSettings,
    *,
    round_number: int,
) -> tuple[pd.DataFrame, dict]:
    """The pool of round `round_number`: `pool` plus the `scored` samples as pool rows
    (completion_id `r<round>/<post_id>/<sample>`, source `online`, policy `<method>-r<round>`,
    plus `target_reward` and `round`; the offline rows get round 1 and no target), bounded to
    `settings.pool_per_prompt` rows per post (the highest rewards) when set, then the method's
    own columns recomputed on the whole pool (`Method.label_rows`). Returns (pool, counts)."""
    new = scored.assign(
        completion_id=[
            f"r{round_number}/{p}/{s}"
            for p, s in zip(scored["post_id"], scored["sample"], strict=True)
        ],
        source="online",
        policy=f"{method.name}-r{round_number}",
        round=round_number,
    )
    old = pool[POOL_COLUMNS].assign(
        target_reward=pool.get("target_reward", np.nan),
        round=pool.get("round", 1),
    )
    columns = [*POOL_COLUMNS, "target_reward", "round"]
    grown = pd.concat([old, new[columns]], ignore_index=True)
    grown = grown.astype({"round": "int64", "target_reward": "float64", "reward": "float64"})
    counts = {"pool_in": len(pool), "added": len(new), "dropped_by_bound": 0}
    if settings.pool_per_prompt is not None:
        order = grown.sort_values("reward", ascending=False, kind="stable")
        kept = order.groupby("post_id", sort=False).head(settings.pool_per_prompt).index
        counts["dropped_by_bound"] = len(grown) - len(kept)
        grown = grown.loc[np.sort(kept)]
    grown = method.label_rows(grown.reset_index(drop=True))
    counts["pool_out"] = len(grown)
    return grown, counts


def run_round(
    method: Method,
    *,
    model_path: str,
    pool_path: str,
    settings: OnlineSettings,
    scorer,
    seed: int,
    round_number: int,
    samples_path: str,
    output_path: str,
    report_path: str,
    device: str = "cpu",
) -> dict:
    """Rule `online_round`: round `round_number`'s pool from round `round_number - 1`'s model
    (`model_path`) and pool (`pool_path`, a trainset Parquet file). Writes the scored samples
    (`samples_path`), the grown pool (`output_path`, the trainset of round `round_number`) and a
    report (JSON: counts, sample and token totals, reward of the samples); returns the report.

    Raises:
        ValueError: if `round_number` < 2 (round 1 is the offline trainset) or the pool is not a
            conditioned method's pool.
    """
    if round_number < 2:
        raise ValueError(f"round {round_number}: online rounds start at 2 (round 1 is offline)")
    pool = pd.read_parquet(pool_path)
    if pool.empty:
        raise ValueError(f"{pool_path} has no rows to sample prompts from")
    model, tokenizer = method.load_model(model_path)
    model.to(device).eval()
    samples = sample_round(
        method, model, tokenizer, pool, settings, seed=seed, round_number=round_number
    )
    scored, counts = score_samples(samples, scorer)
    grown, pool_counts = grow_pool(method, pool, scored, settings, round_number=round_number)
    report = {
        "method": method.name,
        "round": round_number,
        "seed": round_seed(seed, round_number),
        "prompts": int(samples["post_id"].nunique()),
        "samples": counts["n_in"],
        "sampled_tokens": int(samples["n_tokens"].sum()),
        **counts,
        **pool_counts,
        "sample_reward_mean": float(scored["reward"].mean()) if len(scored) else None,
        "target_reward_mean": (
            float(samples["target_reward"].mean())
            if samples["target_reward"].notna().any()
            else None
        ),
    }
    write_parquet(samples_path, scored)
    write_parquet(output_path, grown)
    write_json(report_path, report)
    log.info("round %d of %s: %s", round_number, method.name, report)
    return report
