"""The generation stage: summaries of the evaluation prompts by one method, at each of its
conditions (the decoding loop itself is `rewardcond.decoding`).

A reward-conditioned method makes one pass per target reward of `targets.json`; a baseline makes
one pass with no target (`target_name` "none", `target_reward` NaN). Every pass sees the same
prompts and, when sampling, the same seeds, so that targets differ only in the target.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from rewardcond.artifacts import resolve_device, set_seed, write_parquet
from rewardcond.batching import PromptTemplate, count_tokens, max_text_length
from rewardcond.distributed import batch_aligned_rows, parse_shard
from rewardcond.methods import Method
from rewardcond.modeling import RewardConditionedLM
from rewardcond.tables import GENERATION_COLUMNS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateSettings:
    """Decoding settings (config section `generate`).

    max_new_tokens: generation stops at EOS or after this many tokens.
    do_sample: sample (with temperature, top_p) instead of greedy decoding.
    num_samples: completions per prompt and condition (1 when greedy).
    max_prompt_tokens: prompts longer than this have their post body shortened.
    The defaults are the schema's (`generate`, and `trainset.max_prompt_tokens`);
    tests/test_config_schema.py keeps the two in step.
    """

    max_new_tokens: int = 48
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    num_samples: int = 1
    batch_size: int = 32
    max_prompt_tokens: int = 512

    def __post_init__(self) -> None:
        if self.num_samples > 1 and not self.do_sample:
            raise ValueError(
                f"generate.num_samples = {self.num_samples} with greedy decoding gives identical"
                " samples; set generate.do_sample: true or num_samples: 1"
            )


def generate_method(
    method: Method,
    *,
    model_path: str,
    prompts_path: str,
    targets_path: str,
    output_path: str,
    template: str,
    settings: GenerateSettings,
    seed: int,
    device: str = "auto",
    shard: str = "1-of-1",
    scorer=None,
) -> pd.DataFrame:
    """Generate for every eval prompt x condition x sample; write and return the table.

    `shard` ("<i>-of-<n>") generates for its run of the single job's batches only (prompts
    sorted by token count, cut into `settings.batch_size`: `distributed.batch_aligned_rows`), so
    that each prompt is decoded in the same batch either way (a condition's prefix adds the
    same tokens to every prompt, keeping the order); with n > 1 the table has `row`, the
    prompt's position in `prompts_path`, and `rewardcond.distributed.merge_generation_shards`
    joins the shards into the single-job table. `scorer` (a
    `rewardcond.reward_models.scoring.RewardModelScorer`) is for methods that need the reward
    model to generate (`method.needs_scorer`, best-of-N). A target reward
    reaches the model through its slot when it has one (`RewardConditionedLM`), otherwise only
    through the condition's prefix.
    """
    if method.needs_scorer and scorer is None:
        raise ValueError(f"method {method.name!r} needs a scorer (the reward model) to generate")
    set_seed(seed)
    model, tokenizer = method.load_model(model_path)
    model.to(resolve_device(device)).eval()
    prompts = pd.read_parquet(prompts_path)
    with open(targets_path, encoding="utf-8") as handle:
        targets = json.load(handle)
    conditions = method.conditions(targets)
    prefix_tokens = max(len(tokenizer(c.prefix)["input_ids"]) for c in conditions)
    budget = min(settings.max_prompt_tokens, max_text_length(model) - settings.max_new_tokens)
    rendered = render_prompts(prompts, tokenizer, PromptTemplate(template), budget - prefix_tokens)
    index, count = parse_shard(shard)
    lengths = [count_tokens(tokenizer, prompt) for prompt in rendered]
    rows = batch_aligned_rows(lengths, settings.batch_size, index, count)
    prompts = prompts.iloc[rows].reset_index(drop=True)
    rendered = [rendered[i] for i in rows]

    posts = prompts[["subreddit", "title", "post"]].to_dict("records")
    generation = {
        "max_new_tokens": settings.max_new_tokens,
        "do_sample": settings.do_sample,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "batch_size": settings.batch_size,
    }
    passes = [(c, s) for c in conditions for s in range(settings.num_samples)]
    table_rows = []
    for condition, sample in tqdm(passes, desc=f"generate {method.name}", unit="pass"):
        prefixed = [condition.prefix + prompt for prompt in rendered]
        rewards = None
        if isinstance(model, RewardConditionedLM):
            rewards = [condition.target_reward] * len(prefixed)
        completions = method.complete(
            model,
            tokenizer,
            prefixed,
            rewards,
            posts=posts,
            generation=generation,
            seed=seed + sample,
            scorer=scorer,
        )
        for row, post_id, completion in zip(rows, prompts["post_id"], completions, strict=True):
            table_rows.append(
                {
                    "method": method.name,
                    "post_id": post_id,
                    "target_name": condition.name,
                    "target_reward": condition.target_reward,
                    "sample": sample,
                    "text": completion.text,
                    "n_tokens": len(completion.token_ids),
                    "finished": completion.finished,
                    "n_candidates": method.n_candidates,
                    "row": row,
                }
            )
    columns = [*GENERATION_COLUMNS, *(["row"] if count > 1 else [])]
    table = pd.DataFrame(table_rows, columns=columns).astype(
        {
            "target_reward": "float64",
            "sample": "int64",
            "n_tokens": "int64",
            "n_candidates": "int64",
        }
    )
    write_parquet(output_path, table)
    log.info("%s: %d generations over %d conditions", method.name, len(table), len(conditions))
    return table


def render_prompts(prompts: pd.DataFrame, tokenizer, template: PromptTemplate, budget: int):
    """The prompt text of each eval post, its body shortened to `budget` tokens."""
    return [
        template.render_truncated(
            tokenizer, budget, subreddit=row.subreddit, title=row.title, post=row.post
        )
        for row in prompts.itertuples(index=False)
    ]
