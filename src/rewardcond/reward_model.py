"""A reward model trained on human (or synthetic) comparisons, as in Stiennon et al. (2020).

A causal LM body (any `AutoModel` backbone, e.g. GPT-2) reads `prompt + summary + EOS`; a linear
head maps the hidden state of the last *real* token to a scalar reward. The last real token is
found from the attention mask, never from token ids, because GPT-2-style tokenizers pad with EOS
(so `GPT2ForSequenceClassification`, which looks for the first pad id, would stop at our EOS) and
padding may sit on either side. Training minimises -log sigmoid(r_chosen - r_rejected); afterwards
the head's bias is shifted so that the reference summaries of the training posts score 0 on average
(the loss cannot see a constant, so the bias carries only that normalisation).

The model is registered with `AutoConfig` / `AutoModelForSequenceClassification`: it returns
`logits` of shape (batch, 1) like any single-label sequence classifier, so scoring code treats it
and a pretrained hub reward model the same way.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import SequenceClassifierOutput

from rewardcond.artifacts import (
    atomic_path,
    build_manifest,
    resolve_device,
    set_seed,
    write_json,
    write_table,
)
from rewardcond.scoring import DTYPES, InputBuilder, Scorer, pad_encodings, post_fields

logger = logging.getLogger(__name__)


class RewardModelConfig(PreTrainedConfig):
    """Config of `RewardModel`: the backbone's own config nested as `text_config`.

    `context_length`: the most tokens (prompt + summary + EOS) the model reads, posts shortened to
    fit; set at training time so that scoring later shortens posts exactly as training did (None:
    the backbone's context).
    """

    model_type = "rewardcond_reward_model"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="gpt2")
    }

    text_config: dict | PreTrainedConfig | None = None
    context_length: int | None = None


class RewardModel(PreTrainedModel):
    """A transformer backbone plus a scalar head read at the last non-pad token.

    `forward` returns `SequenceClassifierOutput(logits=rewards[:, None])`; `loss` is the pairwise
    loss when `labels` is given (see `pairwise_loss`: rows 2i and 2i+1 are a chosen/rejected pair).
    """

    config_class = RewardModelConfig
    base_model_prefix = "backbone"
    _supports_sdpa = True
    _supports_flash_attn = True

    def __init__(self, config: RewardModelConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.text_config)
        self.score = nn.Linear(config.text_config.hidden_size, 1)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # The paper's head init: N(0, 1/(d_model + 1)); the bias holds only the normalisation.
        if module is self.score:
            nn.init.normal_(module.weight, std=1.0 / math.sqrt(module.in_features + 1))
            nn.init.zeros_(module.bias)
        else:
            self.backbone._init_weights(module)

    @classmethod
    def from_base(cls, base: PreTrainedModel) -> RewardModel:
        """Wrap the body of a causal LM (its LM head is dropped) with a freshly initialised head."""
        body = base.base_model
        config = RewardModelConfig(text_config=body.config.to_dict())
        config.text_config._attn_implementation = body.config._attn_implementation
        model = cls(config)
        model.backbone.load_state_dict(body.state_dict())
        return model.to(dtype=next(body.parameters()).dtype)

    @property
    def max_length(self) -> int | None:
        """Tokens read per input: `config.context_length`, else the backbone's position table."""
        text = self.config.text_config
        positions = getattr(text, "n_positions", None) or getattr(
            text, "max_position_embeddings", None
        )
        return self.config.context_length or positions

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            # Count real tokens only, so that left padding does not shift absolute positions.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **kwargs,
        ).last_hidden_state
        last = last_token_index(attention_mask)
        rewards = self.score(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
        loss = None
        if labels is not None:
            loss = pairwise_loss(rewards[0::2, 0], rewards[1::2, 0])
        return SequenceClassifierOutput(loss=loss, logits=rewards)


AutoConfig.register(RewardModelConfig.model_type, RewardModelConfig)
AutoModelForSequenceClassification.register(RewardModelConfig, RewardModel)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position whose mask is 1, per row (works for left and right padding)."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (attention_mask.long() * (positions + 1)).argmax(-1)


def pairwise_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r_chosen - r_rejected) (the Bradley-Terry preference loss)."""
    return -nn.functional.logsigmoid(chosen - rejected).mean()


def load_base(path: str | os.PathLike) -> tuple[PreTrainedModel, Any]:
    """A causal LM and its tokenizer from a materialised `data/models/<name>/` folder."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} holds no base model (config.json missing); build it with the base_model rule"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        raise ValueError(f"the tokenizer in {path} has no pad token; the base-model stage sets one")
    if tokenizer.eos_token is None:
        raise ValueError(f"the tokenizer in {path} has no EOS token; a summary must end with one")
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), tokenizer


def comparison_pairs(comparisons: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison: `post_id`, `chosen`, `rejected` (the labeller's pick first)."""
    bad = ~comparisons["choice"].isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"comparisons row {row}: field 'choice' is {comparisons['choice'].iloc[row]}; "
            "expected 0 or 1"
        )
    choice = comparisons["choice"].to_numpy().astype(int)
    summaries = comparisons[["summary_0", "summary_1"]].to_numpy()
    rows = np.arange(len(comparisons))
    return pd.DataFrame(
        {
            "post_id": comparisons["post_id"].to_numpy(),
            "chosen": summaries[rows, choice],
            "rejected": summaries[rows, 1 - choice],
        }
    )


def train_reward_model(
    model: RewardModel,
    tokenizer,
    posts: Sequence[dict],
    chosen: Sequence[str],
    rejected: Sequence[str],
    *,
    template: str,
    max_length: int | None = None,
    epochs: float = 1.0,
    batch_size: int = 64,
    lr: float = 1.5e-5,
    weight_decay: float = 0.0,
    warmup_ratio: float = 0.05,
    seed: int = 0,
    device: str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    log_every: int = 10,
) -> pd.DataFrame:
    """Train `model` in place on (chosen, rejected) pairs; return the loss curve.

    Each example is `prompt + summary + EOS` with the post truncated to fit `max_length`. Pairs are
    shuffled (seeded) and both members of a pair go through one forward pass. The learning rate
    warms up linearly, then decays with a cosine to 0. Returns one row per logged step:
    `step, epoch, loss, accuracy, lr` (means over the steps since the last row).
    """
    if not len(posts) == len(chosen) == len(rejected):
        raise ValueError("posts, chosen and rejected must have the same length")
    if not len(posts):
        raise ValueError("no training pairs: the comparisons have no 'train' rows")
    set_seed(seed)
    builder = InputBuilder(tokenizer, template, max_length=max_length or model.max_length)
    encoded = list(
        zip(builder.encode(posts, chosen)[0], builder.encode(posts, rejected)[0], strict=True)
    )
    generator = np.random.default_rng(seed)
    steps_per_epoch = math.ceil(len(encoded) / batch_size)
    total_steps = max(1, round(steps_per_epoch * epochs))
    warmup = round(total_steps * warmup_ratio)

    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / (warmup + 1)
            if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))
        ),
    )
    history, window = [], []
    order = np.array([], dtype=int)
    started = time.perf_counter()
    for step in tqdm(range(total_steps), desc="reward model", unit="step"):
        if len(order) < batch_size:
            order = np.concatenate([order, generator.permutation(len(encoded))])
        batch, order = order[:batch_size], order[batch_size:]
        inputs = pad_encodings(
            [e for i in batch for e in encoded[i]], tokenizer.pad_token_id, device
        )
        with torch.autocast(
            device.split(":")[0], autocast_dtype, enabled=autocast_dtype is not None
        ):
            rewards = model(**inputs).logits[:, 0].float()
        loss = pairwise_loss(rewards[0::2], rewards[1::2])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        window.append((loss.item(), (rewards[0::2] > rewards[1::2]).float().mean().item()))
        if (step + 1) % log_every == 0 or step + 1 == total_steps:
            losses, accuracies = zip(*window, strict=True)
            history.append(
                {
                    "step": step + 1,
                    "epoch": (step + 1) / steps_per_epoch,
                    "loss": float(np.mean(losses)),
                    "accuracy": float(np.mean(accuracies)),
                    "lr": schedule.get_last_lr()[0],
                    "seconds": time.perf_counter() - started,
                }
            )
            window = []
    model.eval()
    return pd.DataFrame(history)


def normalize_to_references(
    model: RewardModel, reference_rewards: np.ndarray
) -> dict[str, float | int]:
    """Shift the head's bias so that rewards of the given references average 0; return the shift."""
    reference_rewards = np.asarray(reference_rewards, dtype=np.float64)
    if not len(reference_rewards) or not np.isfinite(reference_rewards).all():
        raise ValueError("normalisation needs at least one finite reference reward")
    mean = float(reference_rewards.mean())
    with torch.no_grad():
        model.score.bias -= mean
    return {"reference_mean_before": mean, "n_references": len(reference_rewards)}


@dataclass(frozen=True)
class RewardModelTrainSettings:
    """Settings of the trained reward model (config section `reward_model.train`, without `base`,
    the folder it starts from); the defaults are the schema's, from Stiennon et al. (2020).

    epochs: passes over the train comparisons (fractions allowed); batch_size: comparisons per
    optimizer step; lr: peak AdamW learning rate (linear warmup over `warmup_ratio` of the
    steps, cosine decay to 0); max_length: tokens per input (prompt + summary + EOS; None: the
    base's context); max_pairs: a seeded subset of this many train comparisons (None: all);
    gpu_dtype: autocast dtype on CUDA (CPU always runs float32); batch_tokens: token budget of a
    scoring batch when normalising on the reference summaries.
    """

    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 1.5e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    max_length: int | None = None
    max_pairs: int | None = None
    gpu_dtype: str = "bfloat16"
    batch_tokens: int = 16384


def build_trained_reward_model(
    *,
    comparisons_path: str | os.PathLike,
    posts_path: str | os.PathLike,
    base_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    template: str,
    params: dict,
    seed: int,
    device: str = "auto",
) -> dict:
    """The `train_reward_model` stage: train on the 'train' comparisons of TL;DR posts (`domain`
    tldr; CNN/DM ones are left out and counted in the manifest), normalise, save.

    `params` is the `reward_model.train` config section: `RewardModelTrainSettings` keyword
    arguments (missing ones take its defaults; a `base` key is ignored, the base comes from
    `base_path`). Writes `output_dir` atomically: safetensors weights, config, tokenizer,
    `loss.csv` and `manifest.json`. Returns the manifest.
    """
    settings = RewardModelTrainSettings(**{k: v for k, v in params.items() if k != "base"})
    device = resolve_device(device)
    set_seed(seed)
    comparisons = pd.read_parquet(comparisons_path)
    posts = pd.read_parquet(posts_path).set_index("post_id", drop=False)
    train = comparisons[comparisons["split"] == "train"]
    n_other_domains = 0
    if "domain" in train.columns:  # TL;DR only, as the paper's reward model
        n_other_domains = int((train["domain"] != "tldr").sum())
        train = train[train["domain"] == "tldr"]
        logger.info("left out %d train comparisons of other domains (CNN/DM)", n_other_domains)
    if settings.max_pairs is not None and len(train) > settings.max_pairs:
        train = train.sample(n=settings.max_pairs, random_state=seed)
    pairs = comparison_pairs(train)
    missing = sorted(set(pairs["post_id"]) - set(posts.index))
    if missing:
        raise ValueError(
            f"{comparisons_path}: {len(missing)} post_id(s) are not in {posts_path}, "
            f"e.g. {missing[0]!r}"
        )
    base, tokenizer = load_base(base_path)
    model = RewardModel.from_base(base)
    del base
    model.config.context_length = max_length = settings.max_length or model.max_length
    autocast = DTYPES[settings.gpu_dtype] if device.startswith("cuda") else None
    history = train_reward_model(
        model,
        tokenizer,
        post_fields(posts.loc[pairs["post_id"]]),
        pairs["chosen"].tolist(),
        pairs["rejected"].tolist(),
        template=template,
        max_length=max_length,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        warmup_ratio=settings.warmup_ratio,
        seed=seed,
        device=device,
        autocast_dtype=autocast if autocast != torch.float32 else None,
    )
    references = posts[(posts["split"] == "train") & posts["reference"].notna()]
    scorer = Scorer(
        model,
        tokenizer,
        template=template,
        max_length=max_length,
        device=device,
        batch_tokens=settings.batch_tokens,
        identity="trained:unsaved",
    )
    normalization = normalize_to_references(
        model, scorer.score(post_fields(references), references["reference"].tolist())
    )
    logger.info(
        "reward normalised: reference mean %.4f moved to 0", normalization["reference_mean_before"]
    )
    model.to("cpu", dtype=torch.float32)
    with atomic_path(output_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        history.to_csv(tmp / "loss.csv", index=False)
        manifest = build_manifest(
            params={**params, **asdict(settings), "template": template, "max_length": max_length},
            seed=seed,
            inputs=[comparisons_path, posts_path, base_path],
            n_train_pairs=len(pairs),
            n_train_other_domains=n_other_domains,
            normalization=normalization,
            final_train_loss=float(history["loss"].iloc[-1]),
            device=device,
        )
        write_json(tmp / "manifest.json", manifest)
    return manifest


# Anchors from other setups (not measured here), shown beside the measured rows for scale.
ANCHORS = (
    ("OpenAssistant/reward-model-deberta-v3-large-v2", 0.72, "its model card, TL;DR comparisons"),
    ("Pythia-1B RM", 0.63, "Huang et al. 2024, TL;DR valid"),
    ("Pythia-2.8B RM", 0.67, "Huang et al. 2024, TL;DR valid"),
    ("Pythia-6.9B RM", 0.69, "Huang et al. 2024, TL;DR valid"),
    ("human inter-labeller agreement", 0.77, "Stiennon et al. 2020"),
)
ACCURACY_SPLITS = ("valid2", "valid1")
ACCURACY_DOMAINS = ("tldr", "cnndm")


def pairwise_correct(reward_0, reward_1, choice) -> np.ndarray:
    """Per comparison: 1 if the RM prefers the labeller's choice, 0 if not, 0.5 on a tie."""
    margin = np.asarray(reward_1, dtype=np.float64) - np.asarray(reward_0, dtype=np.float64)
    sign = np.where(np.asarray(choice) == 1, 1.0, -1.0) * margin
    return np.where(sign > 0, 1.0, np.where(sign < 0, 0.0, 0.5))


def accuracy_table(
    comparisons: pd.DataFrame,
    scored: pd.DataFrame,
    *,
    model_name: str,
    bayes_optimal: dict[str, float] | None = None,
    samples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Accuracy of a reward model on valid2 and valid1 (and per labeller confidence), with CIs,
    per domain: TL;DR rows first (`domain` tldr), then CNN/DailyMail ones (`cnndm`) when the
    comparisons hold any (the paper's transfer test; never mixed into the TL;DR rows).

    `scored` holds `post_id`, `text`, `reward` (the scored completions); a comparison whose summary
    has no score (skipped as empty) is left out and counted in `n_unscored`. With
    `bayes_optimal` (per split, synthetic world) the table adds the Bayes-optimal accuracy and the
    share of the learnable signal captured, (accuracy - 0.5) / (bayes - 0.5). Anchor rows from other
    setups (all TL;DR) follow, marked `kind = anchor`. Comparisons without a `domain` column are
    TL;DR.
    """
    # Imported here, so that of the reward-model rules only the accuracy one depends on it.
    from rewardcond.evaluation import bootstrap_ci

    rewards = scored.drop_duplicates(["post_id", "text"]).set_index(["post_id", "text"])["reward"]
    domains = comparisons["domain"] if "domain" in comparisons.columns else "tldr"
    comparisons = comparisons.assign(domain=domains)
    present = set(comparisons["domain"])
    rows = []
    for domain, split in [(d, s) for d in ACCURACY_DOMAINS for s in ACCURACY_SPLITS]:
        if domain != "tldr" and domain not in present:
            continue
        subset = comparisons[(comparisons["split"] == split) & (comparisons["domain"] == domain)]
        reward_0 = rewards.reindex(
            pd.MultiIndex.from_arrays([subset["post_id"], subset["summary_0"]])
        )
        reward_1 = rewards.reindex(
            pd.MultiIndex.from_arrays([subset["post_id"], subset["summary_1"]])
        )
        known = reward_0.notna().to_numpy() & reward_1.notna().to_numpy()
        correct = pairwise_correct(
            reward_0.to_numpy()[known],
            reward_1.to_numpy()[known],
            subset["choice"].to_numpy()[known],
        )
        confidence = subset["confidence"].to_numpy(dtype=np.float64)[known]
        groups = [("all", np.ones(len(correct), dtype=bool))]
        groups += [
            (f"confidence={c:g}", confidence == c)
            for c in np.unique(confidence[np.isfinite(confidence)])
        ]
        for group, mask in groups:
            low, high = bootstrap_ci(correct[mask], n_resamples=samples, seed=seed)
            rows.append(
                {
                    "kind": "measured",
                    "model": model_name,
                    "domain": domain,
                    "split": split,
                    "subset": group,
                    "n": int(mask.sum()),
                    "n_unscored": int((~known).sum()) if group == "all" else 0,
                    "accuracy": float(correct[mask].mean()) if mask.any() else np.nan,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    table = pd.DataFrame(rows)
    if bayes_optimal:
        table["bayes_optimal"] = [
            bayes_optimal.get(split, np.nan) if subset == "all" and domain == "tldr" else np.nan
            for split, subset, domain in zip(
                table["split"], table["subset"], table["domain"], strict=True
            )
        ]
        table["signal_captured"] = (table["accuracy"] - 0.5) / (table["bayes_optimal"] - 0.5)
    anchors = pd.DataFrame(
        [
            {
                "kind": "anchor",
                "model": name,
                "domain": "tldr",
                "split": "other setup",
                "subset": "all",
                "accuracy": accuracy,
                "source": source,
            }
            for name, accuracy, source in ANCHORS
        ]
    )
    table = pd.concat([table.assign(source="this run"), anchors], ignore_index=True)
    return table.astype({"n": "Int64", "n_unscored": "Int64"})


def measure_accuracy(
    *,
    comparisons_path: str | os.PathLike,
    scored_path: str | os.PathLike,
    data_report_path: str | os.PathLike,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike,
    samples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The `reward_model_accuracy` stage: `accuracy_table` written as CSV and Markdown."""
    scored = pd.read_parquet(scored_path, columns=["post_id", "text", "reward", "reward_model"])
    report = json.loads(Path(data_report_path).read_text())
    table = accuracy_table(
        pd.read_parquet(comparisons_path),
        scored,
        model_name=str(scored["reward_model"].iloc[0]) if len(scored) else "none",
        bayes_optimal=report.get("bayes_optimal_accuracy"),
        samples=samples,
        seed=seed,
    )
    write_table(
        table,
        csv_path,
        md_path,
        title="Reward-model accuracy on held-out comparisons (95% bootstrap CIs; "
        "rows of kind 'anchor' come from other setups and were not measured here)",
    )
    return table
