"""`load_config(path, overrides)`: YAML file + `--set` overrides -> a validated `Config`.

Every mistake becomes one `ConfigError` naming the file, the dotted key path, the YAML line
and what is allowed. No TensorFlow here. Reading the YAML itself, hostile documents included,
is `yamlread.py`'s job.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from nettrain.config import catalog, coherence
from nettrain.config.args import MAX_NAME, Arg, ArgError, show
from nettrain.config.schema import Config, ConfigSource, LayerSpec
from nettrain.words import masked_uri
from nettrain.config.template import check_template, possible_log_names
from nettrain.config.yamlread import INT_KEYS, MAX_DEPTH, clip, dotted, quote, read_file, read_yaml
from nettrain.errors import ConfigError, UsageError
from nettrain.words import did_you_mean

# Keys whose string values are paths (relative to the config file, or to the current
# directory when given with --set). data.source is a path unless it names a bundled set.
PATH_KEYS = (("data", "source"), ("data", "train"), ("data", "validation"), ("data", "test"), ("output", "dir"))
BUNDLED_PREFIXES = ("sklearn:", "keras:")


# ----------------------------------------------------------------------------- overrides

def parse_override(text: str) -> tuple[tuple, Any]:
    """`model.layers.0.units=32` -> (("model", "layers", 0, "units"), 32); VALUE is YAML.

    The value gets the protections of a config file (size, aliases, nesting, tags, keys); its
    errors name the --set argument.
    """
    if not isinstance(text, str) or "=" not in text:
        raise UsageError(f"--set expects KEY=VALUE (e.g. training.epochs=5), got {_show(text)}")
    key, _, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or any(not part for part in parts):
        raise UsageError(f"--set {_show(text)}: empty key path")
    if len(parts) > MAX_DEPTH:
        raise UsageError(f"--set {_show(text)}: the key path has {len(parts)} parts; at most {MAX_DEPTH}")
    if not key.isprintable():
        raise UsageError(f"--set {_show(text)}: the key path contains control characters")
    for p in parts:
        if p.isascii() and p.isdigit() and len(p) > 9:
            raise UsageError(f"--set {_show(text)}: list index {clip(p, 20)} is far too large")
    path = tuple(int(p) if p.isascii() and p.isdigit() else p for p in parts)
    value = None
    if raw.strip():
        try:
            value, _ = read_yaml(raw, set_arg(text), path, with_lines=False)
        except ConfigError as e:
            if not e.detail.startswith("malformed YAML"):
                raise
            raise ConfigError(e.detail + " (VALUE is YAML: quote a string with { } [ ] : or # in it)",
                              file=e.file, path=e.path) from None
    return path, value


def set_arg(text: str) -> str:
    """How a --set argument is named in messages (cut short, control characters escaped, a URI's
    password masked)."""
    shown = masked_uri(text if text.isprintable() else repr(text)[1:-1])
    return "--set " + clip(shown, 80)


# Keys that take a name or a mapping: `--set training.optimizer.learning_rate=0.1` on
# `optimizer: adam` turns it into `{name: adam, learning_rate: 0.1}` (kernel_initializer: `type`).
NAME_OR_MAPPING = {("training", "optimizer"): "name", ("training", "loss"): "name",
                   ("model", "kernel_initializer"): "type"}


def _default_at(path: tuple) -> Any:
    """The schema's default at a key path of sections (None where the path leaves them)."""
    cls: Any = Config
    for part in path[:-1]:
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        models = _models_in(field.annotation) if field is not None else []
        if not models:
            return None
        cls = models[0]
    field = cls.model_fields.get(path[-1]) if isinstance(path[-1], str) else None
    if field is None:
        return None
    value = field.get_default(call_default_factory=True)
    if isinstance(value, list):  # model.layers: plain data, as a file would give it
        return [v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v for v in value]
    return value


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
                raise UsageError(f"--set {dotted(path)}: {dotted(path[:depth])} has {len(node)} items, "
                                 f"no index {part}")
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise UsageError(f"--set {dotted(path)}: {dotted(path[:depth]) or 'the config'} is not a mapping")
        if node.get(part) is None:
            default = _default_at(here) if isinstance(nxt, int) else None  # `--set model.layers.0.units=8`
            node[part] = default if isinstance(default, list) else [] if isinstance(nxt, int) and \
                here not in INT_KEYS else {}
        node = node[part]
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last > len(node):
            raise UsageError(f"--set {dotted(path)}: the list has {len(node)} items, no index {last}")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise UsageError(f"--set {dotted(path)}: {dotted(path[:-1])} is not a mapping")


def _check_coherence(cfg: Config, raise_at) -> None:
    """Labels, loss and metrics that cannot fit, as far as the config alone tells (the data tells the rest)."""
    mode = coherence.mode_from_config(cfg)
    if mode is None:
        return
    problem = coherence.loss_problem(cfg.training.loss, mode)
    if problem:
        raise_at(("training", "loss"), problem)
    found = coherence.metrics_problem(cfg, mode)
    if found:
        raise_at(*found)


# ---------------------------------------------------------------------- Keras 2 names

def _keras2_names(data: dict, file: str) -> None:
    """Arguments Keras 2 tutorials use and Keras 3 renamed or dropped, read as Keras 3 does, with a note."""
    import warnings

    training = data.get("training")
    opt = training.get("optimizer") if isinstance(training, dict) else None
    if isinstance(opt, dict) and "lr" in opt:
        if "learning_rate" in opt:
            raise ConfigError("give learning_rate or lr (its Keras 2 name), not both", file=file,
                              path="training.optimizer.lr")
        opt["learning_rate"] = opt.pop("lr")
        warnings.warn(f"{file}: training.optimizer.lr is Keras 2's name; read as learning_rate")
    model = data.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    for i, layer in enumerate(layers if isinstance(layers, list) else []):
        if isinstance(layer, dict) and layer.get("type") == "Embedding" and "input_length" in layer:
            layer.pop("input_length")
            warnings.warn(f"{file}: model.layers.{i}.input_length is gone in Keras 3 and was left out; the sequence "
                          "length is data.columns.<text column>.sequence_length")


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

def _loc_of(err: dict, data: Any) -> tuple:
    """The key path of a pydantic error; an ArgError (schema.py) adds the argument's own path."""
    loc = _clean_loc(err["loc"], data)
    exc = (err.get("ctx") or {}).get("error")
    return loc + exc.key if isinstance(exc, ArgError) else loc


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
        elif isinstance(node, dict) and isinstance(part, str) and part and part not in node and "[" not in part \
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


_TYPE_WORDS = {
    "string_type": "a string", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "int_type": "an integer", "int_parsing": "an integer",
    "int_from_float": "an integer", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "a list",
    "literal_error": None, "none_required": "null",
}


_BOUNDS = ("greater_than_equal", "greater_than", "less_than_equal", "less_than", "int_parsing_size")


def _bounds(loc: tuple, data: Any) -> str | None:
    """'an integer in [1, 2147483647]' for the schema field at `loc`, from its ge/gt/le/lt."""
    if not loc:
        return None
    model = _model_at(loc[:-1], data)
    field = model.model_fields.get(loc[-1]) if isinstance(model, type) and isinstance(loc[-1], str) else None
    if field is None:
        return None
    lo = hi = None
    gt = lt = False
    for m in field.metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, gt = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
        if getattr(m, "lt", None) is not None:
            hi, lt = m.lt, True
    ints = field.annotation is int or int in typing.get_args(field.annotation)
    return Arg("int" if ints else "number", lo, hi, gt=gt, lt=lt).expected()


def _describe(errors: list[dict], data: Any, file: str, lines: dict, overridden: list,
              from_file: bool = True) -> ConfigError:
    enriched = [(_loc_of(e, data), e) for e in errors]
    # The deepest location is the most specific; among equals, prefer non-type errors.
    enriched.sort(key=lambda le: (-len(le[0]), le[1]["type"] in _TYPE_WORDS))
    loc, err = enriched[0]
    same = [e for lc, e in enriched if lc == loc]

    if err["type"] == "extra_forbidden":
        model = _model_at(loc[:-1], data)
        allowed = [f for f in model.model_fields] if isinstance(model, type) else []
        msg = f"unknown key {quote(loc[-1])}; {did_you_mean(str(loc[-1]), allowed)}"
        msg += f"allowed: {', '.join(allowed)}" if allowed else "remove it"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "finite_number":
        msg = f"got {_show(err.get('input'))}; expected a finite number (NaN and infinity are not allowed)"
    elif err["type"] == "union_tag_invalid":
        msg = err["msg"].replace("Input tag", "type")
    elif len(same) > 1 and all(e["type"] in _TYPE_WORDS for e in same):
        wants = []
        for e in same:
            word = _TYPE_WORDS[e["type"]] or e["msg"].removeprefix("Input should be ")
            if word not in wants:
                wants.append(word)
        msg = f"got {_show(err.get('input'))}; expected {' or '.join(wants)}"
    elif _TYPE_WORDS.get(err["type"]):
        msg = f"got {_show(err.get('input'))}; expected {_TYPE_WORDS[err['type']]}"
    elif err["type"] in _BOUNDS and _bounds(loc, data):
        msg = f"got {_show(err.get('input'))}; expected {_bounds(loc, data)}"
    else:
        text = err["msg"].removeprefix("Value error, ")
        msg = f"{text} (got {_show(err.get('input'))})" if "got" not in text and err["type"] != "value_error" \
            else text
    more = len({lc for lc, _ in enriched}) - 1
    if more > 0:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return _error_at(loc, msg, file, lines, overridden, from_file)


def _show(value: Any) -> str:
    return show(value, 60)


def _error_at(loc: tuple, msg: str, file: str, lines: dict, overridden: list[tuple[tuple, str]],
              from_file: bool = True) -> ConfigError:
    """The ConfigError for key path `loc`: a --set argument when one set it, else the file and line.

    Without a config file (`from_file` False: retrain, or data passed in) an overridden key's
    error names the --set argument in place of the file: `--set training.epochs=abc: got 'abc'; ...`.
    """
    best = None
    for i, (opath, text) in enumerate(overridden):
        if loc[: len(opath)] == opath or opath[: len(loc)] == loc:
            score = (min(len(opath), len(loc)), i)  # the most specific --set, then the last one
            if best is None or score >= best[0]:
                best = (score, opath, text)
    if best is not None:
        _, opath, text = best
        if from_file:
            return ConfigError(msg + f" (set by {set_arg(text)})", file=file, path=dotted(loc) or None)
        err = ConfigError(msg, file=set_arg(text), path=None if loc == opath else dotted(loc))
        err.path = dotted(loc) or None
        return err
    line = None
    for i in range(len(loc), -1, -1):
        if loc[:i] in lines:
            line = lines[loc[:i]]
            break
    return ConfigError(msg, file=file, path=dotted(loc) or None, line=line)


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
                raise_at(("data", "source", key), f"{src.generator} has no argument {quote(key)}; "
                         f"{did_you_mean(key, allowed)}allowed: {', '.join(allowed)}")


def check_layer(type_name: str, kwargs: dict, loc: tuple, raise_at, layers: dict) -> None:
    if type_name not in layers:
        raise_at(loc + ("type",), f"Keras has no layer {quote(type_name)}; {did_you_mean(type_name, layers)}"
                 "any class of keras.layers is allowed (Dense, Dropout, Conv2D, LSTM, ...)")
    info = layers[type_name]
    for key in kwargs:
        if key in ("input_shape", "input_dim", "batch_input_shape") and key not in info["params"]:
            raise_at(loc + (key,), "nettrain builds the model inputs from the data; remove this argument")
        if not info["kwargs"] and key not in info["params"]:
            raise_at(loc + (key,), f"{clip(type_name)} has no argument {quote(key)}; "
                     f"{did_you_mean(key, info['params'])}allowed: {', '.join(info['params'])}")
    for key in info["required"]:
        if key not in kwargs and not (type_name == "Embedding" and key == "input_dim" and loc[-1:] == (0,)):
            raise_at(loc, f"{type_name} needs the argument '{key}'")  # a first Embedding's input_dim is filled in


def _check_registry(value, loc, registry: dict, what: str, module: str, raise_at, key: str = "name") -> None:
    by_norm = {catalog.normalize(n): n for n in registry}
    name = value.get(key) if isinstance(value, dict) else value
    where = loc + (key,) if isinstance(value, dict) else loc
    if not isinstance(name, str):
        raise_at(where, f"{what} name must be a string, got {_show(name)}")
    found = by_norm.get(catalog.normalize(name))
    if found is None:
        raise_at(where, f"Keras has no {what} {quote(name)}; {did_you_mean(name, registry)}"
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
            raise_at(where, f"{what} {quote(name)} takes no arguments")
        for arg in args:
            if params is not None and arg not in params:
                raise_at(loc + (arg,), f"{what} {quote(name)} has no argument {quote(arg)}; "
                         f"{did_you_mean(arg, params)}allowed: {', '.join(p for p in params if p != 'name')}")


# --------------------------------------------------------------------------------- entry

def load_config(path: str | os.PathLike | None, overrides: Iterable[str] = (), *,
                data: dict | None = None, check_names: bool = True,
                origin: str | os.PathLike | None = None) -> Config:
    """Read, override, resolve paths and validate a config.

    `path` is the YAML file; `data` may stand in for its parsed content (then `path` only names
    it in messages and anchors relative paths). Without `path`, `origin` names where `data` came
    from (retrain: the model file whose saved config it is) in messages and in `cfg.source.file`;
    it is never read and anchors nothing, and errors of --set keys still name the --set argument.
    Every mistake raises a ConfigError (or a UsageError for a missing file or a malformed --set):
    never another exception. Where the config came from is `cfg.source` (a ConfigSource).
    """
    file = str(path) if path is not None else str(origin) if origin is not None else "<config>"
    lines: dict[tuple, int] = {}
    if data is None:
        data, lines = read_file(file)
    if data is None:
        raise ConfigError("the config is empty; the smallest config is  data: {source: FILE, target: COLUMN}",
                          file=file)
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of sections (data, model, training, ...), "
                          f"got {type(data).__name__}", file=file, line=1)
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"keys must be strings, got {_show(bad[0])}", file=file, line=lines.get((bad[0],)))

    base = Path(file).resolve().parent if path is not None else Path.cwd()
    _resolve_paths(data, base)
    overridden: list[tuple[tuple, str]] = []
    for text in overrides:
        opath, value = parse_override(text)
        apply_override(data, opath, value)
        overridden.append((opath, text))
        if opath in PATH_KEYS:
            _resolve_paths(data, Path.cwd(), only=[opath])
    _keras2_names(data, file)
    if data.get("name") is None and path is not None:
        stem = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in Path(file).stem)
        data["name"] = stem.lstrip("._-")[:MAX_NAME] or "run"
    from_file = path is not None

    def raise_at(loc: tuple, msg: str):
        raise _error_at(loc, msg, file, lines, overridden, from_file)

    source = ConfigSource(file=file, lines={dotted(k): v for k, v in lines.items()},
                          overrides=tuple(dotted(o) for o, _ in overridden))
    try:
        try:
            cfg = Config.model_validate(data, context={"source": source})
        except ValidationError as e:
            raise _describe(e.errors(), data, file, lines, overridden, from_file) from None
        if not os.path.isabs(cfg.output.dir):  # the default: runs/ under the current directory
            cfg.output.dir = os.path.abspath(cfg.output.dir)
        if check_names:
            _check_names(cfg, raise_at)
            try:  # the fields against what the run can log (the syntax was checked by the schema)
                check_template(cfg.callbacks.checkpoint.filename, {"epoch"} | possible_log_names(cfg))
            except ValueError as e:
                raise_at(("callbacks", "checkpoint", "filename"), str(e))
            _check_coherence(cfg, raise_at)
    except RecursionError:
        raise ConfigError(f"nested too deeply to validate (at most {MAX_DEPTH} levels)", file=file) from None
    return cfg
