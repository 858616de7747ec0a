"""The run directory layout and the files that describe a run (no TensorFlow here).

```
config.yaml  run.json  metrics.csv  metrics.json  model.h5  labels.json  features.json
summary.txt  checkpoints/  plots/  tensorboard/
```
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

import yaml

from nettrain import __version__
from nettrain.errors import UsageError
from nettrain.store import atomic

CONFIG = "config.yaml"
RUN = "run.json"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
MODEL = "model.h5"
KERAS_EXPORT = "model.keras"
LABELS = "labels.json"
FEATURES = "features.json"
SUMMARY = "summary.txt"
CHECKPOINTS = "checkpoints"
PLOTS = "plots"
TENSORBOARD = "tensorboard"


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def new_run_dir(root: str | os.PathLike, name: str, explicit: str | os.PathLike | None = None) -> Path:
    """`<root>/<name>/<YYYYmmdd-HHMMSS>` (suffixed when taken), or `explicit` if it holds no run."""
    if explicit is not None:
        path = Path(explicit)
        if (path / RUN).exists():
            raise UsageError(f"--run-dir {path} already holds a run (run.json); choose a new folder, "
                             f"or continue it with 'nettrain fit CONFIG --resume {path}'")
        if path.exists() and not path.is_dir():
            raise UsageError(f"--run-dir {path} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / name
    path, n = base / stamp, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            n += 1
            path = base / f"{stamp}-{n}"
        except OSError as e:
            raise UsageError(f"cannot create the run directory {path}: {e.strerror}") from None


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic.write_text(run_dir / CONFIG, yaml.safe_dump(config, sort_keys=False, default_flow_style=None))


def versions() -> dict[str, str]:
    out = {"nettrain": __version__, "python": platform.python_version()}
    for mod in ("tensorflow", "keras", "numpy", "pandas", "sklearn"):
        m = __import__("sys").modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


class RunRecord:
    """run.json: rewritten atomically at every change so a crash leaves the last good state."""

    def __init__(self, run_dir: Path, data: dict[str, Any] | None = None):
        self.path = Path(run_dir) / RUN
        self.data: dict[str, Any] = data if data is not None else {}

    @classmethod
    def load(cls, run_dir: Path) -> "RunRecord":
        path = Path(run_dir) / RUN
        try:
            return cls(run_dir, json.loads(path.read_text()))
        except FileNotFoundError:
            raise UsageError(f"{run_dir} is not a run directory (no {RUN})") from None
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {path}: {e}") from None

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        atomic.write_json(self.path, self.data)


class MetricsCSV:
    """metrics.csv: one row per epoch, flushed as soon as the epoch ends.

    The header is fixed by the first row; on resume, rows past the resumed epoch are dropped.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.reader(f)
                self.columns = next(reader, None)

    def truncate_after(self, epoch: int) -> None:
        """Keep rows with epoch <= `epoch` (used when resuming)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        header, body = rows[0], rows[1:]
        keep = [r for r in body if r and int(float(r[0])) <= epoch]
        with atomic.atomic_path(self.path) as tmp:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(keep)

    def append(self, row: dict[str, Any]) -> None:
        new = self.columns is None
        if new:
            self.columns = list(row)
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(self.columns)
            w.writerow([_cell(row.get(c)) for c in self.columns])
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, float]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]


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
