"""`nettrain runs [DIR]`: find run directories under a root and list them, newest first.

A run directory is any folder holding a `run.json`. Unreadable or malformed ones (not JSON,
not a JSON object, not a regular file, too large) are skipped and named with the reason in one
line under the table, rather than breaking the listing; odd values inside a readable run.json
(a metric that is not a number, a start time that is not a time) show as text or "-".

`select_runs` narrows and orders the listing: `--filter KEY=VALUE` (run.json fields, dotted for
nested ones), then `--last N` (the N newest of those), then `--sort METRIC` (best first, the
direction from `nettrain.report.metrics.metric_direction`; runs without the metric last).
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from rich.console import Console
from rich.text import Text

from nettrain.errors import UsageError
from nettrain.report.metrics import metric_direction
from nettrain.report.tables import (SPLITS, new_table, ordered_names, split_kfold, format_value, make_console,
                                    print_table)
from nettrain.store import rundir
from nettrain.words import one_line

STATUS_STYLES = {"completed": "green", "failed": "red", "interrupted": "yellow", "running": "cyan", "killed": "red",
                 "pruned": "magenta"}  # pruned: a sweep trial stopped by its pruner


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


def show_time(value: Any) -> str:
    ts = _timestamp(value)
    if ts is None:
        return "" if value is None else short_text(value)
    if isinstance(value, str):
        try:  # keep the recorded wall-clock time as written, without fractions and offset
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            pass
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return short_text(value)


def short_text(value: Any, limit: int = 40) -> str:
    """A recorded value as one short line of text (a run.json may hold anything)."""
    return one_line(value, limit)


def _iter_run_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if rundir.RUN in filenames:
            yield Path(dirpath) / rundir.RUN
            # a run's own bulky folders never hold other runs
            dirnames[:] = [d for d in dirnames if d not in (rundir.TENSORBOARD, rundir.CHECKPOINTS, rundir.PLOTS)]


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
            why = f"not valid JSON ({getattr(e, 'msg', None) or short_text(e)})"
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


# --------------------------------------------------------------- metrics of a run, by name

def split_metrics(final_metrics: Any) -> dict[str, dict[str, float]]:
    """A run's final metrics by split (`train`, `validation`, `test`), numbers only.

    For a k-fold run the `validation` and `train` entries are the means over the folds.
    """
    out: dict[str, dict[str, float]] = {}
    if not isinstance(final_metrics, Mapping):
        return out
    mean = final_metrics.get("mean")
    if isinstance(mean, Mapping):
        for split, values in split_kfold(mean).items():
            found = _numbers(values)
            if found:
                out["validation" if split == "cross-validation" else str(split)] = found
    for split in SPLITS:
        found = _numbers(final_metrics.get(split))
        if found and split not in out:
            out[split] = found
    return {k: out[k] for k in sorted(out, key=lambda k: SPLITS.index(k) if k in SPLITS else len(SPLITS))}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def run_metric(run: Mapping[str, Any], metric: str) -> float | None:
    """The value of `metric` for a run, None when it has none (or not a finite number).

    `accuracy`: the metric the listing shows (test, else validation); `val_loss`: validation;
    `test.accuracy`, `train.loss`, `validation.auc`: that split.
    """
    fm = run.get("final_metrics")
    split, dot, name = metric.partition(".")
    if dot:
        return _finite(split_metrics(fm).get(split, {}).get(name))
    if metric.startswith("val_"):
        return _finite(split_metrics(fm).get("validation", {}).get(metric[4:]))
    return _finite(headline_metrics(fm)[1].get(metric))


def metric_choices(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every name `run_metric` finds in at least one of `runs`: plain, `val_`, then `split.` names."""
    runs = list(runs)
    plain = ordered_names(headline_metrics(r.get("final_metrics"))[1] for r in runs)
    by_split = [split_metrics(r.get("final_metrics")) for r in runs]
    val = ordered_names(m.get("validation", {}) for m in by_split)
    dotted = [f"{split}.{name}" for split in SPLITS
              for name in ordered_names(m.get(split, {}) for m in by_split)]
    return plain + [f"val_{n}" for n in val] + dotted


# ------------------------------------------------------------------ filter, last, sort

def parse_filters(specs: Iterable[str]) -> list[tuple[str, str]]:
    """`KEY=VALUE` strings -> (key, value); a malformed one is a UsageError naming it."""
    out = []
    for spec in specs:
        key, eq, value = str(spec).partition("=")
        key = key.strip()
        if not eq or not key or any(not part for part in key.split(".")):
            raise UsageError(f"--filter {spec!r}: expected KEY=VALUE, a run.json field and its value, e.g. "
                             "--filter status=completed, --filter name=iris, --filter data.rows.test=48")
        out.append((key, value))
    return out


MISSING = object()


def run_field(run: Mapping[str, Any], key: str) -> Any:
    """The run.json value at a dotted key (list items by index); `MISSING` when absent."""
    value: Any = run
    for part in key.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def _field_text(value: Any) -> str:
    """A run.json value as `--filter` compares it: strings as they are, the rest as JSON (true, 3, null)."""
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):  # `path`, which nettrain adds: the run directory as listed
        return os.fspath(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


_INTERNAL_FIELDS = ("path", "relpath", "sort_time")


def _fields(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    names: set[str] = set()
    for run in runs:
        names.update(str(k) for k in run if k not in _INTERNAL_FIELDS)
    return sorted(names)


def _last_count(last: Any) -> int | None:
    if last is None:
        return None
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise UsageError(f"--last {last!r}: expected a whole number >= 1 (how many of the newest runs to list)")
    return last


def select_runs(found: RunList, *, filters: Iterable[str] = (), last: int | None = None,
                sort: str | None = None) -> RunList:
    """The runs to list: those matching every filter, then the `last` newest of them, then sorted
    by `sort` (best first; runs without the metric last, newest first among equals).

    A malformed filter, a filter key no run has, a sort metric no run has, or `last` < 1 is a
    UsageError listing what is available.
    """
    pairs = parse_filters(filters)
    last = _last_count(last)
    runs = list(found)
    for key, _ in pairs:
        if found and all(run_field(r, key) is MISSING for r in found):
            raise UsageError(f"--filter {key}=...: no run has the field '{key}'; run.json fields: "
                             f"{', '.join(_fields(found))} (dotted keys reach nested ones, e.g. data.rows.test)")
    for key, value in pairs:
        runs = [r for r in runs if (v := run_field(r, key)) is not MISSING and _field_text(v) == value]
    if last is not None:
        runs = runs[:last]  # found is newest first
    if sort is not None:
        sort = sort.strip()
        if found and not any(run_metric(r, sort) is not None for r in found):
            choices = metric_choices(found)
            raise UsageError(f"--sort {sort!r}: no run has this metric; available: "
                             f"{', '.join(choices) if choices else 'none (no run has final metrics yet)'}")
        best_high = metric_direction(sort) == "max"

        def key(run: Mapping[str, Any]) -> tuple[bool, float]:
            v = run_metric(run, sort)
            return (v is None, 0.0 if v is None else (-v if best_high else v))

        runs.sort(key=key)  # stable: newest first among equals
    return RunList(runs, found.skipped, found.reasons)


# ---------------------------------------------------------------------------- the listing

def runs_table(runs: list[Mapping[str, Any]], title: str | None = None, sort: str | None = None):
    """One row per run; the metrics the listing shows as columns, plus the sort metric when it is
    not one of them (`val_loss` or `test.accuracy`)."""
    picked = [headline_metrics(r.get("final_metrics")) for r in runs]
    names = ordered_names(m for _, m in picked)
    extra = sort if sort is not None and ("." in sort or sort.startswith("val_")) else None
    table = new_table(title)
    # On a narrow terminal the text columns fold onto more lines; numbers are never split.
    for header in ("run", "name", "status", "started", "epochs", "metrics on"):
        table.add_column(header, overflow="fold")
    for name in names:
        table.add_column(Text(name), justify="right", no_wrap=True)
    if extra is not None:
        table.add_column(Text(extra), justify="right", no_wrap=True)
    for run, (split, metrics) in zip(runs, picked):
        status = short_text(run.get("status", "") or "")
        epochs = run.get("epochs_done")
        epochs_text = "" if epochs is None else short_text(epochs)
        if run.get("best_epoch") is not None:
            epochs_text += f" (best {short_text(run['best_epoch'])})"
        row = [Text(str(run.get("relpath", ""))), Text(short_text(run.get("name", "") or "")),
               Text(status, style=STATUS_STYLES.get(status, "")), Text(show_time(run.get("started"))),
               Text(epochs_text.strip()), Text(split)]
        row += [Text(format_value(metrics[n]) if n in metrics else "-") for n in names]
        if extra is not None:
            row.append(Text(format_value(run_metric(run, extra))))
        table.add_row(*row)
    return table


def _rel(file: Path, root: Path) -> str:
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return str(file)


def skipped_note(runs: RunList, root: str | os.PathLike) -> str:
    """One line naming the run.json files that could not be read (empty when none)."""
    root = Path(root)
    skipped = len(runs.skipped)
    if not skipped:
        return ""
    named = "; ".join(f"{_rel(f, root)}: {runs.reasons.get(f, 'unreadable')}" for f in runs.skipped[:5])
    more = f"; ... {skipped - 5} more" if skipped > 5 else ""
    return f"{skipped} unreadable run.json file{'s' if skipped != 1 else ''} skipped ({named}{more})"


def _selection_line(filters: Sequence[str], last: int | None, sort: str | None, shown: int, found: int) -> str:
    """`2 of 5 runs: --filter status=completed, --last 3, sorted by val_loss (lowest first)`;
    "" when the runs are listed as found."""
    parts = [f"--filter {str(f).strip()}" for f in filters]
    if last is not None:
        parts.append(f"--last {last}")
    if sort is not None:
        parts.append(f"sorted by {sort} ({'highest' if metric_direction(sort) == 'max' else 'lowest'} first)")
    if not parts:
        return ""
    return f"{shown} of {found} run{'s' if found != 1 else ''}: " + ", ".join(parts)


def print_runs(root: str | os.PathLike, console: Console | None = None, *, filters: Sequence[str] = (),
               sort: str | None = None, last: int | None = None) -> RunList:
    """Print the runs under `root` as a table, newest first (or as `select_runs` orders them);
    returns what was listed."""
    root = Path(root)
    found = collect_runs(root)
    runs = select_runs(found, filters=filters, last=last, sort=sort)
    print_listing(root, found, runs, console, filters=filters, sort=sort, last=last)
    return runs


def print_listing(root: Path, found: RunList, runs: RunList, console: Console | None = None, *,
                  filters: Sequence[str] = (), sort: str | None = None, last: int | None = None) -> None:
    """Print `runs` (selected from `found` under `root`) as a table with its notes: which
    selection it is, and which run.json files could not be read."""
    console = console or make_console()
    note = skipped_note(found, root)
    if not runs:
        what = (f"no runs match {' and '.join(str(f).strip() for f in filters)} under {root} "
                f"({len(found)} run{'s' if len(found) != 1 else ''} there)") if found else f"no runs found under {root}"
        console.print(Text(what + (f" ({note})" if note else "")), soft_wrap=True)
        return
    print_table(console, runs_table(runs, title=f"Runs under {root}", sort=sort))
    selection = _selection_line(filters, last, sort, len(runs), len(found))
    if selection:
        console.print(Text(selection), soft_wrap=True)
    if note:
        console.print(Text(note), soft_wrap=True)


def run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """One run as `nettrain runs --json` prints it (NaN and inf as null)."""
    from nettrain.store.atomic import finite

    split, metrics = headline_metrics(run.get("final_metrics"))
    out = {"path": str(run.get("path", "")), "name": run.get("name"), "status": run.get("status"),
           "started": run.get("started"), "ended": run.get("ended"), "epochs": run.get("epochs"),
           "epochs_done": run.get("epochs_done"), "best_epoch": run.get("best_epoch"), "monitor": run.get("monitor"),
           "metrics_split": split or None, "metrics": metrics,
           "final_metrics": run.get("final_metrics") if isinstance(run.get("final_metrics"), Mapping) else None}
    return finite(out)


def runs_json(root: str | os.PathLike, *, filters: Sequence[str] = (), sort: str | None = None,
              last: int | None = None) -> tuple[list[dict[str, Any]], str]:
    """(the selected runs as JSON-ready objects, the note on unreadable run.json files or "")."""
    found = collect_runs(root)
    runs = select_runs(found, filters=filters, last=last, sort=sort)
    return [run_summary(r) for r in runs], skipped_note(found, root)
