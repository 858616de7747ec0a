"""`nettrain compare RUN RUN` and the run loading `nettrain plot` shares with it. No TensorFlow.

Two runs side by side: the config keys that differ (dotted paths, from each run's config.yaml),
the final metrics per split with the difference and which run is better (the direction from
`nettrain.report.metrics.metric_direction`), then status, epochs and best epoch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from rich.console import Console
from rich.text import Text

from nettrain.errors import UsageError
from nettrain.report.metrics import metric_direction
from nettrain.report.runs import MISSING, short_text, show_time, split_metrics
from nettrain.report.tables import (new_table, ordered_names, format_delta, format_share, format_value,
                                    make_console, print_table)
from nettrain.store import rundir

# ------------------------------------------------------------------------------ loading

def open_run(path: str | Path) -> dict[str, Any]:
    """run.json of the run directory at `path`, checked (a UsageError naming `path` otherwise)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"RUN {path}: no such folder; give a run directory (a folder holding run.json)")
    if not path.is_dir():
        hint = " (give its folder)" if path.name == rundir.RUN else ""
        raise UsageError(f"RUN {path} is a file, not a run directory (a folder holding run.json){hint}")
    if not (path / rundir.RUN).is_file():
        inner = sorted(p.parent for p in path.glob(f"*/*/{rundir.RUN}"))[:3] or \
            sorted(p.parent for p in path.glob(f"*/{rundir.RUN}"))[:3]
        hint = (f"; it holds runs such as {inner[0]} (list them with: nettrain runs {path})" if inner else "")
        raise UsageError(f"RUN {path} is not a run directory (no {rundir.RUN}){hint}")
    return rundir.RunRecord.load(path).data


def curve_runs(path: str | Path) -> list[Path]:
    """The runs whose metrics.csv `nettrain plot PATH` draws: PATH itself; for a k-fold run that keeps
    none of its own (no refit trained in it: an ensemble, or folds only), its folds in order."""
    path = Path(path)
    if (path / rundir.METRICS_CSV).is_file():
        return [path]
    folds = sorted((p for p in path.glob("fold-*") if p.is_dir() and p.name[5:].isdigit()
                    and (p / rundir.METRICS_CSV).is_file()), key=lambda p: int(p.name[5:]))
    return folds or [path]


def read_history(path: str | Path) -> tuple[list[str], list[dict[str, float | None]]]:
    """(columns, rows) of a run's metrics.csv; a UsageError naming the run when there is none."""
    path = Path(path)
    csv_path = path / rundir.METRICS_CSV
    if not csv_path.is_file():
        folds = sorted(p.name for p in path.glob("fold-*") if p.is_dir())
        hint = (f"; a k-fold run keeps one per fold: plot {path / folds[0]}" + (" ..." if len(folds) > 1 else "")
                if folds else "; no epoch has finished yet")
        raise UsageError(f"RUN {path} has no {rundir.METRICS_CSV}{hint}")
    table = rundir.MetricsCSV(csv_path)
    rows = table.read()
    if not table.columns or not rows:
        raise UsageError(f"RUN {path}: {csv_path.name} holds no epoch rows yet")
    return list(table.columns), rows


# ------------------------------------------------------------------------- config diff

def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as {dotted path: leaf}; list items by index (`model.layers.0.units`).
    An empty mapping or list is a leaf of its own."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: value} if prefix else {"": value}


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every leaf that differs; `MISSING` where absent.
    Keys in the order of `a`, then those only `b` has."""
    fa, fb = flatten(a), flatten(b)
    keys = list(fa) + [k for k in fb if k not in fa]
    out = []
    for key in keys:
        va, vb = fa.get(key, MISSING), fb.get(key, MISSING)
        if va is MISSING or vb is MISSING or type(va) is not type(vb) or va != vb:
            out.append((key, va, vb))
    return out


def config_text(value: Any) -> str:
    """A config value as one line: strings as written, the rest as YAML/JSON reads it."""
    if value is MISSING:
        return "(absent)"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


# ---------------------------------------------------------------------------- comparing

def _better(metric: str, a: float | None, b: float | None) -> str | None:
    if a is None or b is None:
        return None
    if a == b:
        return "same"
    high = metric_direction(metric) == "max"
    return "b" if (b > a) == high else "a"


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _run_info(path: Path, run: Mapping[str, Any]) -> dict[str, Any]:
    data = run.get("data") if isinstance(run.get("data"), Mapping) else {}
    rows = data.get("rows") if isinstance(data.get("rows"), Mapping) else None
    return {"path": str(path), "name": run.get("name"), "status": run.get("status"), "task": run.get("task"),
            "started": run.get("started"), "ended": run.get("ended"), "epochs": run.get("epochs"),
            "epochs_done": run.get("epochs_done"), "best_epoch": run.get("best_epoch"),
            "stopped_epoch": run.get("stopped_epoch"), "monitor": run.get("monitor"), "folds": run.get("folds"),
            "rows": dict(rows) if rows else None}


def compare_runs(a: str | Path, b: str | Path) -> dict[str, Any]:
    """Two run directories compared, as a JSON-ready dict:

    `runs` (path, name, status, epochs, best epoch, ... of each), `config_differences` (a list of
    `{"key", "a", "b"}`, a side left out when the key is absent there), `metrics` (split -> a list
    of `{"metric", "a", "b", "delta" (b - a), "better" ("a", "b", "same" or null)}`).
    """
    a, b = Path(a), Path(b)
    run_a, run_b = open_run(a), open_run(b)
    cfg_a, cfg_b = rundir.read_run_config(a), rundir.read_run_config(b)
    diffs = []
    for key, va, vb in config_differences(cfg_a, cfg_b):
        entry: dict[str, Any] = {"key": key}
        if va is not MISSING:
            entry["a"] = va
        if vb is not MISSING:
            entry["b"] = vb
        diffs.append(entry)
    ma, mb = split_metrics(run_a.get("final_metrics")), split_metrics(run_b.get("final_metrics"))
    metrics: dict[str, list[dict[str, Any]]] = {}
    for split in [s for s in ("train", "validation", "test") if s in ma or s in mb]:
        rows = []
        for name in ordered_names([ma.get(split, {}), mb.get(split, {})]):
            va, vb = _finite(ma.get(split, {}).get(name)), _finite(mb.get(split, {}).get(name))
            rows.append({"metric": name, "a": va, "b": vb,
                         "delta": None if va is None or vb is None else vb - va,
                         "better": _better(name, va, vb)})
        metrics[split] = rows
    return {"runs": [_run_info(a, run_a), _run_info(b, run_b)], "config_differences": diffs, "metrics": metrics}


# ----------------------------------------------------------------------------- printing

def _rows_text(rows: Any) -> str:
    if not isinstance(rows, Mapping):
        return "-"
    counts = {k: v for k, v in rows.items() if isinstance(v, int) and not isinstance(v, bool)}
    total = sum(counts.values())
    if not counts or total <= 0:
        return "-"
    return f"{total} rows (" + ", ".join(f"{k} {v}, {format_share(v / total)}" for k, v in counts.items()) + ")"


def _epochs_text(info: Mapping[str, Any]) -> str:
    done, planned = info.get("epochs_done"), info.get("epochs")
    if done is None and planned is None:
        return "-"
    text = f"{short_text(done if done is not None else '-')}/{short_text(planned if planned is not None else '?')}"
    if info.get("stopped_epoch") is not None:
        text += f" (stopped early at {short_text(info['stopped_epoch'])})"
    return text


def _best_text(info: Mapping[str, Any]) -> str:
    best = info.get("best_epoch")
    if best is None:
        return "-"
    return f"{short_text(best)}" + (f" by {short_text(info['monitor'])}" if info.get("monitor") else "")


def print_comparison(result: Mapping[str, Any], console: Console | None = None) -> None:
    """The three tables of `nettrain compare`: config differences, metrics per split, the runs."""
    console = console or make_console()
    info_a, info_b = result["runs"]
    for letter, info in (("A", info_a), ("B", info_b)):
        name = f" ({short_text(info['name'])})" if info.get("name") else ""
        console.print(Text(f"{letter} = {info['path']}{name}"), soft_wrap=True)
    console.print()

    diffs = result["config_differences"]
    if diffs:
        table = new_table(f"Config differences ({len(diffs)})")
        table.add_column("key", overflow="fold")
        table.add_column("A", overflow="fold")
        table.add_column("B", overflow="fold")
        for d in diffs:
            table.add_row(Text(d["key"]), Text(config_text(d.get("a", MISSING))),
                          Text(config_text(d.get("b", MISSING))))
        print_table(console, table)
    else:
        console.print(Text("Config: no differences"))
        console.print()

    if not result["metrics"]:
        console.print(Text("Final metrics: neither run has any (a run that did not complete has none)"))
        console.print()
    for split, rows in result["metrics"].items():
        means = " (k-fold: means over the folds)" if split != "test" and any(
            i.get("folds") for i in (info_a, info_b)) else ""
        table = new_table(f"{split} metrics{means}")
        table.add_column("metric", no_wrap=True)
        for header in ("A", "B", "delta (B - A)", "better"):
            table.add_column(header, justify="right", no_wrap=True)
        for r in rows:
            better = {"a": "A", "b": "B", "same": "="}.get(r["better"] or "", "-")
            table.add_row(Text(r["metric"]), Text(format_value(r["a"])), Text(format_value(r["b"])),
                          Text(format_delta(r["delta"]) if r["delta"] is not None else "-"), Text(better))
        print_table(console, table)

    table = new_table("Runs")
    table.add_column("", no_wrap=True)
    table.add_column("A", overflow="fold")
    table.add_column("B", overflow="fold")
    lines = [("name", lambda i: short_text(i.get("name") or "-")), ("status", lambda i: short_text(i.get("status") or "-")),
             ("task", lambda i: short_text(i.get("task") or "-")),
             ("started", lambda i: show_time(i.get("started")) or "-"),
             ("epochs", _epochs_text), ("best epoch", _best_text), ("data", lambda i: _rows_text(i.get("rows")))]
    for label, fn in lines:
        table.add_row(Text(label), Text(fn(info_a)), Text(fn(info_b)))
    print_table(console, table)
