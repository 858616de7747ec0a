"""The nettrain metadata inside an .h5 file (and a run's features.json / config.yaml): its shape, checked once.

A damaged or hand-edited attribute is a UsageError naming the file and what is wrong, so no later
code meets a KeyError or TypeError. No TensorFlow here.
"""

from __future__ import annotations

import math
from typing import Any

from nettrain.errors import UsageError
from nettrain.words import clip

# The model input that takes every numeric column (one float vector per row); each categorical or
# text column is an input of its own, named after the column.
NUMERIC_INPUT = "numeric"

# A model input is named by its column, but Keras refuses "/" in a name: a column "km/h" is the input
# "km∕h" (U+2215, division slash), and the feeds map the input back to its column.
_SLASH, _INPUT_SLASH = "/", "\u2215"


def input_name(column: str) -> str:
    """The name of the model input of a categorical or text column."""
    return column.replace(_SLASH, _INPUT_SLASH)


def column_of_input(name: str) -> str:
    """The column a model input named `name` (`input_name`) takes."""
    return name.replace(_INPUT_SLASH, _SLASH)


# The one model input of an image folder's model: (height, width, channels) pixels 0..255 (data.images)
IMAGE_INPUT = "image"

TASKS = ("regression", "binary", "multiclass")
KINDS = ("numeric", "categorical", "text")
COLUMN_KEYS = {"name": str, "kind": str, "max_tokens": int, "output_mode": str, "sequence_length": int,
               "embedding_dim": int}
CONFIG_SECTIONS = ("preprocessing", "model", "training", "callbacks", "runtime", "output")


class _Bad(Exception):
    pass


def _kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _show(value: Any) -> str:
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
    return clip(text, 60)


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise _Bad(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_meta(meta: Any, where: str) -> dict[str, Any]:
    """The metadata `{features, config, epoch, run}` if it has the shape the code relies on.

    `where` starts the message ("FILE: damaged nettrain metadata ..."). An empty mapping, or
    one without `features` and `config`, means "no metadata" (a foreign Keras file); when
    either is present both must be, and valid.
    """
    try:
        _need(isinstance(meta, dict), f"{_kind(meta)} where a mapping with features, config, epoch and run "
              "is expected")
        epoch, run = meta.get("epoch"), meta.get("run")
        _need(epoch is None or (_is_int(epoch) and epoch >= 0),
              f"'epoch' is {_show(epoch)}; expected a whole number >= 0 or null")
        _need(run is None or isinstance(run, str), f"'run' is {_kind(run)}; expected a string or null")
        if "features" not in meta and "config" not in meta:
            return dict(meta)
        _need("features" in meta, "'features' is missing (it has 'config')")
        _need("config" in meta, "'config' is missing (it has 'features')")
        return {**meta, "features": _check_features(meta["features"], "features"),
                "config": _check_config(meta["config"], "config")}
    except _Bad as e:
        raise UsageError(f"{where}: {e}") from None


def check_features(features: Any, where: str) -> dict[str, Any]:
    """The feature schema (features.json, or `features` of the metadata) if well formed; `where` names it."""
    try:
        return _check_features(features, "features")
    except _Bad as e:
        raise UsageError(f"{where}: {e}") from None


def check_config(config: Any, where: str) -> dict[str, Any]:
    """A run's resolved config (config.yaml, or `config` of the metadata) if it is a mapping of sections."""
    try:
        return _check_config(config, "config")
    except _Bad as e:
        raise UsageError(f"{where}: {e}") from None


def _check_features(f: Any, key: str) -> dict[str, Any]:
    _need(isinstance(f, dict), f"'{key}' is {_kind(f)}; expected a mapping (the feature schema)")
    task = f.get("task")
    _need(task in TASKS, f"'{key}.task' is {_show(task)}; allowed: {', '.join(TASKS)}")
    _need("target" in f, f"'{key}.target' is missing")
    _need(f["target"] is None or isinstance(f["target"], str), f"'{key}.target' is {_kind(f['target'])}; "
          "expected a column name")
    columns = f.get("columns")
    _need(isinstance(columns, list) and (len(columns) > 0 or f.get("inputs") == [IMAGE_INPUT]),  # images: none
          f"'{key}.columns' is {_kind(columns) if not isinstance(columns, list) else 'an empty list'}; "
          "expected a list of {name, kind} mappings")
    names = set()
    for i, col in enumerate(columns):
        at = f"{key}.columns.{i}"
        _need(isinstance(col, dict), f"'{at}' is {_kind(col)}; expected a mapping with name and kind")
        extra = [k for k in col if k not in COLUMN_KEYS]
        _need(not extra, f"'{at}' has unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(_show, extra))}; "
              f"allowed: {', '.join(COLUMN_KEYS)}")
        _need(isinstance(col.get("name"), str) and col["name"] != "",
              f"'{at}.name' is {_show(col.get('name'))}; expected a column name")
        _need(col["name"] not in names, f"'{at}.name' {_show(col['name'])} is listed twice")
        names.add(col["name"])
        _need(col.get("kind") in KINDS, f"'{at}.kind' is {_show(col.get('kind'))}; allowed: {', '.join(KINDS)}")
        for k, typ in COLUMN_KEYS.items():
            v = col.get(k)
            if k in ("name", "kind") or v is None:
                continue
            ok = (_is_int(v) and v >= 0) if typ is int else isinstance(v, typ)
            _need(ok, f"'{at}.{k}' is {_show(v)}; expected {'a whole number' if typ is int else 'a string'} or null")
    classes = f.get("class_names")
    if task == "regression":
        _need(classes is None or isinstance(classes, list), f"'{key}.class_names' is {_kind(classes)}")
    else:
        _need(isinstance(classes, list) and all(isinstance(c, str) for c in classes),
              f"'{key}.class_names' is {_show(classes)}; a {task} model needs its class names, a list of strings")
        _need(len(set(classes)) == len(classes), f"'{key}.class_names' lists a class twice")
        _need(len(classes) == 2 if task == "binary" else len(classes) >= 2,
              f"'{key}.class_names' has {len(classes)} class{'es' if len(classes) != 1 else ''}; a {task} model has "
              f"{'2' if task == 'binary' else 'at least 2'}")
    imputation = f.get("imputation")
    _need(imputation is None or (isinstance(imputation, dict) and all(
        v is None or isinstance(v, (str, int, float)) for v in imputation.values())),
        f"'{key}.imputation' is {_kind(imputation)}; expected a mapping column -> fill value")
    _need(f.get("id_column") is None or isinstance(f["id_column"], str),
          f"'{key}.id_column' is {_kind(f.get('id_column'))}; expected a column name or null")
    mode = f.get("label_mode")
    if task == "regression":
        _need(mode in (None, "regression"), f"'{key}.label_mode' is {_show(mode)} but the task is regression")
    else:
        allowed = ("binary", "sparse", "one_hot") if task == "binary" else ("sparse", "one_hot")
        _need(mode in allowed, f"'{key}.label_mode' is {_show(mode)}; a {task} model has one of "
              f"{', '.join(allowed)}")
    threshold = f.get("threshold")
    _need(threshold is None or (isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
                                and math.isfinite(threshold)),
          f"'{key}.threshold' is {_show(threshold)}; expected a number")
    inputs = f.get("inputs")
    _need(inputs is None or (isinstance(inputs, list) and all(isinstance(n, str) for n in inputs)),
          f"'{key}.inputs' is {_show(inputs)}; expected a list of input names")
    return {**f, "imputation": imputation or {}}


def _check_config(c: Any, key: str) -> dict[str, Any]:
    _need(isinstance(c, dict), f"'{key}' is {_kind(c)}; expected a mapping (the run's resolved config)")
    _need(isinstance(c.get("data"), dict), f"'{key}.data' is {_kind(c.get('data'))}; expected a mapping")
    for section in CONFIG_SECTIONS:
        if section in c:
            _need(isinstance(c[section], dict), f"'{key}.{section}' is {_kind(c[section])}; expected a mapping")
    return c
