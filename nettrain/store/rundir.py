"""The run directory layout and the files that describe a run (no TensorFlow here).

```
config.yaml  run.json  metrics.csv  metrics.json  model.h5  labels.json  features.json
summary.txt  checkpoints/  plots/  tensorboard/  fold-<i>/  eval-*.json  baseline.json  .lock
```

One process writes a run at a time: it holds an OS lock on `.lock` (released when the process
ends, however it ends). `--run-dir` never writes into a folder that holds anything else than a
nettrain run, and `--force` replaces only what nettrain wrote.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import os
import platform
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import yaml

from nettrain import __version__
from nettrain.errors import Interrupted, UsageError
from nettrain.store import atomic, guard

if TYPE_CHECKING:
    from nettrain.store import record

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is not enforced
    fcntl = None  # type: ignore[assignment]

CONFIG = "config.yaml"
RUN = "run.json"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
MODEL = "model.h5"
KERAS_EXPORT = "model.keras"
LABELS = "labels.json"
FEATURES = "features.json"
SUMMARY = "summary.txt"
SIGNATURE = "signature.json"  # the input contract: the training rows' columns (`data.contract`)
CHECKPOINTS = "checkpoints"
PLOTS = "plots"
PLUGINS = "plugins"    # copies of the config's plugin files (`store/plugins.py`), their sha256 in run.json
TENSORBOARD = "tensorboard"
CACHE = ".cache"       # a stream's prepared rows while it trains; its test/validation rows stay for evaluate
LOCK = ".lock"
BEST = "best.h5"
BASELINE = "baseline.json"  # `nettrain baseline RUN` / `fit --baseline`, written into a finished run as eval-*.json are
LAST = "last.h5"
MODEL_CARD = "MODEL.md"  # the model card (`report.modelcard`), drawn again from the run's files at any time
EXPORTS = "exports.json"  # the verified exports of the run's models (`nettrain export`)
EXPORT_DIR = "export"     # where `nettrain export` writes them by default (any files inside)

# The parts of a run's data, in the order nettrain lists them (run.json `data.rows`, metrics.json,
# the tables). The one definition for the package: `evaluate` prefers them the other way round.
SPLITS = ("train", "validation", "test")

# What nettrain writes into a run: anything else there is the user's and is never touched.
RUN_FILES = {CONFIG, RUN, METRICS_CSV, METRICS_JSON, MODEL, KERAS_EXPORT, LABELS, FEATURES, SUMMARY, SIGNATURE, MODEL_CARD, BASELINE, EXPORTS,
             LOCK}
_EVAL_FILE = re.compile(r"^eval-[A-Za-z0-9._-]+\.json$")
_FOLD_DIR = re.compile(r"^fold-\d+$")
_FOLDER_FILES = {CHECKPOINTS: (".h5", ".keras"), PLOTS: (".png",), CACHE: (".bin", ".json"), PLUGINS: (".py",)}


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# ------------------------------------------------------------------------- one writer per run

class RunLock:
    """An exclusive OS lock on `<run>/.lock`, held by the one process that writes the run.

    `flock` locks die with their process, so a killed writer never blocks the run. A second
    writer gets a UsageError naming the holder's pid. Use as a context manager; `__enter__`
    returns the run directory.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        if self._fd is not None or fcntl is None:
            return self
        lock_file = self.path / LOCK
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UsageError(f"cannot lock the run {self.path} ({lock_file}: {e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(f"the run {self.path} is being written by another nettrain process (pid {holder}); "
                             "wait for it to end or stop it: one process writes a run at a time") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Path:
        self.acquire()
        return self.path

    def __exit__(self, *exc) -> None:
        self.release()


def is_being_written(run_dir: str | os.PathLike) -> bool:
    """Whether a live process holds the run's lock (reads only: creates no file)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock, if it was taken


def try_lock(run_dir: str | os.PathLike) -> RunLock | None:
    """The run's lock if no one else holds it, else None (for optional writes such as eval files)."""
    try:
        return RunLock(run_dir).acquire()
    except UsageError:
        return None


# --------------------------------------------------------------------------- run directories

def foreign_entries(path: Path) -> list[str]:
    """Entries of a run folder that nettrain does not write there (links count as foreign)."""
    out = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        name = entry.name
        if entry.is_symlink():
            out.append(name)
        elif entry.is_file():
            if not (name in RUN_FILES or _EVAL_FILE.match(name) or atomic.is_leftover(name)):
                out.append(name)
        elif entry.is_dir():
            if _FOLD_DIR.match(name):
                out.extend(f"{name}/{e}" for e in foreign_entries(entry))
            elif name in _FOLDER_FILES:
                for inner in sorted(entry.iterdir(), key=lambda p: p.name):
                    if inner.is_symlink() or not inner.is_file() or not (
                            inner.name.endswith(_FOLDER_FILES[name]) or atomic.is_leftover(inner.name)):
                        out.append(f"{name}/{inner.name}")
            elif name in (TENSORBOARD, EXPORT_DIR):
                out.extend(f"{name}/{p.relative_to(entry)}" for p in entry.rglob("*") if p.is_symlink())
            else:
                out.append(name + "/")
        else:
            out.append(name)
    return out


def run_files(path: Path) -> list[str]:
    """The files of a run, relative to it, sorted (what `--json` lists as written)."""
    path = Path(path)
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                  if p.is_file() and p.name != LOCK and not atomic.is_leftover(p.name))


def _clear_run(path: Path) -> None:
    """Delete what nettrain wrote in a run folder (its lock excepted); call with the lock held."""
    for entry in path.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


FLAG = "--run-dir"  # how messages name the folder a user gave for a run


def _check_location(path: Path) -> None:
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        raise UsageError(f"{FLAG} {path}: refusing the filesystem root; give a folder for this run")
    if resolved == Path.home().resolve():
        raise UsageError(f"{FLAG} {path}: refusing the home folder; give a folder for this run")


def check_run_dir(path: str | os.PathLike, *, force: bool = False) -> bool:
    """Whether `path` can take a new run (UsageError saying why not); True when it holds a nettrain
    run that `force` lets us replace. Cheap: commands call it before loading data and TensorFlow."""
    path = Path(path)
    _check_location(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{FLAG} {path} exists and is not a folder")
    existing = [e.name for e in path.iterdir() if e.name != LOCK and not atomic.is_leftover(e.name)] \
        if path.is_dir() else []
    if not existing:
        return False
    if not (path / RUN).is_file():
        raise UsageError(f"{FLAG} {path} holds files that are not a nettrain run ({_names(existing)}); "
                         "nettrain never writes into or deletes other files: choose a new or empty folder")
    if not force:
        raise UsageError(f"{FLAG} {path} already holds a run (run.json); choose a new folder, continue it "
                         f"with 'nettrain fit CONFIG --resume {path}', or replace it with --force")
    foreign = foreign_entries(path)
    if foreign:
        raise UsageError(f"{FLAG} {path}: --force replaces only a nettrain run, and this folder also holds "
                         f"{_names(foreign)}; move those away first")
    return True


def new_run_dir(root: str | os.PathLike, name: str, explicit: str | os.PathLike | None = None, *,
                force: bool = False) -> RunLock:
    """A run folder, locked for this process: `<root>/<name>/<YYYYmmdd-HHMMSS>` (suffixed when
    taken), or `explicit` when it is new, empty, or (with `force`) a nettrain run to replace.

    Use it as `with new_run_dir(...) as out:`.
    """
    if explicit is not None:
        path = Path(explicit)
        replace = check_run_dir(path, force=force)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create the run directory {path}: {e.strerror}") from None
        lock = RunLock(path).acquire()
        if replace:
            _clear_run(path)
        return lock
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / name
    path, n = base / stamp, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return RunLock(path).acquire()
        except FileExistsError:
            n += 1
            path = base / f"{stamp}-{n}"
        except OSError as e:
            raise UsageError(f"cannot create the run directory {path}: {e.strerror}") from None


def _names(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic.write_text(run_dir / CONFIG, yaml.safe_dump(config, sort_keys=False, default_flow_style=None))


def versions() -> dict[str, str]:
    out = {"nettrain": __version__, "python": platform.python_version()}
    for mod in ("tensorflow", "keras", "numpy", "pandas", "sklearn"):
        m = __import__("sys").modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


# Fields of run.json that nettrain reads back, and what they must hold (None is always allowed).
_RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,), "name": (str,), "epochs": (int,), "epochs_done": (int,), "best_epoch": (int,),
    "stopped_epoch": (int,), "folds": (int,), "folds_done": (int,), "data": (dict,), "resumed": (list,),
    "retrains": (list,), "final_metrics": (dict,), "notes": (list,), "parent": (str,), "monitor": (str,),
}


class RunRecord:
    """run.json: rewritten atomically at every change so a crash leaves the last good state. What it
    holds, typed, for the code that reads it: `typed`, and `store.record.read_record`."""

    def __init__(self, run_dir: Path, data: dict[str, Any] | None = None):
        self.path = Path(run_dir) / RUN
        self.data: dict[str, Any] = data if data is not None else {}

    @classmethod
    def load(cls, run_dir: Path) -> "RunRecord":
        """Read and check run.json: a damaged or hand-edited record is named, never a traceback later."""
        path = Path(run_dir) / RUN
        if not path.is_file():
            raise UsageError(f"{run_dir} is not a run directory (no {RUN})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {path}: {e}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: expected a JSON object (the run record), got {type(data).__name__}; "
                             "the file was edited or damaged")
        for key, types in _RECORD_FIELDS.items():
            value = data.get(key)
            bad = value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types))
            if bad or (isinstance(value, int) and not isinstance(value, bool) and value < 0):
                raise UsageError(f"{path}: '{key}' holds {value!r}, expected {_type_words(types)}; the run record "
                                 "was edited or damaged")
        fingerprint = (data.get("data") or {}).get("fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise UsageError(f"{path}: 'data.fingerprint' holds {fingerprint!r}, expected a string")
        return cls(run_dir, data)

    @property
    def typed(self) -> "record.RunRecord":
        """The fields as nettrain reads them (`store.record.RunRecord`)."""
        from nettrain.store import record

        return record.RunRecord.of(self.data)

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        atomic.write_json(self.path, self.data)

    @contextlib.contextmanager
    def active(self) -> Iterator["RunRecord"]:
        """While the block runs the run is `running`; it ends `interrupted` (signal) or `failed` (error).

        A second signal that stops the process at once still marks the run interrupted.
        """
        def on_abort() -> None:
            atomic.write_json(self.path, {**self.data, "status": "interrupted", "ended": now()})

        with guard.on_abort(on_abort):
            try:
                yield self
            except (KeyboardInterrupt, Interrupted):
                guard.acknowledge()
                self.update(status="interrupted", ended=now())
                raise
            except BaseException as e:
                if not isinstance(e, SystemExit):
                    reason = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
                    with contextlib.suppress(Exception):  # keep the original error if this write fails too
                        self.update(status="failed", ended=now(), error=reason)
                raise


def _type_words(types: tuple[type, ...]) -> str:
    words = {str: "a string", int: "a whole number >= 0", dict: "a mapping", list: "a list"}
    return " or ".join(words[t] for t in types) + " (or null)"


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """A run's config.yaml as a mapping (UsageError naming the file when missing, not YAML or not a mapping)."""
    path = Path(run_dir) / CONFIG
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} is missing; the run directory is incomplete") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or 'syntax error'})") from None
    except (OSError, RecursionError) as e:
        raise UsageError(f"cannot read {path}: {getattr(e, 'strerror', None) or type(e).__name__}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: 'config' is {_article(data)}, expected a mapping of config sections; the file "
                         "was edited or damaged")
    return data


def _article(value: Any) -> str:
    name = {list: "list", str: "string", int: "number", float: "number", bool: "boolean", type(None): "empty"}.get(
        type(value), type(value).__name__)
    return "empty" if value is None else f"a {name}"


# Columns of metrics.csv that are not metrics (`lr`: the name older Keras versions log).
NON_METRIC_COLUMNS = ("epoch", "learning_rate", "lr", "seconds")


class MetricsCSV:
    """metrics.csv: one row per epoch, the whole file replaced atomically at each new row.

    The header is fixed by the first row; on resume, rows past the resumed epoch are dropped. Rows
    that do not parse (a hand-edited file) are skipped when reading.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.columns: list[str] | None = None
        self._rows: list[list[str]] = []
        if self.path.exists():
            try:
                with open(self.path, newline="", encoding="utf-8") as f:
                    table = [r for r in csv.reader(f) if r]
            except (OSError, UnicodeDecodeError, csv.Error) as e:
                raise UsageError(f"cannot read {self.path}: {e}") from None
            if table:
                self.columns, self._rows = table[0], table[1:]

    def _epoch(self, row: list[str]) -> int | None:
        value = _num(row[0]) if row else None
        return int(value) if value is not None and value == value and value >= 0 else None

    def _write(self) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns or [])
        w.writerows(self._rows)
        atomic.write_text(self.path, buf.getvalue())

    def truncate_after(self, epoch: int) -> None:
        """Keep rows with epoch <= `epoch` (used when resuming)."""
        if self.columns is None:
            return
        keep = [r for r in self._rows if (e := self._epoch(r)) is not None and e <= epoch]
        if keep != self._rows:
            self._rows = keep
            self._write()

    def append(self, row: dict[str, Any]) -> None:
        if self.columns is None:
            self.columns = list(row)
        self._rows.append([_cell(row.get(c)) for c in self.columns])
        self._write()

    def read(self) -> list[dict[str, float]]:
        """Rows with a valid epoch number, values as floats (None where empty or not a number)."""
        if self.columns is None:
            return []
        return [{k: _num(v) for k, v in zip(self.columns, r)} for r in self._rows if self._epoch(r) is not None]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _num(v: str) -> float | None:
    if v in ("", None):
        return None
    try:
        return float(v)
    except ValueError:
        return None
