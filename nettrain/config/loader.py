"""`load_config(path, overrides)`: YAML file + `--set` overrides -> a validated `Config`.

Every mistake becomes one `ConfigError` naming the file, the dotted key path, the YAML line
and what is allowed. No TensorFlow here. Reading the YAML itself, hostile documents included,
is `yamlread.py`'s job; `--set` is `overrides.py`'s, the wording of mistakes `problems.py`'s, the
Keras names `names.py`'s. This module puts them in order, resolves paths and checks coherence.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from pydantic import ValidationError

from nettrain.config import coherence, env, names
from nettrain.config.args import MAX_NAME, show
from nettrain.config.extends import resolve_extends
from nettrain.config.overrides import NAME_OR_MAPPING, apply_override, parse_override
from nettrain.config.problems import describe, error_at, set_arg
from nettrain.config.schema import Config, ConfigSource
from nettrain.config.template import check_template, possible_log_names
from nettrain.config.yamlread import MAX_DEPTH, dotted, read_file
from nettrain.errors import ConfigError

# Keys whose string values are paths (relative to the config file, or to the current
# directory when given with --set). data.source is a path unless it names a bundled set.
PATH_KEYS = (("data", "source"), ("data", "train"), ("data", "validation"), ("data", "test"), ("output", "dir"))
BUNDLED_PREFIXES = ("sklearn:", "keras:")
# a URL (scheme://...; also as a Path writes it, scheme:/...): nettrain reads local files only. Two
# characters at least before the colon, so that a Windows drive (C:/) is none
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:/")


# -------------------------------------------------------------------------------- paths

def _resolve_paths(data: dict, base, only: Iterable[tuple] | None = None, templates: dict | None = None) -> None:
    """Make the paths of PATH_KEYS absolute from `base(key path)`, the folder of the file that wrote
    them (a base config's own folder for a key it wrote, the current directory for --set)."""
    for path in PATH_KEYS:
        if only is not None and path not in only:
            continue
        section = data.get(path[0])
        if not isinstance(section, dict):
            continue
        value = section.get(path[1])
        if not isinstance(value, str) or not value or value.startswith(BUNDLED_PREFIXES) or URL.match(value):
            continue  # (a URL is refused by _refuse_urls, named as written)
        p = Path(os.path.expanduser(value))
        folder = base(path)
        section[path[1]] = os.path.normpath(p if p.is_absolute() else folder / p)
        written = (templates or {}).get(path)
        if written is not None and not p.is_absolute():
            # a relative path keeps its anchor, also one a reference gave (`${env:DATA}` = d.csv): read
            # back from the run's config.yaml it was taken relative to the run's folder
            templates[path] = os.path.join(str(folder), written)


def _refuse_urls(data: dict, raise_at) -> None:
    """A URL where a path goes: nettrain reads local files only (nothing is downloaded)."""
    for path in PATH_KEYS:
        section = data.get(path[0])
        value = section.get(path[1]) if isinstance(section, dict) else None
        if isinstance(value, str) and URL.match(value):
            raise_at(path, f"{value!r} is a URL; nettrain reads local files only: download it and give "
                           f"the file's path")


# ---------------------------------------------------------------------------- coherence

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


def _replace_templates(templates: dict, new: dict, opath: tuple, data: dict) -> None:
    """A --set value replaces what the file wrote at `opath`: its ${env:...} texts go, the value's own
    come. A reference that --set turned into a mapping's name (`optimizer: ${env:OPT}` with
    `--set training.optimizer.learning_rate=0.1`) moves to that name."""
    n = len(opath)
    for key in list(templates):
        if key[:n] == opath:
            del templates[key]
        elif opath[: len(key)] == key:
            moved = templates.pop(key)
            node: object = data
            for part in key:
                node = node[part] if isinstance(node, (dict, list)) else None
            name = NAME_OR_MAPPING.get(key)
            if isinstance(node, dict) and name is not None and name in node:
                templates[key + (name,)] = moved
    templates.update(new)


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
    files: dict[tuple, str] = {}
    if path is not None:  # `extends:` bases merged under the file, each key knowing its file and line
        layered = resolve_extends(data, lines, file)
        data, lines, files = layered.data, layered.lines, layered.files
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"keys must be strings, got {show(bad[0])}", file=files.get((bad[0],), file),
                          line=lines.get((bad[0],)))
    from_file = path is not None
    templates: dict[tuple, str] = {}  # key path -> the text as written, for values with ${env:...}
    env.resolve_tree(data, (), lambda loc, msg: error_at(loc, msg, file, lines, [], from_file, files), templates)

    here = Path(file).resolve().parent if path is not None else Path.cwd()
    folders: dict[str, Path] = {}

    def folder_of(key: tuple) -> Path:
        written_in = files.get(key)
        if written_in is None or written_in == file:
            return here
        return folders.setdefault(written_in, Path(written_in).resolve().parent)

    _resolve_paths(data, folder_of, templates=templates)
    overridden: list[tuple[tuple, str]] = []
    for text in overrides:
        opath, value = parse_override(text)
        set_templates: dict[tuple, str] = {}
        value = env.resolve_tree(value, opath, lambda loc, msg, t=text: ConfigError(msg, file=set_arg(t)),
                                 set_templates)
        apply_override(data, opath, value)
        _replace_templates(templates, set_templates, opath, data)
        overridden.append((opath, text))
        if opath in PATH_KEYS:
            _resolve_paths(data, lambda key: Path.cwd(), only=[opath], templates=templates)
    names.keras2_names(data, file)
    if data.get("name") is None and path is not None:
        stem = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in Path(file).stem)
        data["name"] = stem.lstrip("._-")[:MAX_NAME] or "run"

    def raise_at(loc: tuple, msg: str):
        raise error_at(loc, msg, file, lines, overridden, from_file, files)

    _refuse_urls(data, raise_at)
    source = ConfigSource(file=file, lines={dotted(k): v for k, v in lines.items()},
                          overrides=tuple(dotted(o) for o, _ in overridden),
                          files={dotted(k): f for k, f in files.items() if f != file},
                          env={dotted(k): t for k, t in templates.items()})
    try:
        try:
            cfg = Config.model_validate(data, context={"source": source})
        except ValidationError as e:
            raise describe(e.errors(), data, file, lines, overridden, from_file, files) from None
        if not os.path.isabs(cfg.output.dir):  # the default: runs/ under the current directory
            cfg.output.dir = os.path.abspath(cfg.output.dir)
        if check_names:
            names.check_names(cfg, raise_at)
            try:  # the fields against what the run can log (the syntax was checked by the schema)
                check_template(cfg.callbacks.checkpoint.filename, {"epoch"} | possible_log_names(cfg))
            except ValueError as e:
                raise_at(("callbacks", "checkpoint", "filename"), str(e))
            _check_coherence(cfg, raise_at)
    except RecursionError:
        raise ConfigError(f"nested too deeply to validate (at most {MAX_DEPTH} levels)", file=file) from None
    return cfg
