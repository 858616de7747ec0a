"""Read one YAML document of plain data, refusing hostile ones cheaply and before they expand.

Files over 1 MiB, characters YAML refuses, nesting deeper than 50 levels (checked while scanning
and composing, before PyYAML's recursion), more than 100 aliases or aliases that add more than
10,000 nodes (billion laughs, counted per node so it is linear), recursive aliases, tags other
than plain data, and keys that are not strings (integer class labels under training.class_weight
excepted). `--set` values go through the same reader. Every refusal is a `ConfigError` naming
the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from nettrain.config.args import show as _show
from nettrain.errors import ConfigError, UsageError
from nettrain.words import clip, one_line

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
                raise _Refused(f"recursive YAML alias: *{clip(event.anchor)} is used inside "
                               f"&{clip(event.anchor)} itself; configs hold plain trees", event.start_mark)
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


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def read_yaml(text: str, file: str, prefix: tuple = (), *, with_lines: bool = True) -> tuple[Any, dict[tuple, int]]:
    """Parse one YAML document of plain data, refusing anything hostile with a ConfigError.

    `prefix` is the key path the document sits at (a --set value); `with_lines` False leaves
    line numbers out of messages (a --set value is one line of the command).
    """
    def fail(msg: str, line: int | None = None, path: tuple | None = None):
        return ConfigError(msg, file=file, path=dotted(path) if path else None,
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
        raise fail(f"malformed YAML: {one_line(e.problem or e.context or e, 200)}", line) from None
    except yaml.composer.ComposerError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        if e.context and "single document" in e.context:
            raise fail(f"one YAML document per file expected ({one_line(e.problem, 200)})", line) from None
        if e.context and e.context_mark and e.problem:  # duplicate anchor: first and second occurrence
            raise fail(f"malformed YAML: {one_line(e.context, 200)} at line {e.context_mark.line + 1}, "
                       f"{one_line(e.problem, 200)} at line {line}", line) from None
        raise fail(f"malformed YAML: {one_line(e.problem or e.context, 200)}", line) from None
    except yaml.reader.ReaderError as e:
        raise fail(f"unreadable YAML: {one_line(e.reason, 200)} (character #x{e.character:04x})"
                   if isinstance(e.character, int) else f"unreadable YAML: {one_line(e.reason, 200)}",
                   _line_of(text, e.position) if isinstance(e.position, int) else None) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        msg = f"malformed YAML: {one_line(problem, 200)}" + (f" ({one_line(context, 200)})" if context else "")
        raise fail(msg, mark.line + 1 if mark else None) from None
    except RecursionError:
        raise fail(f"nested too deeply to read; a config needs only a few levels (at most {MAX_DEPTH})") from None
    except Exception as e:  # noqa: BLE001 - whatever PyYAML trips over is still the file's fault
        raise fail(f"unreadable YAML ({type(e).__name__}: {one_line(e, 200)})") from None
    finally:
        if loader is not None:
            loader.dispose()


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
                raise fail(f"key {quote(key)} appears twice (lines {seen[key]} and {kline}); keep one",
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
    return fail(f"YAML tag not allowed ({clip(str(node.tag), 60)}): configs hold plain data only (mappings, "
                "lists, strings, numbers, booleans)", node.start_mark.line + 1, path)


def _check_scalar(loader: _Loader, node: yaml.ScalarNode, path: tuple, fail) -> Any:
    line = node.start_mark.line + 1
    if node.tag == _TIMESTAMP:
        raise fail(f"YAML reads {_show(node.value)} as a date; quote it if it is a string: "
                   f"'{clip(node.value)}'", line, path)
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
    shown = clip(node.value)
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


def quote(key: Any) -> str:
    text = str(key)
    return f"'{text}'" if len(text) <= 40 and text.isprintable() and "'" not in text else _show(key)


def dotted(path: Iterable) -> str:
    return ".".join(_part(p) for p in path)


def _part(p: Any) -> str:
    text = str(p)
    return text if len(text) <= 40 and text.isprintable() else _show(text)[:40]


def read_file(file: str) -> tuple[Any, dict[tuple, int]]:
    p = Path(file)
    try:
        if not p.is_file():
            if p.exists() and not p.is_dir():  # <(...) or a FIFO: its folder anchors nothing, and a run keeps a copy
                raise UsageError(f"{file} is not a regular file (a pipe or a device): save the config to a file "
                                 "and give its path")
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
    return read_yaml(text, file)
