"""`load_config(path, overrides)`: YAML file + `--set` overrides -> a validated `Config`.

Every mistake becomes one `ConfigError` naming the file, the dotted key path, the YAML line
and what is allowed. No TensorFlow here.
"""

from __future__ import annotations

import difflib
import os
import typing
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ValidationError

from nettrain.config import catalog
from nettrain.config.schema import Config, LayerSpec
from nettrain.errors import ConfigError, UsageError

# Keys whose string values are paths (relative to the config file, or to the current
# directory when given with --set). data.source is a path unless it names a bundled set.
PATH_KEYS = (("data", "source"), ("data", "train"), ("data", "validation"), ("data", "test"), ("output", "dir"))
BUNDLED_PREFIXES = ("sklearn:", "keras:")


# --------------------------------------------------------------------------------- YAML

class _Loader(yaml.SafeLoader):
    """Safe loader that refuses duplicate keys (YAML would silently keep the last one)."""


def _read_yaml(text: str, file: str) -> tuple[Any, dict[tuple, int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple, int] = {}
        if node is not None:
            _walk(node, (), lines, file)
        data = loader.construct_document(node) if node is not None else None
    except yaml.constructor.ConstructorError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise ConfigError(
            f"YAML tag not allowed ({e.problem}): configs hold plain data only (mappings, lists, "
            "strings, numbers, booleans)", file=file, line=line) from None
    except yaml.composer.ComposerError as e:
        raise ConfigError(f"one YAML document per file expected ({e.problem})", file=file) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        msg = f"malformed YAML: {problem}" + (f" ({context})" if context else "")
        raise ConfigError(msg, file=file, line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    return data, lines


def _walk(node: yaml.Node, path: tuple, lines: dict[tuple, int], file: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"key '{key}' appears twice (lines {seen[key]} and {line}); keep one",
                    file=file, path=_dotted(path + (key,)), line=line)
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines, file)
            lines[path + (i,)] = item.start_mark.line + 1


def _dotted(path: Iterable) -> str:
    return ".".join(str(p) for p in path)


# ----------------------------------------------------------------------------- overrides

def parse_override(text: str) -> tuple[tuple, Any]:
    """`model.layers.0.units=32` -> (("model", "layers", 0, "units"), 32); VALUE is YAML."""
    if "=" not in text:
        raise UsageError(f"--set expects KEY=VALUE (e.g. training.epochs=5), got {text!r}")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UsageError(f"--set {text!r}: empty key path")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise UsageError(f"--set {key}: value {raw!r} is not valid YAML ({getattr(e, 'problem', e)})") from None
    path = tuple(int(p) if p.isdigit() else p for p in key.split("."))
    return path, value


# Keys that take a name or a mapping: `--set training.optimizer.learning_rate=0.1` on
# `optimizer: adam` turns it into `{name: adam, learning_rate: 0.1}` (kernel_initializer: `type`).
NAME_OR_MAPPING = {("training", "optimizer"): "name", ("training", "loss"): "name",
                   ("model", "kernel_initializer"): "type"}


def _default_at(path: tuple) -> Any:
    cls: Any = Config
    for part in path[:-1]:
        cls = _models_in(cls.model_fields[part].annotation)[0]
    return cls.model_fields[path[-1]].default


def apply_override(data: dict, path: tuple, value: Any) -> None:
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        nxt = path[depth + 1]
        here = path[: depth + 1]
        if isinstance(node, dict) and here in NAME_OR_MAPPING:
            current = node.get(part)
            if current is None:  # not in the file: start from the schema's default name
                current = _default_at(here)
            if isinstance(current, str) and current != "auto":
                node[part] = {NAME_OR_MAPPING[here]: current}
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise UsageError(f"--set {_dotted(path)}: {_dotted(path[:depth])} has {len(node)} items, "
                                 f"no index {part}")
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise UsageError(f"--set {_dotted(path)}: {_dotted(path[:depth]) or 'the config'} is not a mapping")
        if node.get(part) is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last > len(node):
            raise UsageError(f"--set {_dotted(path)}: the list has {len(node)} items, no index {last}")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise UsageError(f"--set {_dotted(path)}: {_dotted(path[:-1])} is not a mapping")


# -------------------------------------------------------------------------------- paths

def _resolve_paths(data: dict, base: Path, only: Iterable[tuple] | None = None) -> None:
    for path in PATH_KEYS:
        if only is not None and path not in only:
            continue
        section = data.get(path[0])
        if not isinstance(section, dict):
            continue
        value = section.get(path[1])
        if not isinstance(value, str) or not value or value.startswith(BUNDLED_PREFIXES):
            continue
        p = Path(os.path.expanduser(value))
        section[path[1]] = os.path.normpath(p if p.is_absolute() else base / p)


# ---------------------------------------------------------------------------- validation

def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop the union/tag parts pydantic adds, keeping only keys and indexes found in data."""
    out, node = [], data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part not in node and "[" not in part \
                and not part[0].isupper() and part not in ("str", "int", "float", "bool", "list", "dict") \
                and not _is_tag(node, part):
            out.append(part)  # a key that is missing (required) or extra
            node = None
    return tuple(out)


def _is_tag(node: dict, part: str) -> bool:
    return node.get("type") == part or node.get("generator") == part or part in ("function-after", "literal")


def _model_at(path: tuple, data: Any) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at `path` (for 'did you mean')."""
    cls: Any = Config
    node = data
    for part in path:
        if cls is None:
            return None
        if isinstance(part, int):
            cls = _models_in(cls)
            node = node[part] if isinstance(node, list) and part < len(node) else None
            cls = _pick(cls, node)
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None
        node = node.get(part) if isinstance(node, dict) else None
        cls = _pick(_models_in(cls.model_fields[part].annotation), node)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _models_in(annotation: Any) -> list:
    if isinstance(annotation, list):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out


def _pick(models: list, node: Any):
    if not models:
        return None
    if len(models) == 1:
        return models[0]
    if isinstance(node, dict) and "type" in node:  # discriminated union (lr_schedule)
        for m in models:
            field = m.model_fields.get("type")
            if field is not None and node["type"] in typing.get_args(field.annotation):
                return m
    return models  # several candidates: resolved by the next (index) step or not at all


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower().replace("_", ""): c for c in choices}
        close = difflib.get_close_matches(word.lower().replace("_", ""), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f"did you mean '{close[0]}'? " if close else ""


_TYPE_WORDS = {
    "string_type": "a string", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "int_type": "an integer", "int_parsing": "an integer",
    "int_from_float": "an integer", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "a list",
    "literal_error": None, "none_required": "null",
}


def _describe(errors: list[dict], data: Any, file: str, lines: dict, overridden: list[tuple]) -> ConfigError:
    enriched = [(_clean_loc(e["loc"], data), e) for e in errors]
    # The deepest location is the most specific; among equals, prefer non-type errors.
    enriched.sort(key=lambda le: (-len(le[0]), le[1]["type"] in _TYPE_WORDS))
    loc, err = enriched[0]
    same = [e for lc, e in enriched if lc == loc]

    if err["type"] == "extra_forbidden":
        model = _model_at(loc[:-1], data)
        allowed = [f for f in model.model_fields] if isinstance(model, type) else []
        msg = f"unknown key '{loc[-1]}'; {_did_you_mean(str(loc[-1]), allowed)}"
        msg += f"allowed: {', '.join(allowed)}" if allowed else "remove it"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "union_tag_invalid":
        msg = err["msg"].replace("Input tag", "type")
    elif len(same) > 1 and all(e["type"] in _TYPE_WORDS for e in same):
        wants = []
        for e in same:
            word = _TYPE_WORDS[e["type"]] or e["msg"].removeprefix("Input should be ")
            if word not in wants:
                wants.append(word)
        msg = f"got {_show(err.get('input'))}; expected {' or '.join(wants)}"
    else:
        text = err["msg"].removeprefix("Value error, ")
        msg = f"{text} (got {_show(err.get('input'))})" if "got" not in text and err["type"] != "value_error" \
            else text
    more = len({lc for lc, _ in enriched}) - 1
    if more > 0:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return _error_at(loc, msg, file, lines, overridden)


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = repr(value)
        return text if len(text) < 60 else text[:57] + "..."
    return repr(value)


def _error_at(loc: tuple, msg: str, file: str, lines: dict, overridden: list[tuple]) -> ConfigError:
    for opath in overridden:
        if loc[: len(opath)] == opath or opath[: len(loc)] == loc:
            return ConfigError(msg + f" (set by --set {_dotted(opath)}=...)", file=file, path=_dotted(loc))
    line = None
    for i in range(len(loc), -1, -1):
        if loc[:i] in lines:
            line = lines[loc[:i]]
            break
    return ConfigError(msg, file=file, path=_dotted(loc) or None, line=line)


# ------------------------------------------------------------------------- Keras names

def _check_names(cfg: Config, raise_at) -> None:
    cat = catalog.load_matching()
    if cat is None:  # another Keras version: model building checks every name against Keras itself
        return
    layers = cat["layers"]
    specs = [(("model", "layers", i), spec) for i, spec in enumerate(cfg.model.layers)]
    if isinstance(cfg.model.output, LayerSpec):
        specs.append((("model", "output"), cfg.model.output))
    for loc, spec in specs:
        check_layer(spec.type, spec.kwargs(), loc, raise_at, layers)
    init = cfg.model.kernel_initializer
    if init is not None:
        _check_registry(init, ("model", "kernel_initializer"), cat["initializers"],
                        "initializer", "keras.initializers", raise_at, key="type")
    t = cfg.training
    if t.loss != "auto":
        _check_registry(t.loss, ("training", "loss"), cat["losses"], "loss", "keras.losses", raise_at)
    _check_registry(t.optimizer, ("training", "optimizer"), cat["optimizers"], "optimizer",
                    "keras.optimizers", raise_at)
    if t.metrics != "auto":
        for i, m in enumerate(t.metrics):
            _check_registry(m, ("training", "metrics", i), cat["metrics"], "metric", "keras.metrics", raise_at)
    src = cfg.data.source
    if src is not None and not isinstance(src, str):
        allowed = cat["generators"][src.generator]
        for key in src.kwargs():
            if key not in allowed:
                raise_at(("data", "source", key), f"{src.generator} has no argument '{key}'; "
                         f"{_did_you_mean(key, allowed)}allowed: {', '.join(allowed)}")


def check_layer(type_name: str, kwargs: dict, loc: tuple, raise_at, layers: dict) -> None:
    if type_name not in layers:
        raise_at(loc + ("type",), f"Keras has no layer '{type_name}'; {_did_you_mean(type_name, layers)}"
                 "any class of keras.layers is allowed (Dense, Dropout, Conv2D, LSTM, ...)")
    info = layers[type_name]
    for key in kwargs:
        if key in ("input_shape", "input_dim", "batch_input_shape"):
            raise_at(loc + (key,), "nettrain builds the model inputs from the data; remove this argument")
        if not info["kwargs"] and key not in info["params"]:
            raise_at(loc + (key,), f"{type_name} has no argument '{key}'; "
                     f"{_did_you_mean(key, info['params'])}allowed: {', '.join(info['params'])}")
    for key in info["required"]:
        if key not in kwargs:
            raise_at(loc, f"{type_name} needs the argument '{key}'")


def _check_registry(value, loc, registry: dict, what: str, module: str, raise_at, key: str = "name") -> None:
    by_norm = {catalog.normalize(n): n for n in registry}
    name = value.get(key) if isinstance(value, dict) else value
    where = loc + (key,) if isinstance(value, dict) else loc
    if not isinstance(name, str):
        raise_at(where, f"{what} name must be a string, got {name!r}")
    found = by_norm.get(catalog.normalize(name))
    if found is None:
        raise_at(where, f"Keras has no {what} '{name}'; {_did_you_mean(name, registry)}"
                 f"any name from {module} is allowed")
    if isinstance(value, dict):
        params = registry[found]
        if params is None:
            # a function: only the class form takes arguments
            cls = next((n for n in registry if registry[n] is not None
                        and catalog.normalize(n) == catalog.normalize(name)), None)
            params = registry.get(cls) if cls else None
        args = [k for k in value if k != key]
        if params is None and args:
            raise_at(where, f"{what} '{name}' takes no arguments")
        for arg in args:
            if params is not None and arg not in params:
                raise_at(loc + (arg,), f"{what} '{name}' has no argument '{arg}'; "
                         f"{_did_you_mean(arg, params)}allowed: {', '.join(p for p in params if p != 'name')}")


# --------------------------------------------------------------------------------- entry

def load_config(path: str | os.PathLike | None, overrides: Iterable[str] = (), *,
                data: dict | None = None, check_names: bool = True) -> Config:
    """Read, override, resolve paths and validate a config.

    `path` is the YAML file; `data` may stand in for its parsed content (then `path` only names
    it in messages and anchors relative paths).
    """
    file = str(path) if path is not None else "<config>"
    lines: dict[tuple, int] = {}
    if data is None:
        p = Path(file)
        if not p.is_file():
            raise UsageError(f"config file not found: {file}" if not p.exists() else f"not a file: {file}")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read config {file}: {e}") from None
        data, lines = _read_yaml(text, file)
    if data is None:
        raise ConfigError("the config is empty; the smallest config is  data: {source: FILE, target: COLUMN}",
                          file=file)
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of sections (data, model, training, ...), "
                          f"got {type(data).__name__}", file=file, line=1)
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"keys must be strings, got {bad[0]!r}", file=file, line=lines.get((bad[0],)))

    base = Path(file).resolve().parent if path is not None else Path.cwd()
    _resolve_paths(data, base)
    overridden: list[tuple] = []
    for text in overrides:
        opath, value = parse_override(text)
        apply_override(data, opath, value)
        overridden.append(opath)
        if opath in PATH_KEYS:
            _resolve_paths(data, Path.cwd(), only=[opath])
    if data.get("name") is None and path is not None:
        data["name"] = "".join(c if c.isalnum() or c in "._-" else "-" for c in Path(file).stem) or "run"

    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise _describe(e.errors(), data, file, lines, overridden) from None

    def raise_at(loc: tuple, msg: str):
        raise _error_at(loc, msg, file, lines, overridden)

    if not os.path.isabs(cfg.output.dir):  # the default: runs/ under the current directory
        cfg.output.dir = os.path.abspath(cfg.output.dir)
    if check_names:
        _check_names(cfg, raise_at)
    cfg._file = file
    cfg._lines = {_dotted(k): v for k, v in lines.items()}
    cfg._overridden = [_dotted(o) for o in overridden]
    return cfg
