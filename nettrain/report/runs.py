"""`nettrain runs [DIR]`: find run directories under a root and list them, newest first.

A run directory is any folder holding a `run.json`. Unreadable or malformed ones (not JSON,
not a JSON object, not a regular file, too large) are skipped and named with the reason in one
line under the table, rather than breaking the listing; odd values inside a readable run.json
(a metric that is not a number, a start time that is not a time) show as text or "-".
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from rich.console import Console
from rich.text import Text

from nettrain.report.tables import SPLITS, _new_table, _ordered_names, format_value, make_console, print_table
from nettrain.store import rundir

STATUS_STYLES = {"completed": "green", "failed": "red", "interrupted": "yellow", "running": "cyan", "killed": "red"}


MAX_RUN_JSON = 16 * 1024 * 1024  # a run.json is a few KB; anything this large is not one


class RunList(list):
    """The runs found (dicts, newest first), plus the run.json files that could not be read."""

    def __init__(self, runs=(), skipped=(), reasons=None):
        super().__init__(runs)
        self.skipped: list[Path] = list(skipped)
        self.reasons: dict[Path, str] = dict(reasons or {})  # skipped file -> why


def _timestamp(value: Any) -> float | None:
    """Seconds since the epoch from an ISO 8601 string or a number; None when unparseable."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, (int, float)):
            value = float(value)
            return value if math.isfinite(value) else None
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if text.endswith("Z"):
                text = text[:-1] + "+00:00"
            return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):  # not a time, or a year no clock can show
        return None
    return None


def _show_time(value: Any) -> str:
    ts = _timestamp(value)
    if ts is None:
        return "" if value is None else _short(value)
    if isinstance(value, str):
        try:  # keep the recorded wall-clock time as written, without fractions and offset
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            pass
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return _short(value)


def _short(value: Any, limit: int = 40) -> str:
    """A recorded value as one short line of text (a run.json may hold anything)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iter_run_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if "run.json" in filenames:
            yield Path(dirpath) / "run.json"
            # a run's own bulky folders never hold other runs
            dirnames[:] = [d for d in dirnames if d not in ("tensorboard", "checkpoints", "plots")]


def collect_runs(root: str | os.PathLike) -> RunList:
    """Every readable `run.json` under `root`, as dicts, newest first.

    Each dict is the run.json content plus `path` (the run directory), `relpath` (relative
    to `root`, as a string) and `sort_time` (start time as seconds, falling back to the file's
    modification time). The returned list's `skipped` holds the files that could not be read.
    """
    root = Path(root)
    runs, skipped, reasons = [], [], {}
    for file in _iter_run_files(root):
        data, why, mtime = None, None, 0.0
        try:
            if not file.is_file():
                why = "not a regular file"
            elif file.stat().st_size > MAX_RUN_JSON:
                why = f"larger than {MAX_RUN_JSON // (1024 * 1024)} MB"
            else:
                data = json.loads(file.read_text(encoding="utf-8"))
                mtime = file.stat().st_mtime
        except UnicodeDecodeError:
            why = "not UTF-8 text"
        except ValueError as e:
            why = f"not valid JSON ({getattr(e, 'msg', None) or _short(e)})"
        except (OSError, RecursionError) as e:
            why = f"cannot be read ({getattr(e, 'strerror', None) or type(e).__name__})"
        if why is None and not isinstance(data, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
                type(data), "a number")
            why = f"{kind}, not a JSON object"
        if why is not None:
            skipped.append(file)
            reasons[file] = why
            continue
        run_dir = file.parent
        rel = run_dir.relative_to(root).as_posix() if run_dir != root else "."
        started = _timestamp(data.get("started"))
        data.update(path=run_dir, relpath=rel, sort_time=started if started is not None else mtime)
        if data.get("status") == "running" and not rundir.is_being_written(run_dir):
            data["status"] = "killed"  # no process holds it: it died without a word (kill -9, out of memory)
        runs.append(data)
    runs.sort(key=lambda r: (r["sort_time"], r["relpath"]), reverse=True)
    return RunList(runs, skipped, reasons)


def _numbers(d: Any) -> dict[str, float] | None:
    if not isinstance(d, Mapping):
        return None
    out = {str(k): v for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return out or None


def headline_metrics(final_metrics: Any) -> tuple[str, dict[str, float]]:
    """The metrics a listing shows for a run: test, else validation (k-fold: the mean)."""
    if not isinstance(final_metrics, Mapping):
        return "", {}
    for split in ("test", "validation"):
        found = _numbers(final_metrics.get(split))
        if found:
            return split, found
    mean = final_metrics.get("mean")
    if isinstance(mean, Mapping):
        found = _numbers(mean.get("validation"))
        if found:
            return "validation (cv mean)", found
        flat = _numbers(mean)
        if flat:
            val = {k[4:]: v for k, v in flat.items() if k.startswith("val_")}
            return ("validation (cv mean)", val) if val else ("cv mean", flat)
    for split in SPLITS:
        found = _numbers(final_metrics.get(split))
        if found:
            return split, found
    return "", {}


def runs_table(runs: list[Mapping[str, Any]], title: str | None = None):
    picked = [headline_metrics(r.get("final_metrics")) for r in runs]
    names = _ordered_names(m for _, m in picked)
    table = _new_table(title)
    # On a narrow terminal the text columns fold onto more lines; numbers are never split.
    for header in ("run", "name", "status", "started", "epochs", "metrics on"):
        table.add_column(header, overflow="fold")
    for name in names:
        table.add_column(Text(name), justify="right", no_wrap=True)
    for run, (split, metrics) in zip(runs, picked):
        status = _short(run.get("status", "") or "")
        epochs = run.get("epochs_done")
        epochs_text = "" if epochs is None else _short(epochs)
        if run.get("best_epoch") is not None:
            epochs_text += f" (best {_short(run['best_epoch'])})"
        row = [Text(str(run.get("relpath", ""))), Text(_short(run.get("name", "") or "")),
               Text(status, style=STATUS_STYLES.get(status, "")), Text(_show_time(run.get("started"))),
               Text(epochs_text.strip()), Text(split)]
        row += [Text(format_value(metrics[n]) if n in metrics else "-") for n in names]
        table.add_row(*row)
    return table


def _rel(file: Path, root: Path) -> str:
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return str(file)


def print_runs(root: str | os.PathLike, console: Console | None = None) -> RunList:
    """Print the runs under `root` as a table, newest first; returns what was listed."""
    console = console or make_console()
    root = Path(root)
    runs = collect_runs(root)
    skipped = len(runs.skipped)
    note = ""
    if skipped:
        named = "; ".join(f"{_rel(f, root)}: {runs.reasons.get(f, 'unreadable')}" for f in runs.skipped[:5])
        more = f"; ... {skipped - 5} more" if skipped > 5 else ""
        note = f"{skipped} unreadable run.json file{'s' if skipped != 1 else ''} skipped ({named}{more})"
    if not runs:
        console.print(Text(f"no runs found under {root}" + (f" ({note})" if note else "")), soft_wrap=True)
        return runs
    print_table(console, runs_table(runs, title=f"Runs under {root}"))
    if note:
        console.print(Text(note), soft_wrap=True)
    return runs
