"""Plugins imported, and kept in a run: `<run>/plugins/<file name>` with its sha256 in run.json.

Code is imported only from files the user listed in a config (`plugins:`) or from a run's own
copies of them, never from a model file: Keras's safe_mode stays on, and a custom class is found
when a model is loaded because its plugin registered it (`register_keras_serializable`).

`import_plugin` imports one file by path under a module name of its own, once per process for
the same bytes, and returns what it imported (the bytes are kept, so the run's copy is exactly the
code that built the model). `keep_copies` writes the copies; `load_for_model` is what loading a
run's `.h5` does first: the run's copies checked against their hashes, then imported.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nettrain.config.plugins import digest, plugin_name, read_source
from nettrain.errors import UsageError
from nettrain.store import atomic, rundir

FOLDER = rundir.PLUGINS
RECORD_KEY = "plugins"  # run.json: {file name: sha256}


@dataclass(frozen=True)
class Loaded:
    name: str       # the file name (a run's copy has it too)
    path: str       # where it was imported from
    sha256: str
    source: bytes
    module: str     # its module name in sys.modules


_loaded: dict[str, Loaded] = {}  # file name -> the last one imported in this process


def loaded(name: str) -> Loaded | None:
    return _loaded.get(name)


def import_plugin(path: str | Path, where: str = "<config>", source: bytes | None = None) -> Loaded:
    """Import one plugin file (its classes register themselves with Keras); once per process for
    the same bytes. A plugin that fails to import is a UsageError naming the file and the error."""
    path = str(path)
    name = plugin_name(path)
    data = read_source(path, where) if source is None else source
    sha = digest(data)
    done = _loaded.get(name)
    if done is not None and done.sha256 == sha:
        return done
    module = f"nettrain_plugin_{sha[:16]}_{Path(path).stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module, path)
    if spec is None:
        raise UsageError(f"plugin {path}: cannot be imported (not a Python file)")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    try:
        exec(compile(data, path, "exec"), mod.__dict__)  # the bytes hashed, not a second read of the file
    except (Exception, SystemExit) as e:  # anything the plugin raises while it is imported
        sys.modules.pop(module, None)
        text = str(e).strip().splitlines()
        raise UsageError(f"plugin {path} failed to import: {type(e).__name__}"
                         + (f": {text[0]}" if text else "")) from e
    done = Loaded(name, path, sha, data, module)
    _loaded[name] = done
    return done


def import_listed(paths: list[str], where: str = "<config>") -> list[Loaded]:
    """The plugins a config lists, imported (before its model is built)."""
    return [import_plugin(p, where) for p in paths]


def keep_copies(run_dir: Path, paths: list[str]) -> dict[str, str]:
    """Copy into `<run>/plugins/` the code this process imported for each listed plugin (a fresh run:
    the user's file; a retrained one: its parent run's copy); returns {file name: sha256} for run.json."""
    out: dict[str, str] = {}
    for path in paths:
        name = plugin_name(path)
        done = _loaded.get(name) or import_plugin(path)
        (run_dir / FOLDER).mkdir(exist_ok=True)
        atomic.write_bytes(run_dir / FOLDER / name, done.source)
        out[name] = done.sha256
    return out


def run_of(model_path: Path) -> Path | None:
    """The run folder an .h5 belongs to (its folder, or the one above checkpoints/), else None."""
    for candidate in (model_path.parent, model_path.parent.parent):
        if (candidate / rundir.RUN).is_file() and (candidate == model_path.parent or
                                                   model_path.parent.name == rundir.CHECKPOINTS):
            return candidate
    return None


def recorded(run_dir: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads((run_dir / rundir.RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    kept = data.get(RECORD_KEY) if isinstance(data, dict) else None
    return kept if isinstance(kept, dict) else {}


def load_for_model(model_path: Path, config: dict[str, Any] | None) -> list[str]:
    """Before an .h5 whose config lists plugins is loaded: its run's copies, checked against the
    sha256 in run.json and imported. Returns one note per copy imported now (none when this
    process already imported the same code, as `fit` has). A missing or changed copy is refused."""
    listed = (config or {}).get("plugins") or []
    if not listed:
        return []
    run = run_of(Path(model_path))
    if run is None:
        raise UsageError(f"{model_path} needs the plugin(s) {', '.join(plugin_name(p) for p in listed)}, kept "
                         "in its run folder (plugins/); load it from inside its run")
    hashes = recorded(run)
    notes = []
    for path in listed:
        name = plugin_name(path) if isinstance(path, str) else repr(path)
        note = _import_copy(model_path, run, name, hashes.get(name), "run")
        if note:
            notes.append(note)
    for note in notes:
        warnings.warn(note)
    return notes


def load_kept(folder: Path, hashes: dict[str, Any]) -> None:
    """Before the model of an export folder that keeps plugin copies (`<folder>/plugins/`, their sha256
    in export.json) is loaded: each copy checked and imported, as `load_for_model` does for a run's."""
    for name, want in hashes.items():
        _import_copy(folder, folder, name, want, "export")


def _import_copy(owner: Path, folder: Path, name: str, want: Any, kind: str) -> str | None:
    """`folder`'s copy of plugin `name`, checked against its sha256 `want` and imported (a note), or None
    when this process already imported the same code; a name that is no .py file name, a missing or a
    changed copy is refused."""
    if not name.endswith(".py") or "/" in name or name.startswith("."):
        listed = "its metadata" if kind == "run" else "its export.json"
        raise UsageError(f"{owner}: refused: {listed} lists a plugin {name!r} that is no .py file name")
    copy = folder / FOLDER / name
    if not copy.is_file() or not isinstance(want, str):
        raise UsageError(f"{owner}: refused: the {kind}'s copy of plugin {name} is missing ({copy}); "
                         f"nettrain loads a {kind}'s custom objects only from its own copies")
    data = copy.read_bytes()
    if digest(data) != want:
        said, since = ("run.json", "the run was trained") if kind == "run" else ("export.json", "the export")
        raise UsageError(f"{owner}: refused: the {kind}'s copy of plugin {name} ({copy}) has changed since "
                         f"{since} (sha256 {digest(data)[:12]}, {said} says {want[:12]})")
    done = _loaded.get(name)
    if done is not None and done.sha256 == want:
        return None
    import_plugin(copy, str(folder), source=data)
    return f"plugin {name}: imported the {kind}'s copy {copy} (sha256 {want[:12]})"
