"""The README's library example runs as written (with tiny offline stand-ins for `gpt2`)."""

import os
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_gpt2
from transformers import AutoModelForCausalLM, AutoTokenizer

README = Path(__file__).resolve().parents[1] / "README.md"


def library_example() -> str:
    section = README.read_text(encoding="utf-8").split("\n## Library\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_readme_library_example_runs(tiny_tokenizer, monkeypatch, tmp_path, capsys):
    load_model = AutoModelForCausalLM.from_pretrained

    def fake_model(name, *args, **kwargs):
        return tiny_gpt2(tiny_tokenizer)[0] if name == "gpt2" else load_model(name, *args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda name: tiny_tokenizer)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake_model)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(library_example(), str(README), "exec"), namespace)
    completions = namespace["completions"]
    assert capsys.readouterr().out.splitlines() == [
        f"{target} {completion.text!r} {completion.finished}"
        for target, completion in zip([0.0, 3.0], completions, strict=True)
    ]
    for completion in completions:
        # Stopped at EOS (dropped), or ran the full 32 tokens; the text is those tokens.
        assert completion.finished or len(completion.token_ids) == 32
        assert tiny_tokenizer.eos_token_id not in completion.token_ids
        assert completion.text == tiny_tokenizer.decode(completion.token_ids)
    assert type(namespace["model"]).__name__ == "RewardConditionedLM"
    assert namespace["model"].scaler == namespace["scaler"]


FINISHED_DEMO = os.environ.get("REWARDCOND_FINISHED_DEMO")


def python_blocks(section_title: str) -> list[str]:
    section = README.read_text(encoding="utf-8").split(f"\n## {section_title}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.mark.skipif(
    not FINISHED_DEMO,
    reason="set REWARDCOND_FINISHED_DEMO to a checkout with a finished demo run (CI does)",
)
def test_readme_offline_example_writes_wrong_facts_low_and_the_post_high(monkeypatch, capsys):
    # The second example of the Library section, run as written in the finished demo's folder:
    # the trained scalar model at q05 writes a fact the post does not hold; at q100 only the
    # post's own facts, most of them.
    monkeypatch.chdir(FINISHED_DEMO)
    torch.set_num_threads(1)
    example = python_blocks("Library")[1]
    exec(compile(example, str(README), "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["post:", "q05", "q100"]
    post = set(sentences(lines[0].split(" ", 1)[1]))
    low, high = (sentences(line.split(" ", 1)[1]) for line in lines[1:])
    assert set(low) - post, f"q05 wrote only the post's facts: {low}"
    assert set(high) <= post and len(high) >= 3, f"q100: {high} vs the post {post}"
    # The output README shows is the one the demo gives.
    after = README.read_text(encoding="utf-8").split(example + "```", 1)[1]
    shown = re.search(r"```\n(.*?)```", after, re.DOTALL).group(1).splitlines()
    assert [line.strip() for line in shown] == [line.strip() for line in lines]


def sentences(text: str) -> list[str]:
    return [part.strip() for part in text.split(".") if part.strip()]


def test_readme_figures_of_the_full_run_match_config_yaml():
    config = yaml.safe_load((README.parent / "workflow/config/config.yaml").read_text())
    text = README.read_text(encoding="utf-8")
    full_run = text.split("\n## The full run\n", 1)[1].split("\n## ", 1)[0]
    stated = re.findall(r"generation for ([\d,]+)\s+prompts x (\d+) targets", full_run)
    targets = config["trainset"]["targets"]
    expected = (
        config["generate"]["n_prompts"],
        len(targets["quantiles"]) + len(targets["beyond_max_sd"]),
    )
    assert [(int(n.replace(",", "")), int(k)) for n, k in stated] == [expected]
    # Every method of the full run has a row in README's method table (bon<N> as `bon<N>`).
    table = text.split("\n## Methods\n", 1)[1].split("\n\n", 2)[1]
    rows = set(re.findall(r"^\| `([^`]+)` \|", table, re.MULTILINE))
    named = {re.sub(r"^bon\d+$", "bon<N>", method) for method in config["methods"]}
    assert named <= rows, named - rows
