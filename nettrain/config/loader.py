"""`load_config(path, overrides)`: YAML file + `--set` overrides -> a validated `Config`.

Every mistake becomes one `ConfigError` naming the file, the dotted key path, the YAML line
and what is allowed. No TensorFlow here. Reading the YAML itself, hostile documents included,
is `yamlread.py`'s job; `--set` is `overrides.py`'s, the wording of mistakes `problems.py`'s, the
Keras names `names.py`'s. This module puts them in order, resolves paths and checks coherence.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from pydantic import ValidationError

from nettrain.config import coherence, names
from nettrain.config.args import MAX_NAME, show
from nettrain.config.overrides import apply_override, parse_override
from nettrain.config.problems import describe, error_at
from nettrain.config.schema import Config, ConfigSource
from nettrain.config.template import check_template, possible_log_names
from nettrain.config.yamlread import MAX_DEPTH, dotted, read_file
from nettrain.errors import ConfigError

# Keys whose string values are paths (relative to the config file, or to the current
# directory when given with --set). data.source is a path unless it names a bundled set.
PATH_KEYS = (("data", "source"), ("data", "train"), ("data", "validation"), ("data", "test"), ("output", "dir"))
BUNDLED_PREFIXES = ("sklearn:", "keras:")


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
        raise ConfigError(f"keys must be strings, got {show(bad[0])}", file=file, line=lines.get((bad[0],)))

    base = Path(file).resolve().parent if path is not None else Path.cwd()
    _resolve_paths(data, base)
    overridden: list[tuple[tuple, str]] = []
    for text in overrides:
        opath, value = parse_override(text)
        apply_override(data, opath, value)
        overridden.append((opath, text))
        if opath in PATH_KEYS:
            _resolve_paths(data, Path.cwd(), only=[opath])
    names.keras2_names(data, file)
    if data.get("name") is None and path is not None:
        stem = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in Path(file).stem)
        data["name"] = stem.lstrip("._-")[:MAX_NAME] or "run"
    from_file = path is not None

    def raise_at(loc: tuple, msg: str):
        raise error_at(loc, msg, file, lines, overridden, from_file)

    source = ConfigSource(file=file, lines={dotted(k): v for k, v in lines.items()},
                          overrides=tuple(dotted(o) for o, _ in overridden))
    try:
        try:
            cfg = Config.model_validate(data, context={"source": source})
        except ValidationError as e:
            raise describe(e.errors(), data, file, lines, overridden, from_file) from None
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
