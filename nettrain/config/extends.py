"""`extends:` a config built on other configs: `extends: base.yaml` or `extends: [a.yaml, b.yaml]`.

Paths are relative to the file that names them. The bases are merged in order, then the file
itself on top: mappings merge key by key (deeply), a list or a scalar replaces what it inherits
whole, and `null` removes an inherited key (the schema's default applies again). Bases may extend
others, to any depth; a cycle is refused naming the files. Every key path remembers the file and
the line that wrote it (`files`, `lines`), so a mistake inherited from a base names the base.
No TensorFlow here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nettrain.config.args import show
from nettrain.config.yamlread import read_file
from nettrain.errors import ConfigError

KEY = "extends"
MAX_CHAIN = 32  # files in one chain of bases: far more than a team needs, few enough to stay cheap


class Layered:
    """Plain config data with, for every key path, the line (`lines`) and the file (`files`) that wrote it."""

    def __init__(self, data: Any, lines: dict[tuple, int], file: str):
        self.data, self.lines = data, lines
        self.files: dict[tuple, str] = {p: file for p in lines}


def resolve_extends(data: Any, lines: dict[tuple, int], file: str) -> Layered:
    """The config `file` (already read as `data`, `lines`) with its bases merged under it."""
    return _layered(data, lines, file, (_real(file),))


def _real(file: str) -> str:
    return os.path.realpath(file)


def _layered(data: Any, lines: dict[tuple, int], file: str, chain: tuple[str, ...]) -> Layered:
    own = Layered(data, lines, file)
    if not isinstance(data, dict) or KEY not in data:
        return own
    names = _names(data[KEY], lines, file)
    line = lines.get((KEY,))
    del data[KEY]
    for p in [p for p in own.lines if p[:1] == (KEY,)]:
        del own.lines[p], own.files[p]
    merged: Layered | None = None
    for i, name in names:
        shown = os.path.normpath(Path(file).parent / os.path.expanduser(name))
        at = lines.get((KEY, i), line) if i is not None else line
        real = _real(shown)
        if real in chain:
            loop = " -> ".join([*_shown_chain(chain, file), shown])
            raise ConfigError(f"extends {show(name)} makes a cycle: {loop}; a base cannot extend its own child",
                              file=file, line=at, path=KEY)
        if len(chain) >= MAX_CHAIN:
            raise ConfigError(f"extends {show(name)}: more than {MAX_CHAIN} files in one chain of bases",
                              file=file, line=at, path=KEY)
        if not Path(shown).is_file():
            raise ConfigError(f"extends {show(name)}: no such file ({Path(shown).resolve()}); a base's path is "
                              "relative to the file that names it", file=file, line=at, path=KEY)
        bdata, blines = read_file(shown)
        if bdata is None:
            bdata, blines = {}, {}
        if not isinstance(bdata, dict):
            raise ConfigError(f"a base config's top level must be a mapping of sections, got "
                              f"{type(bdata).__name__} (extended by {file})", file=shown, line=1)
        base = _layered(bdata, blines, shown, chain + (real,))
        merged = base if merged is None else _overlay(merged, base)
    return own if merged is None else _overlay(merged, own)


def _shown_chain(chain: tuple[str, ...], file: str) -> list[str]:
    """The chain's files as the user knows them: relative to the current directory where shorter."""
    out = []
    for real in chain[:-1]:
        rel = os.path.relpath(real)
        out.append(rel if len(rel) < len(real) else real)
    return [*out, file]


def _names(value: Any, lines: dict, file: str) -> list[tuple[int | None, str]]:
    """The files `extends` names, with their index in the list (None for a single name)."""
    line = lines.get((KEY,))
    if isinstance(value, str) and value.strip():
        return [(None, value)]
    if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
        return list(enumerate(value))
    raise ConfigError(f"expected a config file's path or a list of them (relative to this file), got {show(value)}",
                      file=file, line=line, path=KEY)


def _overlay(base: Layered, child: Layered) -> Layered:
    """`child` on top of `base` (both consumed): the merge rules above, lines and files kept per key."""
    if not isinstance(base.data, dict) or not isinstance(child.data, dict):
        return child
    _merge(base, child, base.data, child.data, ())
    for where in ("lines", "files"):
        if () in getattr(child, where):
            getattr(base, where)[()] = getattr(child, where)[()]
    return base


def _merge(base: Layered, child: Layered, into: dict, top: dict, path: tuple) -> None:
    for key, value in top.items():
        here = path + (key,)
        if value is None:  # null removes what the bases gave
            if key in into:
                _drop(base, here, into.pop(key))
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _move(child, base, here, None)
            _merge(base, child, into[key], value, here)
        else:  # a scalar or a list (or a mapping over a non-mapping) replaces whole
            if key in into:
                _drop(base, here, into[key])
            into[key] = value
            _move(child, base, here, value)


def _paths(path: tuple, value: Any):
    """`path` and every key path inside `value` (linear in its size)."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(path + (k,), v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(path + (i,), v)


def _drop(layer: Layered, path: tuple, value: Any) -> None:
    for p in _paths(path, value):
        layer.lines.pop(p, None)
        layer.files.pop(p, None)


def _move(child: Layered, base: Layered, path: tuple, value: Any) -> None:
    """The lines and files of `path` and of every key path inside `value` go from `child` to `base`."""
    for p in _paths(path, value):
        if p in child.lines:
            base.lines[p], base.files[p] = child.lines[p], child.files[p]
