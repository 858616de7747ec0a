"""`load_config(path, overrides)`: YAML file + `--set` overrides -> a validated `Config`.

Every mistake becomes one `ConfigError` naming the file, the dotted key path, the YAML line
and what is allowed. No TensorFlow here.

Hostile input is refused cheaply and before it can expand: files over 1 MiB, characters YAML
refuses, nesting deeper than 50 levels (checked while scanning and composing, before PyYAML's
recursion), more than 100 aliases or aliases that add more than 10,000 nodes (billion laughs,
counted per node so it is linear), recursive aliases, tags other than plain data, and keys that
are not strings (integer class labels under training.class_weight excepted). `--set` values get
the same treatment.
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
from nettrain.config.schema import Arg, ArgError, Config, LayerSpec, MAX_NAME, show
from nettrain.config.template import check_template, possible_log_names
from nettrain.errors import ConfigError, UsageError

# Keys whose string values are paths (relative to the config file, or to the current
# directory when given with --set). data.source is a path unless it names a bundled set.
PATH_KEYS = (("data", "source"), ("data", "train"), ("data", "validation"), ("data", "test"), ("output", "dir"))
BUNDLED_PREFIXES = ("sklearn:", "keras:")


# --------------------------------------------------------------------------------- YAML
# Limits that keep hostile documents (billion laughs, deep nesting, huge files) cheap to refuse.
MAX_BYTES = 1 << 20          # a config file (or one --set value)
MAX_DEPTH = 50               # nested mappings/lists, aliases expanded
MAX_ALIASES = 100            # alias uses (*name) in one document
MAX_ALIAS_NODES = 10_000     # nodes aliases may add once expanded

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP, _MERGE, _TIMESTAMP = (_TAG + t for t in ("seq", "map", "merge", "timestamp"))
_SCALAR_TAGS = {_STR: "a string", _INT: "an integer", _FLOAT: "a number", _BOOL: "a boolean", _NULL: "null"}
# Mappings whose keys may be integers as well as strings (class labels).
INT_KEYS = {("training", "class_weight")}


class _Refused(Exception):
    """Raised inside the composer; becomes a ConfigError with the file and line."""

    def __init__(self, message: str, mark=None):
        super().__init__(message)
        self.message, self.mark = message, mark


class _Loader(yaml.SafeLoader):
    """Safe loader that bounds nesting and alias use while composing (before anything expands)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.depth = 0
        self.aliases = 0
        self.nodes = 0
        self.open_anchors: set[str] = set()

    def fetch_flow_collection_start(self, TokenClass):
        # the scanner looks ahead over every open '[' / '{': stop at the limit, not 1 MiB later
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels; a config needs only a few", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def add_indent(self, column):
        if len(self.indents) >= MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels; a config needs only a few", self.get_mark())
        return super().add_indent(column)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} YAML aliases (*name); write the values out",
                               event.start_mark)
            if event.anchor in self.open_anchors:
                raise _Refused(f"recursive YAML alias: *{_clip(event.anchor)} is used inside "
                               f"&{_clip(event.anchor)} itself; configs hold plain trees", event.start_mark)
            return super().compose_node(parent, index)
        self.nodes += 1
        collection = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if collection:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels; a config needs only a few",
                               event.start_mark)
        anchor = event.anchor
        added = anchor is not None and anchor not in self.open_anchors
        if added:
            self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            if collection:
                self.depth -= 1
            if added:
                self.open_anchors.discard(anchor)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _read_yaml(text: str, file: str, prefix: tuple = (), *, with_lines: bool = True) -> tuple[Any, dict[tuple, int]]:
    """Parse one YAML document of plain data, refusing anything hostile with a ConfigError.

    `prefix` is the key path the document sits at (a --set value); `with_lines` False leaves
    line numbers out of messages (a --set value is one line of the command).
    """
    def fail(msg: str, line: int | None = None, path: tuple | None = None):
        return ConfigError(msg, file=file, path=_dotted(path) if path else None,
                           line=line if with_lines else None)

    if len(text) > MAX_BYTES:
        raise fail(f"{len(text):,} characters; a config may hold at most {MAX_BYTES:,}")
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad:
        char = bad.group()
        name = "a NUL character" if char == "\0" else "a control character" if ord(char) < 0x20 or \
            ord(char) == 0x7f else "a character"
        line = _line_of(text, bad.start())
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise fail(f"{name} (U+{ord(char):04X}) at column {column} is not allowed in YAML; remove it"
                   + ("" if with_lines else f" (line {line})"), line)
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        lines: dict[tuple, int] = {}
        if node is None:
            return None, lines
        if loader.aliases:
            _check_expansion(node, loader.nodes)
        _walk(loader, node, prefix, (), lines, fail)
        data = loader.construct_document(node)
        if loader.aliases:
            data = _unshare(data)  # an alias must not make one --set change two places
        return data, lines
    except ConfigError:
        raise
    except _Refused as e:
        raise fail(e.message, e.mark.line + 1 if e.mark else None) from None
    except yaml.constructor.ConstructorError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        if e.problem and "constructor for the tag" in e.problem:
            raise fail(f"YAML tag not allowed ({e.problem}): configs hold plain data only (mappings, lists, "
                       "strings, numbers, booleans)", line) from None
        raise fail(f"malformed YAML: {_one_line(e.problem or e.context or e)}", line) from None
    except yaml.composer.ComposerError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        if e.context and "single document" in e.context:
            raise fail(f"one YAML document per file expected ({_one_line(e.problem)})", line) from None
        if e.context and e.context_mark and e.problem:  # duplicate anchor: first and second occurrence
            raise fail(f"malformed YAML: {_one_line(e.context)} at line {e.context_mark.line + 1}, "
                       f"{_one_line(e.problem)} at line {line}", line) from None
        raise fail(f"malformed YAML: {_one_line(e.problem or e.context)}", line) from None
    except yaml.reader.ReaderError as e:
        raise fail(f"unreadable YAML: {_one_line(e.reason)} (character #x{e.character:04x})"
                   if isinstance(e.character, int) else f"unreadable YAML: {_one_line(e.reason)}",
                   _line_of(text, e.position) if isinstance(e.position, int) else None) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        msg = f"malformed YAML: {_one_line(problem)}" + (f" ({_one_line(context)})" if context else "")
        raise fail(msg, mark.line + 1 if mark else None) from None
    except RecursionError:
        raise fail(f"nested too deeply to read; a config needs only a few levels (at most {MAX_DEPTH})") from None
    except Exception as e:  # noqa: BLE001 - whatever PyYAML trips over is still the file's fault
        raise fail(f"unreadable YAML ({type(e).__name__}: {_one_line(e)})") from None
    finally:
        if loader is not None:
            loader.dispose()


def _one_line(value: Any, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return _clip(text, limit)


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


def _check_expansion(root: yaml.Node, written: int) -> None:
    """Refuse documents whose aliases expand to too many nodes or too deep (billion laughs).

    Memoized per node, so linear in the document; the recursion is bounded by MAX_DEPTH.
    """
    memo: dict[int, tuple[int, int]] = {}  # id -> (expanded nodes, nesting levels)
    limit = written + MAX_ALIAS_NODES
    busy: set[int] = set()

    def visit(node: yaml.Node, outer: int) -> int:
        key = id(node)
        if key in memo:
            size, height = memo[key]
        else:
            if key in busy:
                raise _Refused("recursive YAML alias (an anchor used inside itself); configs hold plain trees",
                               node.start_mark)
            collection = not isinstance(node, yaml.ScalarNode)
            if collection and outer + 1 > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels once YAML aliases are expanded",
                               node.start_mark)
            busy.add(key)
            size, height = 1, 0
            for child in _children(node):
                size += visit(child, outer + collection)
                height = max(height, memo[id(child)][1])
                if size > limit:
                    raise _Refused(f"YAML aliases expand this document to more than {limit:,} nodes (at most "
                                   f"{MAX_ALIAS_NODES:,} more than written); write the values out",
                                   node.start_mark)
            height += collection
            busy.discard(key)
            memo[key] = (size, height)
        if outer + height > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels once YAML aliases are expanded", node.start_mark)
        return size

    visit(root, 0)


def _unshare(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unshare(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshare(v) for v in value]
    return value


def _walk(loader: _Loader, node: yaml.Node, prefix: tuple, path: tuple, lines: dict[tuple, int], fail) -> None:
    """Record the line of every key path and refuse what is not plain data: odd tags, non-string
    keys, duplicate keys, NUL characters, unreadable numbers. Aliases were bounded before."""
    line = node.start_mark.line + 1
    lines.setdefault(path, line)
    here = prefix + path
    if isinstance(node, yaml.ScalarNode):
        _check_scalar(loader, node, here, fail)
    elif isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            raise _tag_error(node, here, fail)
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _key(loader, key_node, here, fail)
            kline = key_node.start_mark.line + 1
            if key in seen:
                raise fail(f"key {_quote(key)} appears twice (lines {seen[key]} and {kline}); keep one",
                           kline, here + (key,))
            seen[key] = kline
            lines[path + (key,)] = kline
            _walk(loader, value_node, prefix, path + (key,), lines, fail)
    elif isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _tag_error(node, here, fail)
        for i, item in enumerate(node.value):
            _walk(loader, item, prefix, path + (i,), lines, fail)
            lines[path + (i,)] = item.start_mark.line + 1


def _tag_error(node: yaml.Node, path: tuple, fail) -> ConfigError:
    return fail(f"YAML tag not allowed ({_clip(str(node.tag), 60)}): configs hold plain data only (mappings, "
                "lists, strings, numbers, booleans)", node.start_mark.line + 1, path)


def _check_scalar(loader: _Loader, node: yaml.ScalarNode, path: tuple, fail) -> Any:
    line = node.start_mark.line + 1
    if node.tag == _TIMESTAMP:
        raise fail(f"YAML reads {_show(node.value)} as a date; quote it if it is a string: "
                   f"'{_clip(node.value)}'", line, path)
    if node.tag == _MERGE:
        raise fail("YAML reads << as a merge key; quote it if it is a string: '<<'", line, path)
    if node.tag not in _SCALAR_TAGS:
        raise _tag_error(node, path, fail)
    if "\0" in node.value:
        raise fail("a NUL character (\\0) is not allowed in a value", line, path)
    if node.tag in (_INT, _FLOAT, _BOOL):
        try:
            value = loader.yaml_constructors[node.tag](loader, node)
        except (ValueError, TypeError, KeyError, OverflowError, ArithmeticError):
            value = None
        else:
            if not (isinstance(value, int) and value.bit_length() > 256):
                return value
        digits = sum(c.isalnum() for c in node.value)
        raise fail(f"cannot read {_show(node.value)} as {_SCALAR_TAGS[node.tag]}"
                   + (f" ({digits} digits is far too many)" if digits > 70 else ""), line, path)
    return node.value


def _key(loader: _Loader, node: yaml.Node, path: tuple, fail) -> Any:
    """The key a key node stands for: a string (or an integer label under INT_KEYS), else ConfigError."""
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.ScalarNode):
        what = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        raise fail(f"a key must be a plain string, got {what} (YAML complex key '? ...')", line, path)
    if node.tag in (_STR, _MERGE):
        if "\0" in node.value:
            raise fail("a NUL character (\\0) is not allowed in a key", line, path)
        return node.value
    shown = _clip(node.value)
    value = _check_scalar(loader, node, path + (shown,), fail)
    if node.tag == _INT and path in INT_KEYS:
        return value
    if node.tag == _NULL and not node.value:
        raise fail("a key is empty (YAML null); keys are names", line, path)
    if node.tag == _NULL:
        raise fail(f"YAML reads the key {shown} as null; a key must be a string: quote it: '{shown}'", line,
                   path + (shown,))
    allowed = "a string or an integer label" if path in INT_KEYS else "a string"
    raise fail(f"YAML reads the key {shown} as {_SCALAR_TAGS[node.tag]}; a key must be {allowed}: quote it: "
               f"'{shown}'", line, path + (shown,))


def _quote(key: Any) -> str:
    text = str(key)
    return f"'{text}'" if len(text) <= 40 and text.isprintable() and "'" not in text else _show(key)


def _dotted(path: Iterable) -> str:
    return ".".join(_part(p) for p in path)


def _part(p: Any) -> str:
    text = str(p)
    return text if len(text) <= 40 and text.isprintable() else _show(text)[:40]


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
            raise UsageError(f"--set {_show(text)}: list index {_clip(p, 20)} is far too large")
    path = tuple(int(p) if p.isascii() and p.isdigit() else p for p in parts)
    value = None
    if raw.strip():
        try:
            value, _ = _read_yaml(raw, set_arg(text), path, with_lines=False)
        except ConfigError as e:
            if not e.detail.startswith("malformed YAML"):
                raise
            raise ConfigError(e.detail + " (VALUE is YAML: quote a string with { } [ ] : or # in it)",
                              file=e.file, path=e.path) from None
    return path, value


def set_arg(text: str) -> str:
    """How a --set argument is named in messages (cut short, control characters escaped)."""
    shown = text if text.isprintable() else repr(text)[1:-1]
    return "--set " + _clip(shown, 80)


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
            node[part] = [] if isinstance(nxt, int) and here not in INT_KEYS else {}
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


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if len(word) > 100:
        return ""
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
        msg = f"unknown key {_quote(loc[-1])}; {_did_you_mean(str(loc[-1]), allowed)}"
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
            return ConfigError(msg + f" (set by {set_arg(text)})", file=file, path=_dotted(loc) or None)
        err = ConfigError(msg, file=set_arg(text), path=None if loc == opath else _dotted(loc))
        err.path = _dotted(loc) or None
        return err
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
                raise_at(("data", "source", key), f"{src.generator} has no argument {_quote(key)}; "
                         f"{_did_you_mean(key, allowed)}allowed: {', '.join(allowed)}")


def check_layer(type_name: str, kwargs: dict, loc: tuple, raise_at, layers: dict) -> None:
    if type_name not in layers:
        raise_at(loc + ("type",), f"Keras has no layer {_quote(type_name)}; {_did_you_mean(type_name, layers)}"
                 "any class of keras.layers is allowed (Dense, Dropout, Conv2D, LSTM, ...)")
    info = layers[type_name]
    for key in kwargs:
        if key in ("input_shape", "input_dim", "batch_input_shape"):
            raise_at(loc + (key,), "nettrain builds the model inputs from the data; remove this argument")
        if not info["kwargs"] and key not in info["params"]:
            raise_at(loc + (key,), f"{_clip(type_name)} has no argument {_quote(key)}; "
                     f"{_did_you_mean(key, info['params'])}allowed: {', '.join(info['params'])}")
    for key in info["required"]:
        if key not in kwargs:
            raise_at(loc, f"{type_name} needs the argument '{key}'")


def _check_registry(value, loc, registry: dict, what: str, module: str, raise_at, key: str = "name") -> None:
    by_norm = {catalog.normalize(n): n for n in registry}
    name = value.get(key) if isinstance(value, dict) else value
    where = loc + (key,) if isinstance(value, dict) else loc
    if not isinstance(name, str):
        raise_at(where, f"{what} name must be a string, got {_show(name)}")
    found = by_norm.get(catalog.normalize(name))
    if found is None:
        raise_at(where, f"Keras has no {what} {_quote(name)}; {_did_you_mean(name, registry)}"
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
            raise_at(where, f"{what} {_quote(name)} takes no arguments")
        for arg in args:
            if params is not None and arg not in params:
                raise_at(loc + (arg,), f"{what} {_quote(name)} has no argument {_quote(arg)}; "
                         f"{_did_you_mean(arg, params)}allowed: {', '.join(p for p in params if p != 'name')}")


# --------------------------------------------------------------------------------- entry

def load_config(path: str | os.PathLike | None, overrides: Iterable[str] = (), *,
                data: dict | None = None, check_names: bool = True) -> Config:
    """Read, override, resolve paths and validate a config.

    `path` is the YAML file; `data` may stand in for its parsed content (then `path` only names
    it in messages and anchors relative paths). Every mistake raises a ConfigError (or a
    UsageError for a missing file or a malformed --set): never another exception.
    """
    file = str(path) if path is not None else "<config>"
    lines: dict[tuple, int] = {}
    if data is None:
        data, lines = _read_file(file)
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
    if data.get("name") is None and path is not None:
        stem = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in Path(file).stem)
        data["name"] = stem.lstrip("._-")[:MAX_NAME] or "run"
    from_file = path is not None

    def raise_at(loc: tuple, msg: str):
        raise _error_at(loc, msg, file, lines, overridden, from_file)

    try:
        try:
            cfg = Config.model_validate(data)
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
    except RecursionError:
        raise ConfigError(f"nested too deeply to validate (at most {MAX_DEPTH} levels)", file=file) from None
    cfg._file = file
    cfg._lines = {_dotted(k): v for k, v in lines.items()}
    cfg._overridden = [_dotted(o) for o, _ in overridden]
    return cfg


def _read_file(file: str) -> tuple[Any, dict[tuple, int]]:
    p = Path(file)
    try:
        if not p.is_file():
            raise UsageError(f"config file not found: {file}" if not p.exists() else f"not a file: {file}")
        with open(p, "rb") as f:  # bounded read: st_size can lie (/proc files report 0)
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise UsageError(f"cannot read config {file}: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"the file is larger than {MAX_BYTES // (1 << 20)} MiB; a config is a few kilobytes "
                          "of YAML", file=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"not UTF-8 text: byte 0x{raw[e.start]:02x} cannot be decoded; save the file as UTF-8",
                          file=file, line=line) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return _read_yaml(text, file)
