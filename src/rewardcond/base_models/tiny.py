"""A tiny causal LM built from a transformers config, with a tokenizer trained on the corpus.

The offline demo cannot download a pretrained model, so its base is built here: a byte-level BPE
tokenizer trained with `tokenizers` on the prepared corpus, and a randomly initialised model of
any `AutoConfig` model type sized by config. `rewardcond.base_models.pretrain` can then teach it
to read and copy before any reward-conditioned fine-tuning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
# A pad distinct from EOS: a collator that masks padding out of the labels can then never mask
# the EOS that ends a completion, which the model must learn to write.
PAD_TOKEN = "<|pad|>"


def train_documents(posts: pd.DataFrame, template: str) -> list[str]:
    """Prompt + reference summary of every post in the tldr train split (never valid/test).

    These are the texts a tiny base is pretrained on; a train post without a reference is an
    error in the prepared data, not something to skip.
    """
    train = posts[posts["split"] == "train"]
    missing = train["reference"].isna()
    if missing.any():
        raise ValueError(
            f"posts.parquet: {int(missing.sum())} train posts have no reference "
            f"(first post_id {train.loc[missing, 'post_id'].iloc[0]!r}); expected a string"
        )
    return [
        template.format(subreddit=row.subreddit, title=row.title, post=row.post) + row.reference
        for row in train.itertuples(index=False)
    ]


def pretraining_documents(posts: pd.DataFrame, template: str, *, repeated_posts: bool) -> list[str]:
    """What a tiny base is pretrained on: the train documents and, if `repeated_posts`, each
    train post written twice (post, blank line, post).

    The repeated post is a plain copy task. A tiny model learns to copy through induction heads
    (attend to what followed the earlier occurrence of the current context); prompt + reference
    alone grows them too slowly for a minutes-long budget, a text and its repetition much faster.
    """
    documents = train_documents(posts, template)
    if repeated_posts:
        documents += [f"{post}\n\n{post}" for post in posts.loc[posts["split"] == "train", "post"]]
    return documents


def tokenizer_corpus(posts: pd.DataFrame, completions: pd.DataFrame, template: str) -> list[str]:
    """What the tokenizer learns from: train documents and every summary of a train post."""
    train_ids = set(posts.loc[posts["split"] == "train", "post_id"])
    summaries = completions.loc[completions["post_id"].isin(train_ids), "text"]
    return train_documents(posts, template) + summaries.tolist()


def train_tokenizer(
    texts: Iterable[str], *, vocab_size: int, model_max_length: int
) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer trained on `texts`.

    Byte-level BPE rather than word-level: on a small, closed-vocabulary corpus a few hundred
    merges already make every frequent word one token (as a word-level vocabulary would, which is
    what lets a tiny model copy a word with one attention lookup), while any text still encodes
    and decodes exactly, with no `<unk>` and no lost whitespace or newlines. `vocab_size` is a
    ceiling: training stops early once every word of the corpus is a single token.
    `<|endoftext|>` is BOS and EOS (as in GPT-2); `<|pad|>` is a separate pad token. No BOS is
    prepended.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
    )


def context_length(config) -> int:
    """The number of positions a config supports (`n_positions` for GPT-2, else the HF name)."""
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(config, key, None)
        if value is not None:
            return int(value)
    raise ValueError(f"{type(config).__name__} names no context length (n_positions, ...)")


def build_model(
    architecture: str, model_config: Mapping[str, Any], tokenizer: PreTrainedTokenizerFast
) -> PreTrainedModel:
    """A randomly initialised causal LM of `architecture` (an AutoConfig model_type).

    Vocabulary size and special-token ids come from the tokenizer; setting them in
    `model_config` is an error, since they must agree with it.
    """
    derived = ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id")
    clashes = sorted(set(model_config) & set(derived))
    if clashes:
        raise ValueError(
            f"model_config sets {clashes}; these come from the trained tokenizer, remove them"
        )
    config = AutoConfig.for_model(
        architecture,
        **model_config,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return AutoModelForCausalLM.from_config(config)
