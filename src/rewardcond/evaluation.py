"""Evaluating generations: achieved and gold reward, ROUGE, length, diversity, and the statistics.

Two halves. Per method, `evaluate_generations` adds the reward-model score (`reward`), the gold
reward where the world has one (`gold`, NaN otherwise) and ROUGE-1/2/L against the reference to
each generated summary; `evaluate_references` scores the human references of the same prompts.
Across methods, `summarize`, `correlations`, `win_rates` and `compare_methods` turn those rows
into the published tables, with bootstrap confidence intervals that resample *prompts* (the unit
that is drawn at random; several generations of one prompt are not independent).

Conditioned methods have targets (`target_name` from targets.json); baselines generated once,
with `target_name == "none"`. Which is which is read from the generations, not from config.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import stats

from rewardcond.artifacts import write_parquet

log = logging.getLogger(__name__)

ROUGE_PATH = Path(__file__).parent / "metrics" / "rouge"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
GENERATION_COLUMNS = (
    "method",
    "post_id",
    "target_name",
    "target_reward",
    "sample",
    "text",
    "n_tokens",
    "finished",
    "n_candidates",
)
PROMPT_COLUMNS = ("post_id", "subreddit", "title", "post", "reference")
NO_TARGET = "none"
IN_RANGE = "in_range"
#: The fewest prompts a figure must rest on to be ranked (crowned in the verdict, led in
#: `compare_methods`); for a Spearman(target, achieved), the prompts on which the achieved reward
#: varies with the target. The intervals resample prompts, and 4 prompts allow only 35 distinct
#: resamples, too few to place a 2.5% tail.
MIN_PROMPTS = 5


class Scorer(Protocol):
    """What `rewardcond.scoring.load_scorer` returns: raw reward-model scores for any summaries."""

    def score(self, posts: list[dict], summaries: list[str]) -> np.ndarray: ...


class GoldScorer(Protocol):
    """What `rewardcond.data.synthetic.GoldReward` is: the ground-truth reward of a world."""

    def score(self, post_ids: list[str], texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Target:
    """One requested reward: its name (`q50`, `max+1sd`...), raw value, and whether it lies
    inside the training reward range."""

    name: str
    value: float
    in_range: bool


# --- reading inputs -------------------------------------------------------------------------


def require_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """Raise a ValueError naming `where` and the missing columns if `frame` lacks any."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{where}: missing columns {missing}; expected at least {list(columns)}, "
            f"found {list(frame.columns)}"
        )


def load_targets(path: str | os.PathLike) -> list[Target]:
    """Read targets.json (a list of `{"name", "value", "in_range"}` objects)."""
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list of targets")
    targets = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"name", "value", "in_range"} <= entry.keys():
            raise ValueError(
                f"{path}: entry {index} is {entry!r}; expected an object with keys "
                "name (str), value (float), in_range (bool)"
            )
        targets.append(Target(str(entry["name"]), float(entry["value"]), bool(entry["in_range"])))
    names = [target.name for target in targets]
    if len(set(names)) != len(names) or NO_TARGET in names:
        raise ValueError(f"{path}: target names must be unique and not {NO_TARGET!r}: {names}")
    return targets


def _check_prompts(prompts: pd.DataFrame, where: str) -> pd.DataFrame:
    require_columns(prompts, PROMPT_COLUMNS, where)
    if prompts["post_id"].duplicated().any():
        duplicated = prompts.loc[prompts["post_id"].duplicated(), "post_id"].tolist()
        raise ValueError(f"{where}: duplicated post_id {duplicated[:5]}")
    missing = prompts.loc[prompts["reference"].isna(), "post_id"].tolist()
    if missing:
        raise ValueError(
            f"{where}: {len(missing)} eval prompts have no reference summary "
            f"(post_id {missing[:5]}); ROUGE and win rates need one for every prompt"
        )
    return prompts.set_index("post_id", drop=False)


# --- per-row metrics ------------------------------------------------------------------------


def load_rouge():
    """The ROUGE metric shipped with the package, loaded by path (works offline)."""
    import evaluate

    return evaluate.load(str(ROUGE_PATH))


def rouge_scores(
    predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = True
) -> dict[str, np.ndarray]:
    """ROUGE-1/2/L F-measure of each prediction against its reference, through `evaluate`."""
    if len(predictions) != len(references):
        raise ValueError(
            f"rouge_scores: {len(predictions)} predictions but {len(references)} references"
        )
    if not predictions:
        return {key: np.zeros(0) for key in ROUGE_TYPES}
    scores = load_rouge().compute(
        predictions=list(predictions),
        references=list(references),
        rouge_types=list(ROUGE_TYPES),
        use_stemmer=use_stemmer,
        use_aggregator=False,
    )
    return {key: np.asarray(scores[key], dtype=np.float64) for key in ROUGE_TYPES}


def is_empty(texts: Sequence[str]) -> np.ndarray:
    """True for each text that is empty or whitespace only (no summary was written)."""
    return np.array([not text.strip() for text in texts], dtype=bool)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique word n-grams / all word n-grams over a set of texts.

    Words are lower-cased, whitespace-separated. NaN when the texts hold no n-gram at all.
    """
    ngrams = [
        tuple(words[i : i + n])
        for text in texts
        for words in [text.lower().split()]
        for i in range(len(words) - n + 1)
    ]
    return len(set(ngrams)) / len(ngrams) if ngrams else float("nan")


def _score_unique(
    prompts: pd.DataFrame,
    post_ids: Sequence[str],
    texts: Sequence[str],
    scorer: Scorer,
    gold: GoldScorer | None,
) -> tuple[np.ndarray, np.ndarray]:
    """RM and gold scores of (post, text) pairs, each distinct pair scored once.

    Greedy decoding at neighbouring targets often repeats a summary; scoring it once is cheaper
    and gives the same number.
    """
    pairs = pd.DataFrame({"post_id": list(post_ids), "text": list(texts)})
    unique = pairs.drop_duplicates().reset_index(drop=True)
    log.info("scoring %d distinct (post, summary) pairs of %d rows", len(unique), len(pairs))
    posts = prompts.loc[unique["post_id"], ["subreddit", "title", "post"]].to_dict("records")
    reward = np.asarray(scorer.score(posts, unique["text"].tolist()), dtype=np.float64)
    if reward.shape != (len(unique),):
        raise ValueError(f"scorer returned {reward.shape} values; expected ({len(unique)},)")
    # An empty summary has no reward-model score (the scorer skips it with NaN, or raises, per
    # its on_empty); any other missing score is an error.
    unscored = ~np.isfinite(reward) & ~is_empty(unique["text"])
    if unscored.any():
        raise ValueError(
            f"scorer returned {int(unscored.sum())} non-finite rewards for non-empty summaries "
            f"(first: post_id {unique['post_id'][unscored].iloc[0]!r}); expected finite rewards"
        )
    if gold is None:
        gold_values = np.full(len(unique), np.nan)
    else:
        gold_values = np.asarray(
            gold.score(unique["post_id"].tolist(), unique["text"].tolist()), dtype=np.float64
        )
        if gold_values.shape != (len(unique),):
            raise ValueError(f"gold scorer returned {gold_values.shape}; expected ({len(unique)},)")
    unique["reward"], unique["gold"] = reward, gold_values
    merged = pairs.merge(unique, on=["post_id", "text"], how="left", validate="many_to_one")
    return merged["reward"].to_numpy(), merged["gold"].to_numpy()


def evaluate_generations(
    generations: pd.DataFrame,
    prompts: pd.DataFrame,
    *,
    scorer: Scorer,
    gold: GoldScorer | None = None,
    use_stemmer: bool = True,
    where: str = "generations",
) -> pd.DataFrame:
    """Generations plus `reward` (reward model), `gold` (NaN without a gold function) and
    `rouge1`, `rouge2`, `rougeL` against each prompt's reference summary."""
    require_columns(generations, GENERATION_COLUMNS, where)
    keys = ["method", "post_id", "target_name", "sample"]
    duplicated = generations.duplicated(keys)
    if duplicated.any():
        first = generations.loc[duplicated, keys].iloc[0].to_dict()
        raise ValueError(
            f"{where}: {int(duplicated.sum())} duplicated rows of {keys} (first: {first})"
        )
    prompts = _check_prompts(prompts, "eval prompts")
    unknown = sorted(set(generations["post_id"]) - set(prompts.index))
    if unknown:
        raise ValueError(f"{where}: post_id {unknown[:5]} ({len(unknown)}) not in the eval prompts")
    evaluated = generations.reset_index(drop=True).copy()
    evaluated["reward"], evaluated["gold"] = _score_unique(
        prompts, evaluated["post_id"], evaluated["text"], scorer, gold
    )
    references = prompts.loc[evaluated["post_id"], "reference"].tolist()
    for key, values in rouge_scores(
        evaluated["text"].tolist(), references, use_stemmer=use_stemmer
    ).items():
        evaluated[key] = values
    return evaluated


def evaluate_references(
    prompts: pd.DataFrame, *, scorer: Scorer, gold: GoldScorer | None = None
) -> pd.DataFrame:
    """The human reference summaries of the eval prompts, scored like generations:
    `post_id, text, reward, gold`."""
    prompts = _check_prompts(prompts, "eval prompts").reset_index(drop=True)
    references = pd.DataFrame({"post_id": prompts["post_id"], "text": prompts["reference"]})
    references["reward"], references["gold"] = _score_unique(
        prompts.set_index("post_id", drop=False),
        references["post_id"],
        references["text"],
        scorer,
        gold,
    )
    return references


def run_evaluate(
    *,
    generations: str | os.PathLike,
    prompts: str | os.PathLike,
    output: str | os.PathLike,
    scorer_args: dict,
    gold_path: str | os.PathLike | None = None,
    use_stemmer: bool = True,
) -> None:
    """Rule `evaluate`: score one method's generations file with the reward model and gold."""
    frame = pd.read_parquet(generations)
    evaluated = evaluate_generations(
        frame,
        pd.read_parquet(prompts),
        scorer=_load_scorer(scorer_args),
        gold=_load_gold(gold_path),
        use_stemmer=use_stemmer,
        where=str(generations),
    )
    write_parquet(output, evaluated)
    log.info("wrote %s (%d rows)", output, len(evaluated))


def run_score_references(
    *,
    prompts: str | os.PathLike,
    output: str | os.PathLike,
    scorer_args: dict,
    gold_path: str | os.PathLike | None = None,
) -> None:
    """Rule `score_references`: score the reference summaries of the eval prompts."""
    references = evaluate_references(
        pd.read_parquet(prompts), scorer=_load_scorer(scorer_args), gold=_load_gold(gold_path)
    )
    write_parquet(output, references)
    log.info("wrote %s (%d rows)", output, len(references))


def _load_scorer(scorer_args: dict) -> Scorer:
    from rewardcond.scoring import load_scorer

    return load_scorer(**scorer_args)


def _load_gold(path: str | os.PathLike | None) -> GoldScorer | None:
    if path is None:
        return None
    from rewardcond.data.synthetic import GoldReward

    return GoldReward.load(path)


# --- statistics -----------------------------------------------------------------------------


def _percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float],
    groups: Sequence | None = None,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`.

    With `groups` (e.g. post ids) whole groups are resampled (a cluster bootstrap), so several
    generations of one prompt count as one draw; the statistic is still the mean over rows.
    NaN values are an error (drop them first and say so); an empty input gives (NaN, NaN).
    """
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError("bootstrap_ci: values contain NaN")
    if values.size == 0:
        return float("nan"), float("nan")
    if groups is None:
        sums, counts = values, np.ones_like(values)
    else:
        codes, _ = pd.factorize(pd.Series(list(groups)))
        sums = np.bincount(codes, weights=values)
        counts = np.bincount(codes).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(n_resamples, len(sums)))
    samples = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    return _percentile_interval(samples, level)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation; NaN when either side is constant or has < 2 values."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    # Pearson correlation of average ranks (what scipy's spearmanr computes, 50x faster here,
    # which matters inside a bootstrap loop).
    return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])


def spearman_per_prompt(frame: pd.DataFrame, x: str, y: str) -> tuple[float, int]:
    """Mean over prompts of Spearman(x, y) within each prompt, and how many prompts entered it.

    A prompt whose x or y is constant has no rank correlation and is left out (the count says
    how many remained).
    """
    per_prompt = [spearman(group[x], group[y]) for _, group in frame.groupby("post_id", sort=False)]
    defined = [value for value in per_prompt if np.isfinite(value)]
    return (float(np.mean(defined)) if defined else float("nan")), len(defined)


def prompt_bootstrap(
    statistic: Callable[..., float],
    frames: Sequence[pd.DataFrame],
    columns: Sequence[str],
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of `statistic(*frames)` when the prompts shared by all frames are
    resampled with replacement (the same draw for every frame, i.e. paired).

    Inside the loop each resampled frame is a dict of numpy arrays holding `columns` (the ones
    `statistic` reads), which keeps a thousand resamples fast.
    """
    shared = set.intersection(*(set(frame["post_id"]) for frame in frames))
    post_ids = np.array(sorted(shared))
    if post_ids.size == 0:
        return float("nan"), float("nan")
    arrays = [{column: frame[column].to_numpy() for column in columns} for frame in frames]
    rows = [frame.groupby("post_id").indices for frame in frames]
    rng = np.random.default_rng(seed)
    samples = np.empty(n_resamples)
    for i in range(n_resamples):
        drawn = post_ids[rng.integers(0, post_ids.size, size=post_ids.size)]
        resampled = []
        for array, index in zip(arrays, rows, strict=True):
            take = np.concatenate([index[post_id] for post_id in drawn])
            resampled.append({column: values[take] for column, values in array.items()})
        samples[i] = statistic(*resampled)
    return _percentile_interval(samples, level)


def paired_difference(
    a: pd.Series,
    b: pd.Series,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """Mean of a - b over the prompts both series hold (indexed by post_id), with a paired
    bootstrap interval; returns (difference, low, high, n_prompts)."""
    a, b = a.dropna(), b.dropna()
    shared = a.index.intersection(b.index)
    differences = (a.loc[shared] - b.loc[shared]).to_numpy(dtype=np.float64)
    if differences.size == 0:
        return float("nan"), float("nan"), float("nan"), 0
    low, high = bootstrap_ci(differences, n_resamples=n_resamples, level=level, seed=seed)
    return float(differences.mean()), low, high, int(differences.size)


def win_indicator(reward: Sequence[float], reference_reward: Sequence[float]) -> np.ndarray:
    """1 where a summary out-scores the reference, 0.5 on a tie, 0 below; NaN where either is."""
    reward = np.asarray(reward, dtype=np.float64)
    reference_reward = np.asarray(reference_reward, dtype=np.float64)
    wins = 0.5 * (1.0 + np.sign(reward - reference_reward))
    return np.where(np.isnan(reward) | np.isnan(reference_reward), np.nan, wins)


# --- the tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapSettings:
    """How intervals are drawn: resamples, confidence level, and the seed of the run."""

    n_resamples: int = 1000
    level: float = 0.95
    seed: int = 0


def combine(
    evaluated: Sequence[pd.DataFrame], references: pd.DataFrame, targets: Sequence[Target]
) -> pd.DataFrame:
    """All methods' evaluated rows in one frame, with `in_range`, `conditioned` and the win
    indicators against the reference summary (`win_rm`, `win_gold`).

    Checks that each frame holds one method of its own, that every target name is in
    targets.json with the same value, that each method is either conditioned (all rows with a
    target) or a baseline (all `none`), and that every prompt has a reference.
    """
    frame = pd.concat(evaluated, ignore_index=True)
    require_columns(frame, (*GENERATION_COLUMNS, "reward", "gold", *ROUGE_TYPES), "evaluated")
    methods = [sorted(set(part["method"])) for part in evaluated]
    flat = [method for names in methods for method in names]
    if any(len(names) != 1 for names in methods) or len(set(flat)) != len(flat):
        raise ValueError(f"evaluated: expected one distinct method per file, found {methods}")
    require_columns(references, ("post_id", "reward", "gold"), "evaluated/references")
    in_range = {target.name: target.in_range for target in targets}
    unknown = sorted(set(frame["target_name"]) - set(in_range) - {NO_TARGET})
    if unknown:
        raise ValueError(f"evaluated: target_name {unknown} not in targets.json {list(in_range)}")
    values = frame["target_name"].map({target.name: target.value for target in targets})
    conditioned = frame["target_name"] != NO_TARGET
    disagree = conditioned & ~np.isclose(frame["target_reward"], values.astype(float))
    if disagree.any():
        first = frame.loc[disagree].iloc[0]
        raise ValueError(
            f"evaluated: {int(disagree.sum())} rows have a target_reward other than targets.json "
            f"gives for their target_name (first: method {first['method']!r}, "
            f"{first['target_name']!r} = {first['target_reward']} vs {values[disagree].iloc[0]})"
        )
    frame["conditioned"] = conditioned
    mixed = frame.groupby("method")["conditioned"].nunique()
    if (mixed > 1).any():
        raise ValueError(
            f"evaluated: methods {mixed[mixed > 1].index.tolist()} mix rows with and without a "
            f"target ({NO_TARGET!r}); a method is either conditioned or a baseline"
        )
    frame["in_range"] = frame["target_name"].map(in_range).astype("boolean")
    reference = references.set_index("post_id")
    missing = sorted(set(frame["post_id"]) - set(reference.index))
    if missing:
        raise ValueError(f"evaluated/references: no reference score for post_id {missing[:5]}")
    frame["reference_reward"] = reference.loc[frame["post_id"], "reward"].to_numpy()
    frame["reference_gold"] = reference.loc[frame["post_id"], "gold"].to_numpy()
    frame["win_rm"] = win_indicator(frame["reward"], frame["reference_reward"])
    frame["win_gold"] = win_indicator(frame["gold"], frame["reference_gold"])
    return frame


def _groups(frame: pd.DataFrame, targets: Sequence[Target]):
    """(method, target_name, rows) in method order of appearance, then targets.json order."""
    order = {target.name: i for i, target in enumerate(targets)}
    for method in frame["method"].unique():
        rows = frame[frame["method"] == method]
        names = sorted(rows["target_name"].unique(), key=lambda name: order.get(name, -1))
        for name in names:
            yield method, name, rows[rows["target_name"] == name]


def _mean_ci(rows: pd.DataFrame, column: str, settings: BootstrapSettings):
    values = rows[column].to_numpy(dtype=np.float64)
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan"), float("nan"), float("nan")
    low, high = bootstrap_ci(
        values[keep],
        rows["post_id"].to_numpy()[keep],
        n_resamples=settings.n_resamples,
        level=settings.level,
        seed=settings.seed,
    )
    return float(values[keep].mean()), low, high


def summarize(
    frame: pd.DataFrame, targets: Sequence[Target], settings: BootstrapSettings
) -> pd.DataFrame:
    """One row per method x target (baselines: one row, target `none`), from `combine`'s frame.

    Means with cluster-bootstrap intervals for achieved (RM) and gold reward (an empty summary,
    counted in `n_empty`, has no RM score and is left out of the RM mean and win rate); ROUGE,
    length in tokens, EOS rate, distinct-1/2, win rates against the reference, and the
    generation cost (`generated_tokens_per_prompt` = mean of n_tokens x n_candidates, since
    best-of-N generates N candidates for each kept summary).
    """
    values = {target.name: target.value for target in targets}
    records = []
    for method, name, rows in _groups(frame, targets):
        achieved = _mean_ci(rows, "reward", settings)
        gold = _mean_ci(rows, "gold", settings)
        win_rm = _mean_ci(rows, "win_rm", settings)
        win_gold = _mean_ci(rows, "win_gold", settings)
        records.append(
            {
                "method": method,
                "target_name": name,
                "target_reward": values.get(name, float("nan")),
                "in_range": rows["in_range"].iloc[0],
                "n": len(rows),
                "n_prompts": rows["post_id"].nunique(),
                "n_empty": int(is_empty(rows["text"]).sum()),
                "achieved_reward_mean": achieved[0],
                "achieved_reward_ci_low": achieved[1],
                "achieved_reward_ci_high": achieved[2],
                "gold_reward_mean": gold[0],
                "gold_reward_ci_low": gold[1],
                "gold_reward_ci_high": gold[2],
                **{key: rows[key].mean() for key in ROUGE_TYPES},
                "length_mean": rows["n_tokens"].mean(),
                "eos_rate": rows["finished"].astype(float).mean(),
                "distinct1": distinct_n(rows["text"].tolist(), 1),
                "distinct2": distinct_n(rows["text"].tolist(), 2),
                "winrate_rm": win_rm[0],
                "winrate_rm_ci_low": win_rm[1],
                "winrate_rm_ci_high": win_rm[2],
                "winrate_gold": win_gold[0],
                "winrate_gold_ci_low": win_gold[1],
                "winrate_gold_ci_high": win_gold[2],
                "generated_tokens_per_prompt": (rows["n_tokens"] * rows["n_candidates"]).mean(),
                "n_candidates": int(rows["n_candidates"].max()),
            }
        )
    summary = pd.DataFrame.from_records(records)
    summary["in_range"] = summary["in_range"].astype("boolean")
    return summary


def _pooled(column: str) -> Callable[[Mapping], float]:
    def statistic(rows: Mapping) -> float:
        return spearman(rows["target_reward"], rows[column])

    return statistic


def spearman_note(rows: pd.DataFrame, column: str, n_defined: int) -> str:
    """Why the Spearman(target, `column`) of a method's in-range `rows` is undefined (NaN) or not
    ranked, or "" when it is neither. `n_defined`: prompts with a per-prompt correlation.

    A method that writes the same summary at every target gets the same reward at every target
    within each prompt; pooled over prompts its Spearman is then exactly 0, in every bootstrap
    resample too, a figure of the design, not of the method: it is undefined, as a correlation
    with a constant is.
    """
    scores = "gold reward" if column == "gold" else "reward-model score"
    if rows.empty:
        return f"undefined: no {scores}s"
    if rows["target_reward"].nunique() < 2:
        return "undefined: fewer than 2 in-range targets"
    if n_defined == 0:
        return (
            f"undefined: the {scores} is the same at every target within each of its "
            f"{rows['post_id'].nunique()} prompts"
        )
    if n_defined < MIN_PROMPTS:
        return (
            f"not ranked: the {scores} varies with the target on {n_defined} prompts "
            f"(fewer than {MIN_PROMPTS})"
        )
    return ""


def correlations(frame: pd.DataFrame, settings: BootstrapSettings) -> pd.DataFrame:
    """One row per conditioned method: Spearman(target, achieved) and Spearman(target, gold) over
    the in-range targets, pooled over all rows (with a prompt-bootstrap interval) and as the mean
    of per-prompt correlations; plus the mean absolute calibration error |achieved - target| of
    the per-target means.

    A figure with no prompt on which the score varies with the target is NaN, interval too, and
    `spearman_note` / `spearman_gold_note` say why (see `spearman_note`); "" when defined.
    """
    records = []
    conditioned = frame[frame["conditioned"] & frame["in_range"].fillna(False)]
    for method in conditioned["method"].unique():
        rows = conditioned[conditioned["method"] == method]
        record = {"method": method, "n": len(rows), "n_prompts": rows["post_id"].nunique()}
        for label, column in (("spearman", "reward"), ("spearman_gold", "gold")):
            usable = rows.dropna(subset=[column])
            mean, n_defined = spearman_per_prompt(usable, "target_reward", column)
            note = spearman_note(usable, column, n_defined)
            pooled, low, high = float("nan"), float("nan"), float("nan")
            if not note.startswith("undefined"):
                statistic = _pooled(column)
                pooled = statistic(usable)
                low, high = prompt_bootstrap(
                    statistic,
                    [usable],
                    ["target_reward", column],
                    n_resamples=settings.n_resamples,
                    level=settings.level,
                    seed=settings.seed,
                )
            record[f"{label}_pooled"] = pooled
            record[f"{label}_pooled_ci_low"], record[f"{label}_pooled_ci_high"] = low, high
            record[f"{label}_per_prompt_mean"] = mean
            record[f"{label}_per_prompt_n"] = n_defined
            record[f"{label}_note"] = note
        per_target = rows.groupby("target_name")[["target_reward", "reward"]].mean()
        record["calibration_mae"] = float(
            (per_target["reward"] - per_target["target_reward"]).abs().mean()
        )
        records.append(record)
    columns = [
        "method",
        "n",
        "n_prompts",
        "spearman_pooled",
        "spearman_pooled_ci_low",
        "spearman_pooled_ci_high",
        "spearman_per_prompt_mean",
        "spearman_per_prompt_n",
        "spearman_note",
        "spearman_gold_pooled",
        "spearman_gold_pooled_ci_low",
        "spearman_gold_pooled_ci_high",
        "spearman_gold_per_prompt_mean",
        "spearman_gold_per_prompt_n",
        "spearman_gold_note",
        "calibration_mae",
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def rankable(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows of a published table whose `column` may be ranked: it has a value and rests on
    at least `MIN_PROMPTS` prompts (`n_prompts`; for a pooled Spearman, the prompts on which the
    score varies with the target, `<label>_per_prompt_n`)."""
    count = column.replace("_pooled", "_per_prompt_n") if column.endswith("_pooled") else None
    prompts = table[count] if count else table["n_prompts"]
    return table[table[column].notna() & (prompts >= MIN_PROMPTS)]


def best_targets(summary: pd.DataFrame) -> dict[str, str]:
    """Each method's headline target: for a conditioned method the in-range target with the
    highest mean achieved (reward-model) reward, the higher target on a tie; `none` for a
    baseline. Chosen by the proxy a practitioner can see, never by gold."""
    chosen = {}
    for method, rows in summary.groupby("method", sort=False):
        if (rows["target_name"] == NO_TARGET).all():
            chosen[method] = NO_TARGET
            continue
        candidates = rows[rows["in_range"].fillna(False)]
        if candidates.empty:
            raise ValueError(f"method {method!r} has no generations at an in-range target")
        ranked = candidates.sort_values(
            ["achieved_reward_mean", "target_reward"], ascending=False, kind="stable"
        )
        chosen[method] = ranked["target_name"].iloc[0]
    return chosen


def win_rates(summary: pd.DataFrame, train_seconds: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per method at its headline target (`best_targets`): win rates against the
    reference summary under the reward model and under gold with their intervals, the means
    they go with, and the cost columns (training seconds, generated tokens per prompt, N)."""
    chosen = best_targets(summary)
    rows = pd.concat(
        [
            summary[(summary["method"] == method) & (summary["target_name"] == name)]
            for method, name in chosen.items()
        ],
        ignore_index=True,
    )
    table = rows[
        [
            "method",
            "target_name",
            "target_reward",
            "n",
            "n_prompts",
            "achieved_reward_mean",
            "gold_reward_mean",
            "gold_reward_ci_low",
            "gold_reward_ci_high",
            "winrate_rm",
            "winrate_rm_ci_low",
            "winrate_rm_ci_high",
            "winrate_gold",
            "winrate_gold_ci_low",
            "winrate_gold_ci_high",
        ]
    ].copy()
    seconds = train_seconds or {}
    table["train_seconds"] = [seconds.get(method, float("nan")) for method in table["method"]]
    table["generated_tokens_per_prompt"] = rows["generated_tokens_per_prompt"]
    table["n_candidates"] = rows["n_candidates"]
    return table


COMPARED_METRICS = {
    # metric -> (row column in `combine`'s frame, table it is read from, column there)
    "achieved_reward": ("reward", "winrate", "achieved_reward_mean"),
    "gold_reward": ("gold", "winrate", "gold_reward_mean"),
    "winrate_rm": ("win_rm", "winrate", "winrate_rm"),
    "winrate_gold": ("win_gold", "winrate", "winrate_gold"),
    "spearman_pooled": ("reward", "correlation", "spearman_pooled"),
}


def compare_methods(
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    correlation: pd.DataFrame,
    settings: BootstrapSettings,
    main_method: str | None = None,
) -> pd.DataFrame:
    """Paired bootstrap tests (over shared prompts) of the leader of each headline metric
    against every other method, and of `main_method` against every other method.

    Metrics: achieved and gold reward and the two win rates (each method at its headline
    target), and the pooled Spearman(target, achieved) over in-range targets (conditioned methods
    only; their `target_name` reads `in_range`). A difference is significant when its interval
    excludes zero.
    """
    chosen = best_targets(summary)
    tables = {"winrate": win_rates(summary), "correlation": correlation}
    records = []
    for metric, (row_column, table_name, table_column) in COMPARED_METRICS.items():
        table = rankable(tables[table_name], table_column)
        if len(table) < 2:
            continue
        value = table.set_index("method")[table_column]
        leader = value.idxmax()
        pairs = [(leader, other) for other in value.index if other != leader]
        if main_method in value.index and main_method != leader:
            pairs += [(main_method, other) for other in value.index if other != main_method]
        for method, other in dict.fromkeys(pairs):
            if metric == "spearman_pooled":
                usable = frame["in_range"].fillna(False) & frame["reward"].notna()
                a, b = (frame[(frame["method"] == m) & usable] for m in (method, other))
                difference = spearman(a["target_reward"], a["reward"]) - spearman(
                    b["target_reward"], b["reward"]
                )
                low, high = prompt_bootstrap(
                    lambda x, y: _pooled("reward")(x) - _pooled("reward")(y),
                    [a, b],
                    ["target_reward", "reward"],
                    n_resamples=settings.n_resamples,
                    level=settings.level,
                    seed=settings.seed,
                )
                n_prompts = len(set(a["post_id"]) & set(b["post_id"]))
            else:
                a, b = (
                    frame[(frame["method"] == m) & (frame["target_name"] == chosen[m])]
                    .groupby("post_id")[row_column]
                    .mean()
                    for m in (method, other)
                )
                difference, low, high, n_prompts = paired_difference(
                    a,
                    b,
                    n_resamples=settings.n_resamples,
                    level=settings.level,
                    seed=settings.seed,
                )
            per_target = metric != "spearman_pooled"
            records.append(
                {
                    "metric": metric,
                    "method": method,
                    "target_name": chosen[method] if per_target else IN_RANGE,
                    "other": other,
                    "other_target_name": chosen[other] if per_target else IN_RANGE,
                    "method_value": value[method],
                    "other_value": value[other],
                    "difference": difference,
                    "ci_low": low,
                    "ci_high": high,
                    "n_prompts": n_prompts,
                    "significant": bool(low > 0 or high < 0),
                }
            )
    columns = [
        "metric",
        "method",
        "target_name",
        "other",
        "other_target_name",
        "method_value",
        "other_value",
        "difference",
        "ci_low",
        "ci_high",
        "n_prompts",
        "significant",
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def read_benchmark_seconds(path: str | os.PathLike) -> float:
    """Wall seconds in a Snakemake benchmark file (column `s`; the mean over repeats)."""
    table = pd.read_csv(path, sep="\t")
    require_columns(table, ["s"], str(path))
    return float(table["s"].mean())
