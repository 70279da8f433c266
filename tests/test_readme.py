"""The README's library example runs as written (with tiny offline stand-ins for `gpt2`)."""

import re
from pathlib import Path

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
