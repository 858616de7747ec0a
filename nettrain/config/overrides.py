"""`--set KEY=VALUE`: parsed (`parse_override`) and applied to a config's plain data (`apply_override`).

The value is YAML and gets the protections of a config file; its errors name the --set argument.
No TensorFlow here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from nettrain.config.args import show
from nettrain.config.problems import models_in, set_arg
from nettrain.config.schema import Config
from nettrain.config.yamlread import INT_KEYS, MAX_DEPTH, dotted, read_yaml
from nettrain.errors import ConfigError, UsageError
from nettrain.words import clip

# Keys that take a name or a mapping: `--set training.optimizer.learning_rate=0.1` on
# `optimizer: adam` turns it into `{name: adam, learning_rate: 0.1}` (kernel_initializer: `type`).
NAME_OR_MAPPING = {("training", "optimizer"): "name", ("training", "loss"): "name",
                   ("model", "kernel_initializer"): "type"}


def parse_override(text: str) -> tuple[tuple, Any]:
    """`model.layers.0.units=32` -> (("model", "layers", 0, "units"), 32); VALUE is YAML.

    The value gets the protections of a config file (size, aliases, nesting, tags, keys); its
    errors name the --set argument.
    """
    if not isinstance(text, str) or "=" not in text:
        raise UsageError(f"--set expects KEY=VALUE (e.g. training.epochs=5), got {show(text)}")
    key, _, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not key or any(not part for part in parts):
        raise UsageError(f"--set {show(text)}: empty key path")
    if len(parts) > MAX_DEPTH:
        raise UsageError(f"--set {show(text)}: the key path has {len(parts)} parts; at most {MAX_DEPTH}")
    if not key.isprintable():
        raise UsageError(f"--set {show(text)}: the key path contains control characters")
    for p in parts:
        if p.isascii() and p.isdigit() and len(p) > 9:
            raise UsageError(f"--set {show(text)}: list index {clip(p, 20)} is far too large")
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


def apply_override(data: dict, path: tuple, value: Any) -> None:
    """Set `value` at key path `path` of `data`, making the sections and list items on the way."""
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


def _default_at(path: tuple) -> Any:
    """The schema's default at a key path of sections (None where the path leaves them)."""
    cls: Any = Config
    for part in path[:-1]:
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        models = models_in(field.annotation) if field is not None else []
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
