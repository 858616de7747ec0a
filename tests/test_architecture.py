"""The shape of the package: arrows between subpackages point one way, and the light commands stay light.

Which imports count: only module-level ones, the statements that run when a module is imported (at
the top, inside a module-level `if`/`try`, in a class body). Imports inside functions are left out
on purpose: a lazy import runs when its function is called, so it cannot make an import cycle, and
it is the way the package keeps TensorFlow out of the CLI (`nettrain.api` imports training/ inside
the commands that train). `if TYPE_CHECKING:` blocks never run and are left out too.

The floor rule counts every import, lazy ones included: each room (subpackage or top-level
module) sits on a floor (`FLOORS`, the order docs/architecture.md draws) and imports only from the
floors below it, so a lazy import can keep TensorFlow out of a light command but can never reach
upwards. Two rules are stricter still: training/ never imports lifecycle/ (the orchestration calls
training, never the other way), and the one-training leaf `training/fit.py` knows nothing of k-fold.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "nettrain"
HEAVY = ("tensorflow", "keras", "tf_keras")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


@lru_cache(maxsize=None)
def _tree(name: str) -> ast.Module:
    path = _modules()[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST, lazy: bool):
    """The Import/ImportFrom nodes under `node`; without `lazy`, only those that run at import time."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif not lazy and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif not lazy and isinstance(child, ast.If) and _is_type_checking(child):
            yield from (n for stmt in child.orelse for n in _import_nodes_of_stmt(stmt, lazy))
        else:
            yield from _import_nodes(child, lazy)


def _import_nodes_of_stmt(stmt: ast.stmt, lazy: bool):
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        yield stmt
    else:
        yield from _import_nodes(stmt, lazy)


def imports(name: str, lazy: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) for every import in module `name`: absolute names, relative imports
    resolved; `from X import y` gives X and, when it is a module of the package, X.y."""
    is_package = _modules()[name].name == "__init__.py"
    out = []
    for node in _import_nodes(_tree(name), lazy):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            anchor = name.split(".") if is_package else name.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        out.append((base, node.lineno))
        out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names if f"{base}.{alias.name}" in _modules()]
    return out


def _internal(target: str) -> str | None:
    """The package module an import loads (the longest known prefix), or None outside nettrain."""
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in _modules():
            return candidate
    return None


def _room(name: str) -> str:
    """nettrain.<sub>: the subpackage, or the top-level module (api, cli, errors), or nettrain itself."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _room_graph() -> dict[str, dict[str, list[str]]]:
    graph: dict[str, dict[str, list[str]]] = {}
    for name in _modules():
        for target, line in imports(name):
            inner = _internal(target)
            if inner is not None and inner.startswith("nettrain.") and _room(inner) != _room(name):
                graph.setdefault(_room(name), {}).setdefault(_room(inner), []).append(f"{name}:{line} -> {inner}")
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first walk from each node (small graph)."""
    found: set[tuple[str, ...]] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in graph.get(node, {}):
            if nxt in path:
                cycle = path[path.index(nxt):]
                turn = cycle.index(min(cycle))
                found.add(tuple(cycle[turn:] + cycle[:turn]))
            else:
                walk(nxt, path + [nxt])

    for start in graph:
        walk(start, [start])
    return [list(c) + [c[0]] for c in sorted(found)]


def test_subpackages_import_each_other_one_way_only():
    graph = _room_graph()
    cycles = _cycles(graph)
    lines = []
    for cycle in cycles:
        lines.append("cycle: " + " -> ".join(cycle))
        lines += [f"    {edge}" for a, b in zip(cycle, cycle[1:]) for edge in graph[a][b][:3]]
    assert not cycles, "\n".join(lines)


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}, "d": {"a": ["w"]}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b": ["x"]}, "b": {}}) == []


def test_module_level_means_not_inside_functions_nor_type_checking():
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
                     "try:\n    import d\nexcept ImportError:\n    pass\n"
                     "class K:\n    import e\ndef f():\n    import g\n")
    module = [n.names[0].name for n in _import_nodes(tree, lazy=False)]
    assert module == ["a", "c", "d", "e"]
    assert sorted(n.names[0].name for n in _import_nodes(tree, lazy=True)) == list("abcdeg")


# The floors of the house, top to bottom (docs/architecture.md): a module imports only from floors
# below its own, lazily or not. Rooms on one floor do not import each other (data and report).
FLOORS = {
    "__main__": 9, "cli": 8, "api": 7, "render": 7, "sweep": 6, "lifecycle": 5, "training": 4,
    "model": 3.5, "data": 3, "report": 3, "store": 2.5, "config": 2,
    "errors": 1.5, "keras_compat": 1, "words": 1, "nettrain": 0,
}


def _downward_offenders(edges) -> list[str]:
    """The edges (source room, target room, where) that do not point to a lower floor."""
    return [f"{where}: {a} (floor {FLOORS.get(a)}) -> {b} (floor {FLOORS.get(b)})"
            for a, b, where in edges if FLOORS.get(a) is None or FLOORS.get(b) is None or FLOORS[b] >= FLOORS[a]]


def _all_edges(lazy: bool):
    for name in _modules():
        for target, line in imports(name, lazy=lazy):
            inner = _internal(target)
            if inner is not None and _room(inner) != _room(name):
                yield _room(name), _room(inner), f"{name}:{line}"


def test_every_room_has_a_floor():
    rooms = {_room(name) for name in _modules()}
    assert rooms <= set(FLOORS), f"place the new room(s) on a floor in FLOORS: {sorted(rooms - set(FLOORS))}"


def test_every_import_points_down_the_floors_lazy_ones_included():
    """cli -> api -> (sweep) -> lifecycle -> training -> model/data/report -> store/config -> errors/words:
    an import inside a function obeys the same rule as one at the top of the module."""
    offenders = _downward_offenders(_all_edges(lazy=True))
    assert not offenders, "imports against the floors:\n" + "\n".join(offenders)


def test_the_floor_rule_sees_a_lazy_import_upwards():
    tree = ast.parse("def f():\n    from nettrain.lifecycle import evaluate\n")
    lazy = [n.module for n in _import_nodes(tree, lazy=True)]
    assert lazy == ["nettrain.lifecycle"]
    assert _downward_offenders([("data", "lifecycle", "nettrain.data.x:2")])
    assert _downward_offenders([("data", "report", "nettrain.data.x:2")])  # one floor, two rooms
    assert not _downward_offenders([("lifecycle", "data", "nettrain.lifecycle.x:2")])


def _private_uses(name: str, tree: ast.Module | None = None) -> list[str]:
    """Where module `name` takes a private name (`_x`, not dunder) of another nettrain module: imported
    by name, or read as an attribute of a module it imported (`O._train`)."""
    out, aliases = [], {}
    tree = tree or _tree(name)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nettrain"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in _modules():
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                elif alias.name.startswith("_") and not alias.name.startswith("__") and node.module != name:
                    out.append(f"{name}:{node.lineno} imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("nettrain") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and aliases[node.value.id] != name):
            out.append(f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return out


def test_no_module_uses_another_modules_private_names():
    """A name another module needs is public (no leading underscore): `lifecycle/worker.py` once drove
    `orchestrate._train`; what is private may change without a look at its callers."""
    offenders = [line for name in _modules() for line in _private_uses(name)]
    assert not offenders, "\n".join(offenders)


def test_the_private_name_check_sees_both_ways():
    tree = ast.parse("def f():\n    from nettrain.lifecycle import orchestrate as O\n    O._train()\n"
                     "from nettrain.report.plots import _new_figure\n")
    found = _private_uses("nettrain.lifecycle.worker", tree)
    assert found == ["nettrain.lifecycle.worker:4 imports nettrain.report.plots._new_figure",
                     "nettrain.lifecycle.worker:3 uses nettrain.lifecycle.orchestrate._train"], found


def test_training_never_imports_lifecycle_not_even_lazily():
    offenders = [f"{name}:{line} -> {target}" for name in _modules() if _room(name) == "training"
                 for target, line in imports(name, lazy=True) if target.startswith("nettrain.lifecycle")]
    assert not offenders, "training/ is below lifecycle/ (the orchestration); it may not import it:\n" + \
        "\n".join(offenders)


def test_the_fit_leaf_knows_nothing_of_kfold():
    offenders = [f"{target} (line {line})" for target, line in imports("nettrain.training.fit", lazy=True)
                 if target.startswith("nettrain.training.kfold") or target.startswith("nettrain.lifecycle")]
    assert not offenders, "training/fit.py runs one training; k-fold and the orchestration use it, not it them: " + \
        ", ".join(offenders)


def test_one_definition_of_the_split_names():
    definitions = []
    for name in _modules():
        for node in _tree(name).body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SPLITS" for t in node.targets) \
                    and isinstance(node.value, ast.Tuple):
                definitions.append(f"{name}:{node.lineno}")
    assert [d.split(":")[0] for d in definitions] == ["nettrain.store.rundir"], \
        f"SPLITS is defined at {definitions}; keep the one tuple in nettrain/store/rundir.py and import it"


# ------------------------------------------------------------------------------ light commands

def _module_level_heavy(name: str) -> list[str]:
    return [f"{name}:{line} imports {target}" for target, line in imports(name)
            if target.split(".")[0] in HEAVY]


def _with_parents(name: str) -> list[str]:
    """Importing a.b.c runs a, a.b and a.b.c."""
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in _modules()]


def _module_level_closure(roots: list[str]) -> set[str]:
    """The package modules that importing `roots` runs, following module-level imports only."""
    seen: set[str] = set()
    todo = [m for r in roots for m in _with_parents(r)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for target, _ in imports(name):
            inner = _internal(target)
            if inner is not None:
                todo += [m for m in _with_parents(inner) if m not in seen]
    return seen


def test_cli_config_and_what_they_import_have_no_tensorflow_at_module_level():
    roots = ["nettrain.cli", "nettrain.__main__", "nettrain.api"] + \
        [name for name in _modules() if name == "nettrain.config" or name.startswith("nettrain.config.")]
    closure = _module_level_closure(roots)
    assert {"nettrain.cli", "nettrain.config.loader", "nettrain.errors"} <= closure
    offenders = [line for name in sorted(closure) for line in _module_level_heavy(name)]
    assert not offenders, "these modules load with `nettrain --help`, `validate` or `schema`:\n" + "\n".join(offenders)


def test_the_static_check_sees_a_module_level_tensorflow_import():
    assert _module_level_heavy("nettrain.training.runtime")  # the module that does import it


def _imported_at_runtime(args: list[str], cwd: Path) -> list[str]:
    """The modules `python -X importtime -m nettrain ARGS` imports (its stderr report)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "nettrain", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    names = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    names = [n for n in names if n and n != "imported package"]
    assert "nettrain.cli" in names, proc.stderr[-2000:]
    return names


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("light")
    (d / "tiny.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    path = d / "tiny.yaml"
    path.write_text("data: {source: tiny.csv, target: y}\nmodel: {layers: [{type: Dense, units: 4}]}\n"
                    "training: {epochs: 1}\n")
    return path


@pytest.mark.parametrize("command", ["--help", "validate", "schema"])
def test_light_commands_import_no_tensorflow(command, tiny_config):
    args = ["validate", str(tiny_config)] if command == "validate" else [command]
    names = _imported_at_runtime(args, tiny_config.parent)
    heavy = sorted({n for n in names if n.split(".")[0] in HEAVY})
    assert not heavy, f"nettrain {command} imported {heavy[:10]}"
    ours = [n for n in names if n in _modules()]
    offenders = [line for name in ours for line in _module_level_heavy(name)]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("command", ["--help", "validate", "schema"])
def test_light_commands_import_no_data_library(command, tiny_config):
    """`validate` (its stream decision included), `schema` and `--help` stay well under a second:
    numpy, pandas and pyarrow (~0.5-1 s to import) come only with commands that read rows."""
    args = ["validate", str(tiny_config)] if command == "validate" else [command]
    names = _imported_at_runtime(args, tiny_config.parent)
    data = sorted({n.split(".")[0] for n in names} & {"numpy", "pandas", "pyarrow"})
    assert not data, f"nettrain {command} imported {data}"
