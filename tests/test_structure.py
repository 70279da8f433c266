"""The package reads one way and fits in one sitting; light jobs stay light; every rule's inputs
are the package files its script runs (rewardcond.modules)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rewardcond import modules
from rewardcond.methods import available_methods

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "rewardcond"
SCRIPTS = ROOT / "workflow" / "scripts"
MAX_LINES = 400
# Rules whose jobs only move files or tables: they must not pay for torch and transformers.
LIGHT_SCRIPTS = (
    "download.py",
    "download_hub_model.py",
    "synthetic_world.py",
    "prepare.py",
    "merge_generations.py",
    "merge_scored_completions.py",
    "reward_model_accuracy.py",
    "examples.py",
)
# Rules whose jobs load no model (a tokenizer at most, or a reward model only when a judge of
# that kind is configured): the modules their scripts import at the top must not load torch,
# which costs each of the demo's ~30 such jobs seconds of start-up.
NO_MODEL_SCRIPTS = (
    "eval_prompts.py",
    "trainset.py",
    "targets.py",
    "judge.py",
    "judge_agreement.py",
    "publish.py",
)


def relative(paths):
    return sorted(str(Path(path).relative_to(SOURCE)) for path in paths)


def write_package(root: Path, files: dict[str, str]) -> Path:
    """A package `rewardcond` under `root` with the given files (relative path -> source)."""
    package = root / "rewardcond"
    for name, text in {"__init__.py": "", **files}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_the_package_has_no_import_cycle():
    assert modules.cycles(modules.import_graph(SOURCE)) == []


def test_a_cycle_hidden_inside_a_function_is_found(tmp_path):
    package = write_package(
        tmp_path,
        {
            "a.py": "from rewardcond.b import g\n",
            "b.py": "def g():\n    from rewardcond import a\n    return a\n",
            "c.py": "import rewardcond.a\n",
            "sub/__init__.py": "",
            "sub/d.py": "from rewardcond.sub import e\n",
            "sub/e.py": "import rewardcond.sub.d as d\n",
        },
    )
    graph = modules.import_graph(package)
    assert graph["rewardcond.b"] == {"rewardcond", "rewardcond.a"}
    assert modules.cycles(graph) == [
        ["rewardcond.a", "rewardcond.b", "rewardcond.a"],
        ["rewardcond.sub.d", "rewardcond.sub.e", "rewardcond.sub.d"],
    ]


def test_no_module_is_longer_than_one_sitting():
    lengths = {
        str(path.relative_to(SOURCE)): len(path.read_text().splitlines())
        for path in SOURCE.rglob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_library_holds_what_a_script_imports_anywhere_and_the_packages_on_the_way(tmp_path):
    package = write_package(
        tmp_path,
        {
            "low.py": "",
            "mid/__init__.py": "",
            "mid/inner.py": "def f():\n    import rewardcond.low\n",
            "unused.py": "",
            "methods/__init__.py": "",
            "methods/base.py": "",
            "methods/bon.py": "from rewardcond.methods.base import *\n",
            "methods/dpo.py": "import rewardcond.unused\n",
        },
    )
    script = tmp_path / "script.py"
    script.write_text("import torch\nfrom rewardcond.mid import inner\n")
    assert relative_to(package, modules.library(scripts=[script], source=package)) == [
        "__init__.py",
        "low.py",
        "mid/__init__.py",
        "mid/inner.py",
    ]
    with_method = modules.library(scripts=[script], method="bon16", source=package)
    assert relative_to(package, with_method) == [
        "__init__.py",
        "low.py",
        "methods/__init__.py",
        "methods/base.py",
        "methods/bon.py",
        "mid/__init__.py",
        "mid/inner.py",
    ]
    with pytest.raises(KeyError, match=r"not modules of rewardcond: \['rewardcond.nope'\]"):
        modules.library(modules=["rewardcond.nope"], source=package)


def relative_to(package, paths):
    return sorted(str(Path(path).relative_to(package)) for path in paths)


def test_a_method_is_found_in_the_module_of_its_name():
    assert modules.method_module("dpo") == "dpo"
    assert modules.method_module("bon16") == "bon"
    for name in ("ppo", "base", "../dpo", "bon4x"):
        with pytest.raises(KeyError, match=f"defines method {name!r}"):
            modules.method_module(name)
    # Every method of the package lives where its name says.
    for name in available_methods():
        module = modules.method_module(name.replace("<N>", "4"))
        assert (SOURCE / "methods" / f"{module}.py").is_file(), name


def test_the_jobs_of_one_method_run_its_module_and_no_other():
    library = relative(modules.library(scripts=[SCRIPTS / "trainset.py"], method="dpo"))
    methods = [name for name in library if name.startswith("methods/")]
    assert methods == ["methods/__init__.py", "methods/base.py", "methods/dpo.py"]
    # The method module that get_method imports is the only one in a fresh process too.
    code = (
        "import sys, json\n"
        "from rewardcond.methods import get_method\n"
        "get_method('bon4')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('rewardcond.methods'))))"
    )
    loaded = json.loads(run_python(code))
    assert loaded == ["rewardcond.methods", "rewardcond.methods.base", "rewardcond.methods.bon"]


def test_every_rule_script_imports_only_package_modules_that_exist():
    for script in SCRIPTS.glob("*.py"):
        names = {
            n for n in modules.imported_names(script, "__script__") if n.startswith("rewardcond")
        }
        known = set(modules.package_modules(SOURCE))
        modules_imported = {n for n in names if n in known}
        # `from rewardcond.x import name` also yields `rewardcond.x.name`, which is no module.
        assert all(n in known or n.rsplit(".", 1)[0] in known for n in names), script.name
        assert modules_imported, script.name


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    return result.stdout.strip().splitlines()[-1]


def test_importing_the_package_and_what_light_jobs_run_loads_no_torch():
    library = modules.library(scripts=[SCRIPTS / name for name in LIGHT_SCRIPTS])
    names = sorted(
        name
        for name, path in modules.package_modules(SOURCE).items()
        if path in library and not name.endswith("__init__")
    )
    assert "rewardcond.data.prepare" in names and "rewardcond.distributed" in names
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({'torch', 'transformers', 'trl'} & set(sys.modules))))"
    )
    assert json.loads(run_python(code)) == []


def top_level_imports(script: Path) -> list[str]:
    """The rewardcond modules a script imports in its own top-level statements."""
    import ast

    names = []
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module.startswith("rewardcond"):
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.startswith("rewardcond")]
    return names


def test_jobs_that_load_no_model_start_without_torch():
    names = sorted(
        {name for script in NO_MODEL_SCRIPTS for name in top_level_imports(SCRIPTS / script)}
    )
    assert "rewardcond.judges.stage" in names and "rewardcond.trainset" in names
    # trainset and targets also import the method's module (get_method).
    names += [f"rewardcond.methods.{path.stem}" for path in (SOURCE / "methods").glob("*.py")]
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = {'torch', 'transformers.modeling_utils', 'trl'}\n"
        "print(json.dumps(sorted(heavy & set(sys.modules))))"
    )
    assert json.loads(run_python(code)) == []
