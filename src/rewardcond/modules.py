"""The package's own modules, found by reading its source: which module a method lives in, what
each module imports, and so which source files a rule's script runs.

Snakemake reruns a job when one of its inputs changes, but it does not see what the job's script
imports. `library` lists every module of the package that a script imports, directly or
through other modules, at the top of a file or inside a function, with the package `__init__.py`
files Python runs on the way; `workflow/rules/common.smk` makes those files inputs of the
rule (it loads this file by its path, so this module imports nothing beyond the standard
library). A method's module is imported by name (`rewardcond.methods.get_method`), which no
parse can see: the rules of one method add it, and what it imports, by its name.

Module names are dotted (`rewardcond.reward_models.scoring`); a package is named by itself
(`rewardcond.methods` is `methods/__init__.py`).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "rewardcond"
SOURCE = Path(__file__).resolve().parent
METHODS = "methods"
#: Modules of the methods package that are no method.
NOT_METHODS = ("__init__", "base")


#: A model's name: its method, then the variant suffixes in this order, each left out at its
#: default: `-r<round>` (an online round >= 2, issue 18), `-f<percent>` (trained on that percent,
#: 1-99, of the method's training pool; 100 when left out) and `-s<seed>` (a replicate trained with
#: that seed; the run's `seed` when left out) (issue 19). `scalar-r2-f30-s7` is round 2 of `scalar`
#: trained on 30% of its pool with seed 7.
MODEL_NAME = re.compile(
    r"(?P<method>[a-z_][a-z0-9_]*?)"
    r"(?:-r(?P<round>[2-9]|[1-9][0-9]+))?"
    r"(?:-f(?P<fraction>[1-9][0-9]?))?"
    r"(?:-s(?P<seed>0|[1-9][0-9]*))?"
)


@dataclasses.dataclass(frozen=True)
class ModelName:
    """The parts of a model name (`MODEL_NAME`): `percent` in 1..100, `seed` None for the run's."""

    method: str
    round: int = 1
    percent: int = 100
    seed: int | None = None

    @classmethod
    def parse(cls, name: str) -> ModelName:
        """The parts of `name`.

        Raises:
            ValueError: naming `name` and the expected form, when it does not match MODEL_NAME.
        """
        match = MODEL_NAME.fullmatch(name)
        if match is None:
            raise ValueError(
                f"model name {name!r} is not <method>[-r<round>=2..][-f<percent>=1..99][-s<seed>]"
            )
        return cls(
            method=match["method"],
            round=int(match["round"] or 1),
            percent=int(match["fraction"] or 100),
            seed=None if match["seed"] is None else int(match["seed"]),
        )

    def __str__(self) -> str:
        return (
            self.method
            + (f"-r{self.round}" if self.round != 1 else "")
            + (f"-f{self.percent}" if self.percent != 100 else "")
            + (f"-s{self.seed}" if self.seed is not None else "")
        )


def split_round(name: str) -> tuple[str, int]:
    """(model, round) of a model name: `scalar-r3` is round 3 of `scalar` (`scalar-r2-s7` round 2
    of `scalar-s7`); a name without the round suffix, or no model name (`ModelName`), is round 1
    (the offline run) of itself."""
    match = MODEL_NAME.fullmatch(name)
    if match is None or match["round"] is None:
        return name, 1
    parsed = ModelName.parse(name)
    return str(dataclasses.replace(parsed, round=1)), parsed.round


def model_method(name: str) -> str:
    """The method of a model name (`scalar` of `scalar-r2-f30-s7`, `ModelName`); a name that is
    no model name is returned as it is (for the caller's own error)."""
    match = MODEL_NAME.fullmatch(name)
    return name if match is None else match["method"]


def method_module(name: str, source: str | Path = SOURCE) -> str:
    """The module of the methods package that defines method `name`: the module of that name,
    or, for a member of a family named by a number (`bon4` of `bon<N>`), the module named
    without the number (`bon`).

    Raises:
        KeyError: naming `name` and the method modules, when no module fits.
    """
    name = model_method(name)
    folder = Path(source) / METHODS
    found = sorted(p.stem for p in folder.glob("*.py") if p.stem not in NOT_METHODS)
    if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        for stem in (name, re.sub(r"[0-9]+$", "", name)):
            if stem in found:
                return stem
    raise KeyError(f"no module of {PACKAGE}.{METHODS} defines method {name!r}; modules: {found}")


def package_modules(source: str | Path = SOURCE) -> dict[str, Path]:
    """Every module of the package under `source` (the package folder), by dotted name."""
    return dict(_package_modules(str(source)))


@functools.cache
def _package_modules(source: str) -> dict[str, Path]:
    source = Path(source)
    modules = {}
    for path in sorted(source.rglob("*.py")):
        parts = path.relative_to(source).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((PACKAGE, *parts))] = path
    return modules


def imported_names(path: str | Path, module: str) -> set[str]:
    """Dotted names that the file of `module` imports anywhere (top level, functions, classes):
    `import a.b` gives `a.b`; `from a import b` gives `a` and `a.b` (b may be a submodule)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    is_package = Path(path).name == "__init__.py"
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(source: str | Path = SOURCE) -> dict[str, set[str]]:
    """For each module of the package, the package modules its file imports (itself excluded).

    Only the imports written in the file count: not the `__init__` of the packages on the way,
    which Python runs too (see `closure`), as a package that imports its own submodules would
    otherwise always be a cycle. Files are read once per process (and `source`).
    """
    return {module: set(names) for module, names in _import_graph(str(source)).items()}


@functools.cache
def _import_graph(source: str) -> dict[str, frozenset[str]]:
    modules = _package_modules(source)
    return {
        module: frozenset({n for n in imported_names(path, module) if n in modules} - {module})
        for module, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles of `graph`: for each strongly connected set of more than one module (or a
    module importing itself), its modules in a cycle order, the first one repeated at the end."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(_cycle_order(sorted(component), graph))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _cycle_order(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A path through `component` from its first module back to it (a cycle to print)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for other in sorted(graph.get(node, ()) & members):
            if other == start:
                return [*paths[node], start]
            if other not in paths:
                paths[other] = [*paths[node], other]
                queue.append(other)
    return [start, start]


def closure(modules: Iterable[str], source: str | Path = SOURCE) -> set[str]:
    """`modules` and every package module they import, transitively, with the packages on the
    way (`rewardcond`, `rewardcond.methods` for `rewardcond.methods.dpo`)."""
    graph, known = _import_graph(str(source)), _package_modules(str(source))
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module in seen or module not in known:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(graph[module])
    return seen


def library(
    *,
    scripts: Iterable[str | Path] = (),
    modules: Iterable[str] = (),
    method: str | None = None,
    source: str | Path = SOURCE,
) -> list[Path]:
    """The package's source files that a job runs, sorted: those the rule `scripts` import and
    the package `modules` it runs (e.g. `rewardcond.train` under `accelerate launch`), with
    everything they import (`closure`); with `method`, also the method's module and what it
    imports (no other method's module: `rewardcond.methods.get_method` imports only that one)."""
    known = _package_modules(str(source))
    names = set(modules)
    for script in scripts:
        names |= {name for name in imported_names(script, "__script__") if name in known}
    if method is not None:
        names.add(f"{PACKAGE}.{METHODS}.{method_module(method, source)}")
    unknown = sorted(names - set(known))
    if unknown:
        raise KeyError(f"not modules of {PACKAGE}: {unknown}")
    return sorted(known[module] for module in closure(names, source))
