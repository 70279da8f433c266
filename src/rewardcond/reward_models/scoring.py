"""Scoring summaries with a reward model: `RewardModelScorer` and `load_scorer`.

`load_scorer(...)` is the entry point of the stages that score (completions, generations,
references, best-of-N); it loads either kind of reward model (`inputs` describes their input
formats) and returns a `RewardModelScorer`, which scores in length-bucketed batches.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardcond import DEMO_COMMAND
from rewardcond.artifacts import resolve_device, sha256_file
from rewardcond.hub import open_hub_model
from rewardcond.reward_models.inputs import InputBuilder, length_batches
from rewardcond.reward_models.model import RewardModel

logger = logging.getLogger(__name__)

ON_EMPTY = ("error", "skip")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
    """Per input: raw reward (NaN where skipped or in another shard), post shortened to fit,
    skipped as empty, and whether the row belongs to the shard scored (all True unsharded)."""

    rewards: np.ndarray
    truncated: np.ndarray
    skipped: np.ndarray
    in_shard: np.ndarray


class RewardModelScorer:
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
        self,
        posts: Sequence[dict],
        summaries: Sequence[str],
        names: Sequence[str] | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> ScoreResult:
        """Rewards plus truncation and skip flags; `names` label rows in error messages.

        `shard` = `(index, count)` (0-based) scores only shard `index` of `count`: the
        length-bucketed batches are planned once over all rows, whatever the sharding, and the
        shard takes every `count`-th of them (round robin, from its index); empty rows belong to
        shard 0. Every row is thus scored in the same batch, of the same padded width, by any
        number of shards, so its reward is bit for bit the unsharded one (a row's float result
        depends on its batch's shape). Each shard encodes all rows to plan the batches.
        """
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
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f"shard index {index} is not in 0..{count - 1}")
        batches = length_batches(lengths, self.batch_tokens, self.max_batch_size)[index::count]
        rewards[keep] = self.run_batches(encodings, batches, [names[i] for i in keep])
        in_shard = skipped & (index == 0)
        if batches:
            in_shard[keep[np.concatenate(batches)]] = True
        return ScoreResult(rewards, truncated, skipped, in_shard)

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
    input_format: str = "pair",
) -> RewardModelScorer:
    """A `RewardModelScorer` for a reward model.

    kind `pretrained`: an `AutoModelForSequenceClassification` fed, with `input_format` `pair`
    (the default; e.g. OpenAssistant's DeBERTa), the tokenizer's `(prompt, summary)` pair
    encoding, where `template` renders the prompt (question); with `causal`, a decoder with a
    scalar head (e.g. a Pythia TL;DR reward model, `GPTNeoXForSequenceClassification`) fed
    `prompt + summary + EOS` as one text and read at its last token. `path_or_hub_id` is a
    folder of the `download_hub_model` rule (read from disk only; identity `hub_id@revision`
    from its manifest), any local folder, or a hub id at a pinned `revision`, loaded from the local
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
        if input_format not in ("pair", "causal"):
            raise ValueError(
                f"input_format={input_format!r} of {identity}; expected 'pair' or 'causal'"
            )
    else:
        raise ValueError(f"kind={kind!r}; expected 'pretrained' or 'train'")
    return RewardModelScorer(
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
