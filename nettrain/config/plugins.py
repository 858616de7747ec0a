"""Plugins (`plugins: [my_layers.py, ...]`) read without importing them: the names they declare.

A plugin is a Python file the user lists in the config. Its custom Keras objects are the
top-level classes and functions decorated with `@keras.saving.register_keras_serializable(...)`
(or `keras.utils.`, or the bare decorator name). Keras registers each under `package>Name`; a
config names it by the plain `Name` (or the registered `package>Name`). The kind of a class comes
from its base class: a base under `keras.layers` (or named `...Layer`) makes a layer, `keras.losses`
/ `...Loss` a loss, `keras.metrics` / `...Metric` a metric, and so on; a class derived from another
class of the same file takes that one's kind. A decorated function is a loss or a metric, by where
the config uses it.

This module never imports a plugin and never imports TensorFlow (`validate` stays light); the
import itself is `store/plugins.py`'s, when a model is built or loaded.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from nettrain.errors import ConfigError
from nettrain.words import first_line

DECORATOR = "register_keras_serializable"
MAX_PLUGIN_BYTES = 1_000_000

# Kinds by the Keras module a base class is taken from, and by the ending of the base's name.
KIND_BY_MODULE = {"layers": "layer", "losses": "loss", "metrics": "metric", "initializers": "initializer",
                  "regularizers": "regularizer", "constraints": "constraint", "callbacks": "callback",
                  "optimizers": "optimizer"}
KIND_BY_SUFFIX = (("Layer", "layer"), ("Loss", "loss"), ("Metric", "metric"), ("Initializer", "initializer"),
                  ("Regularizer", "regularizer"), ("Constraint", "constraint"), ("Callback", "callback"),
                  ("Optimizer", "optimizer"))
FUNCTION = "function"  # a decorated function: a loss or a metric, by where the config names it


@dataclass(frozen=True)
class Declared:
    """One custom object a plugin declares."""

    name: str          # what the config writes (the class or function name, or the decorator's `name=`)
    registered: str    # Keras's key: `package>name`
    kind: str          # layer, loss, metric, initializer, ..., `function`, or `unknown`
    file: str          # the plugin file
    line: int
    params: tuple[str, ...] = ()   # its __init__ keywords (classes)
    open_kwargs: bool = True       # __init__ takes **kwargs (or has no __init__ of its own)
    required: tuple[str, ...] = ()

    def fits(self, kind: str) -> bool:
        """Whether the config may name it where a `kind` is expected."""
        return self.kind == kind or (self.kind == FUNCTION and kind in ("loss", "metric"))


@dataclass
class Plugins:
    """What the listed plugin files declare, in the order they are listed."""

    files: list[str] = field(default_factory=list)
    declared: list[Declared] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Declared]:
        return [d for d in self.declared if d.fits(kind)]

    def find(self, name: str, kind: str) -> Declared | None:
        """The declared object of `kind` that `name` names (plain name or `package>name`)."""
        for d in self.of_kind(kind):
            if name in (d.name, d.registered):
                return d
        return None

    def describe(self) -> list[str]:
        """One line per declared name and the plugin that provides it (what `validate` shows)."""
        return [f"plugin: {d.name} ({'loss or metric' if d.kind == FUNCTION else d.kind}, {d.registered}) from "
                f"{Path(d.file).name}" for d in self.declared]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plugin_name(path: str) -> str:
    """The name a plugin's copy has in a run (`<run>/plugins/<name>`): its file name."""
    return Path(path).name


def read_source(path: str, where: str) -> bytes:
    """The bytes of a plugin file; a ConfigError naming it when it cannot be read."""
    p = Path(path)
    try:
        if not p.is_file():
            raise ConfigError(f"plugin {path} does not exist (or is not a file); list .py files, relative to "
                              "the config", file=where, path="plugins")
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read plugin {path}: {e.strerror or e}", file=where, path="plugins") from None
    if len(data) > MAX_PLUGIN_BYTES:
        raise ConfigError(f"plugin {path} is {len(data):,} bytes; at most {MAX_PLUGIN_BYTES:,} are read",
                          file=where, path="plugins")
    return data


def read(path: str, where: str = "<config>", source: bytes | None = None) -> list[Declared]:
    """The custom objects one plugin file declares (a static read: the file is parsed, never run)."""
    data = read_source(path, where) if source is None else source
    try:
        tree = ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        raise ConfigError(f"plugin {path}{f':{line}' if line else ''} is not valid Python: {first_line(e)}",
                          file=where, path="plugins") from None
    classes: dict[str, str] = {}  # class name -> kind, for bases from the same file
    out: list[Declared] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = _class_kind(node, classes)
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            continue
        for deco in node.decorator_list:
            registration = _registration(deco)
            if registration is None:
                continue
            package, name = registration
            name = name or node.name
            if isinstance(node, ast.ClassDef):
                params, open_kwargs, required = _init_params(node)
                out.append(Declared(name, f"{package}>{name}", classes[node.name], str(path), node.lineno,
                                    params, open_kwargs, required))
            else:
                out.append(Declared(name, f"{package}>{name}", FUNCTION, str(path), node.lineno))
    return out


def declared(paths: list[str], where: str = "<config>") -> Plugins:
    """What every listed plugin declares; a name declared twice (in one file or two) is a ConfigError."""
    plugins = Plugins(files=list(paths))
    seen: dict[str, Declared] = {}
    names: dict[str, str] = {}
    for path in paths:
        name = plugin_name(path)
        if name in names:
            raise ConfigError(f"two plugins have the file name {name} ({names[name]} and {path}); a run keeps "
                              "its plugins by file name: rename one", file=where, path="plugins")
        names[name] = path
        for d in read(path, where):
            other = seen.get(d.name)
            if other is not None:
                raise ConfigError(f"{d.name} is declared twice: {other.file}:{other.line} and {d.file}:{d.line}",
                                  file=where, path="plugins")
            seen[d.name] = d
            plugins.declared.append(d)
    return plugins


def _dotted(node: ast.AST) -> str:
    """`keras.saving.register_keras_serializable` for an attribute chain, '' for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _registration(deco: ast.AST) -> tuple[str, str | None] | None:
    """(package, name) of a `register_keras_serializable` decorator, else None."""
    call = deco if isinstance(deco, ast.Call) else None
    target = call.func if call is not None else deco
    if _dotted(target).rpartition(".")[2] != DECORATOR:
        return None
    package, name = "Custom", None
    if call is not None:
        args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in call.args]
        if args[:1] and args[0]:
            package = args[0]
        if args[1:2] and args[1]:
            name = args[1]
        for kw in call.keywords:
            if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                if kw.arg == "package":
                    package = kw.value.value
                elif kw.arg == "name":
                    name = kw.value.value
    return package, name


def _class_kind(node: ast.ClassDef, classes: dict[str, str]) -> str:
    for base in node.bases:
        dotted = _dotted(base)
        if not dotted:
            continue
        if dotted in classes and classes[dotted] != "unknown":
            return classes[dotted]
        parts = dotted.split(".")
        for part in parts[:-1]:
            if part in KIND_BY_MODULE:
                return KIND_BY_MODULE[part]
        for suffix, kind in KIND_BY_SUFFIX:
            if parts[-1].endswith(suffix):
                return kind
    return "unknown"


def _init_params(node: ast.ClassDef) -> tuple[tuple[str, ...], bool, tuple[str, ...]]:
    """The keywords of a class's own __init__: (names, takes **kwargs, required names)."""
    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return (), True, ()
    a = init.args
    positional = a.posonlyargs + a.args
    names = [x.arg for x in positional[1:]] + [x.arg for x in a.kwonlyargs]
    n_default = len(a.defaults)
    required = [x.arg for x in positional[1:len(positional) - n_default]]
    required += [x.arg for x, d in zip(a.kwonlyargs, a.kw_defaults) if d is None]
    return tuple(names), a.kwarg is not None, tuple(required)
