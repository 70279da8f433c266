"""Shared fixtures: a tiny byte-level BPE tokenizer trained offline (no test needs the hub),
tiny random models of several families for the model invariant tests, and the real SmolLM2-135M
for the invariant tests marked `smollm2` when the pipeline has built its folder."""

import copy
import os
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

# Tests use tiny models, which gain nothing from intra-op threads; on a shared CPU the extra
# threads only contend (measured: the padding tests take 8.6 s with the default, 0.9 s with one).
torch.set_num_threads(1)

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


# Tiny model families for the invariant tests. Each factory takes the shared tiny tokenizer and
# returns (base causal LM, tokenizer to use with it). Add a family by adding an entry here.
# Large, so that a misplaced position or mask shows: at 0.2 ignoring left padding in the positions
# moves logits by 1 to 6 while fp32 noise from batching stays below 4e-6 (all three families).
INIT_RANGE = 0.2


def tiny_gpt2(tokenizer, **overrides):
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=INIT_RANGE,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **overrides,
    )
    return GPT2LMHeadModel(config), tokenizer


def tiny_gpt_neox(tokenizer, **overrides):
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        initializer_range=INIT_RANGE,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **overrides,
    )
    return GPTNeoXForCausalLM(config), tokenizer


def tiny_llama(tokenizer, **overrides):
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        initializer_range=INIT_RANGE,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **overrides,
    )
    return LlamaForCausalLM(config), tokenizer


MODEL_FAMILIES = {"gpt2": tiny_gpt2, "gpt_neox": tiny_gpt_neox, "llama": tiny_llama}

# The real SmolLM2-135M as the pipeline's `base_model` rule writes it (a trained Llama, fp32, with
# its own 49k tokenizer). Tests marked `smollm2` also run on it: the padding, cache and positions
# invariants, which must hold on a real checkpoint, not only on random tiny ones.
ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = ROOT / "data" / "models" / "smollm2-135m"
SMOLLM2_BUILD = "snakemake --cores 2 data/models/smollm2-135m"
# Set by .ci/run, which builds the folder: there a missing folder is an error, not a skip.
REQUIRE_SMOLLM2 = "REWARDCOND_REQUIRE_SMOLLM2"

# The largest |logit difference| the invariant tests accept between computations that must agree
# (alone vs padded, cached vs recomputed). Measured fp32 noise: below 4e-6 on the tiny families;
# up to 7.3e-5 on SmolLM2 (logits up to 34), where positions that ignore left padding move
# logits by 12 (tests/benchmarks/bench_smollm2_noise.py).
LOGIT_TOLERANCE = dict.fromkeys(MODEL_FAMILIES, 1e-5) | {"smollm2": 5e-4}


def pytest_generate_tests(metafunc):
    """Run every test that uses `family` once per tiny family, and on SmolLM2 if it is marked."""
    if "family" in metafunc.fixturenames:
        families = sorted(MODEL_FAMILIES)
        if metafunc.definition.get_closest_marker("smollm2"):
            families.append("smollm2")
        metafunc.parametrize("family", families, indirect=True)


@pytest.fixture
def family(request):
    """Name of a model family: one of MODEL_FAMILIES, or "smollm2" for tests marked `smollm2`."""
    return request.param


@pytest.fixture
def tolerance(family):
    """LOGIT_TOLERANCE of the family."""
    return LOGIT_TOLERANCE[family]


@pytest.fixture(scope="session")
def smollm2():
    """(SmolLM2-135M, its tokenizer) loaded once from SMOLLM2 (fp32, eval); a skip if the folder
    is missing, an error if REWARDCOND_REQUIRE_SMOLLM2=1."""
    if not SMOLLM2.is_dir():
        message = f"{SMOLLM2} is missing; build it with `{SMOLLM2_BUILD}` in {ROOT}"
        if os.environ.get(REQUIRE_SMOLLM2) == "1":
            pytest.fail(f"{message} ({REQUIRE_SMOLLM2}=1)")
        pytest.skip(message)
    base = AutoModelForCausalLM.from_pretrained(SMOLLM2, dtype=torch.float32)
    return base.eval(), AutoTokenizer.from_pretrained(SMOLLM2)


@pytest.fixture
def base_and_tokenizer(family, tiny_tokenizer, request):
    """A fresh, seeded base causal LM of `family` (fp32, CPU, eval mode) and its tokenizer."""
    torch.manual_seed(0)
    if family == "smollm2":
        base, tokenizer = request.getfixturevalue("smollm2")
        # A copy per test (0.1-0.3 s): no test can change the weights, attention
        # implementation or hooks of the one the others use.
        return copy.deepcopy(base), tokenizer
    base, tokenizer = MODEL_FAMILIES[family](tiny_tokenizer)
    return base.eval(), tokenizer


@pytest.fixture
def conditioned(base_and_tokenizer):
    """(RewardConditionedLM wrapping the family's base with an identity scaler, tokenizer)."""
    from rewardcond.modeling import RewardConditionedLM

    base, tokenizer = base_and_tokenizer
    model = RewardConditionedLM.from_base(base).eval()
    # A large reward map too, so that the slot visibly matters.
    torch.nn.init.normal_(model.reward_embedding.weight, std=INIT_RANGE)
    torch.nn.init.normal_(model.reward_embedding.bias, std=INIT_RANGE)
    return model, tokenizer
