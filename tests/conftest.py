"""Shared fixtures: a tiny byte-level BPE tokenizer trained offline, so no test needs the hub."""

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

CORPUS = [
    "SUBREDDIT: r/relationships\n\nTITLE: My roommate never cleans\n\nPOST: We share a flat. "
    "She leaves dishes everywhere.\nI asked twice.\n\nTL;DR: roommate is messy, what do I do?",
    "SUBREDDIT: r/personalfinance\n\nTITLE: Paying off debt\n\nPOST: I owe 5000 dollars on a card."
    "\nMy rent is due.\n\nTL;DR: how do I pay my debt and rent?",
    "the quick brown fox jumps over the lazy dog 0123456789 !?.,;:'\"()-",
]


def build_tiny_tokenizer(vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer with `<|endoftext|>` as EOS and pad (like GPT-2)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE (vocab ~320) with pad = eos, as GPT-2 is usually set up."""
    return build_tiny_tokenizer()
