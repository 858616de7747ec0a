"""A sweep's trial table (Rich) and its plots (Optuna's matplotlib backend, no plotly).

The table takes plain trial rows (see `nettrain.sweep.study.Study.rows`); the plots take the
optuna.Study itself (`Study.optuna`: they are Optuna's own plot functions, which read it through its
public API only) and import Optuna and matplotlib only when called.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from rich.text import Text

from nettrain.report.tables import format_value, make_console, new_table

TOP_PARAMS = 4   # slice and contour plots show the most important parameters only


WIDTH = 120      # the trial table off a terminal (a pipe, a log), like summary.txt; COLUMNS overrides it


def trials_table(rows: Sequence[Mapping[str, Any]], metric: str, title: str | None = None):
    """One row per trial, best first: number, state, metric (the saved model's value), `epoch` (the
    saved model's epoch, the value's), `best at` (the epoch of the best logged value), epochs run,
    seconds, params, run dir (relative to the working folder when inside it; only its name when every
    run is in one folder, which the caption names)."""
    table = new_table(title)
    table.collapse_padding = True  # more columns for the params
    runs = [_near_path(row.get("run_dir")) for row in rows]
    parents = {os.path.dirname(r) for r in runs if r != "-"}
    if len(parents) == 1 and "" not in parents:  # every run in the sweep folder: its name, the folder below
        runs = [os.path.basename(r) if r != "-" else r for r in runs]
        table.caption = f"runs in {parents.pop()}{os.sep}"
    run_width = min(max([len(r) for r in runs] + [3]), 34)  # a short run path whole on one line
    for name, justify in (("trial", "right"), ("state", "left"), (metric, "right"), ("epoch", "right"),
                          ("best at", "right"), ("epochs", "right"), ("seconds", "right"), ("params", "left"),
                          ("run", "left")):
        wraps = name in ("params", "run")
        table.add_column(Text(name), justify=justify, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis",
                         min_width=run_width if name == "run" else None if wraps else len(name),
                         ratio=1 if name == "params" else None)
    for row, run in zip(rows, runs):
        value = row.get("value") if row.get("state") in ("complete", "pruned") else None
        params = "\n".join(f"{k}={format_value(v)}" for k, v in (row.get("params") or {}).items())  # one a line
        note = row.get("error") if row.get("state") == "failed" else None
        at = row.get("value_epoch") if row.get("state") == "complete" else None
        table.add_row(Text(str(row.get("number"))), Text(str(row.get("state"))), Text(format_value(value)),
                      Text(format_value(at)), Text(format_value(row.get("best_epoch"))),
                      Text(format_value(row.get("epochs"))), Text(format_value(row.get("seconds"))),
                      Text(params + (f" ({note})" if note else "")), Text(run))
    return table


def _near_path(path: Any) -> str:
    """A run directory as the table shows it: relative to the working folder when inside it."""
    if not path:
        return "-"
    try:
        rel = os.path.relpath(str(path))
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def print_trials(rows: Sequence[Mapping[str, Any]], metric: str, title: str | None = None, console=None) -> None:
    """The table at the terminal's width; off a terminal WIDTH columns (COLUMNS overrides both): params
    and run paths fold onto more lines rather than widening the table."""
    if console is None:
        console = make_console()
        if not console.is_terminal and not os.environ.get("COLUMNS", "").strip():
            console.width = WIDTH
    console.print(trials_table(rows, metric, title))


class LiveView:
    """In a terminal: the finished trials' lines scroll above a live panel of the running trials
    (number, epoch reached, seconds). Use as a context manager; `say` and `watch` go to `run_sweep`."""

    def __init__(self, total: int, console=None):
        from rich.live import Live

        self.console = console or make_console(stderr=True)
        self.total, self.finished = total, 0
        self.live = Live(Text(""), console=self.console, refresh_per_second=4, transient=True)

    def __enter__(self) -> "LiveView":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def say(self, line: str) -> None:
        if line.startswith("trial ") and not line.endswith("marked interrupted"):
            self.finished += 1
        self.live.console.print(Text(line))

    def watch(self, running) -> None:
        import json
        import time

        parts = []
        for number, run_dir, started in sorted(running):
            try:
                done = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8")).get("epochs_done")
            except (OSError, ValueError, AttributeError):
                done = None
            epoch = f"epoch {done}" if isinstance(done, int) and done > 0 else "starting"
            parts.append(f"trial {number}: {epoch}, {time.monotonic() - started:.0f} s")
        self.live.update(Text(f"running {len(running)} (finished here: {self.finished}): " + "; ".join(parts)))


def sweep_plots(study: Any, folder: str | os.PathLike, metric: str = "value") -> list[Path]:
    """optimization_history.png, param_importances.png, slice.png, contour.png (the top parameters),
    each only where the study has enough finished trials for it. Returns the files written."""
    from optuna.trial import TrialState

    from nettrain.report.plots import atomic_savefig

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not done:
        return []
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # no display, never a window (a notebook's backend is kept)
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    params = sorted({k for t in done for k in t.params})
    top = params
    if len(done) >= 2 and len(params) >= 2:
        try:
            importances = optuna_importances(study)
            top = [k for k in importances][:TOP_PARAMS]
        except Exception:  # noqa: BLE001 - importances need variety among the trials
            top = params[:TOP_PARAMS]
    jobs = [("optimization_history.png", lambda: ovm.plot_optimization_history(study, target_name=metric))]
    if len(done) >= 2 and len(params) >= 2:
        jobs.append(("param_importances.png", lambda: ovm.plot_param_importances(study, target_name=metric)))
    if params:
        jobs.append(("slice.png", lambda: ovm.plot_slice(study, params=top, target_name=metric)))
    if len(done) >= 2 and len(top) >= 2:
        jobs.append(("contour.png", lambda: ovm.plot_contour(study, params=top[:2], target_name=metric)))
    for name, draw in jobs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
            try:
                axes = draw()
            except Exception:  # noqa: BLE001 - a plot Optuna cannot draw for this study is left out
                plt.close("all")
                continue
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        fig = first.get_figure()
        fig.set_size_inches(max(fig.get_figwidth(), 8), max(fig.get_figheight(), 5))
        if name == "slice.png":
            spread_labels(fig, list(axes.flat) if hasattr(axes, "flat") else [axes])
        written.append(atomic_savefig(fig, out / name, bbox_inches="tight"))
        plt.close(fig)
    return written


def spread_labels(fig: Any, axes: list[Any]) -> None:
    """The slice plot's panels side by side without overlapping labels: 4 inches per panel, each key's
    dotted name broken at its dots, tick labels turned, and the layout made with the labels in it."""
    import textwrap

    fig.set_size_inches(max(fig.get_figwidth(), 4.0 * len(axes)), max(fig.get_figheight(), 5))
    for ax in axes:
        label = ax.get_xlabel()
        if label:
            ax.set_xlabel("\n".join(textwrap.wrap(label.replace(".", ". "), 28)).replace(". ", "."), fontsize=9)
        for tick in ax.get_xticklabels():
            tick.set_rotation(30)
            tick.set_horizontalalignment("right")
            tick.set_fontsize(8)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the colour bar's axes: laid out as well as matplotlib can
            fig.tight_layout()
    except Exception:  # noqa: BLE001 - a layout matplotlib cannot make keeps the plot as drawn
        pass


def optuna_importances(study: Any) -> dict[str, float]:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.importance.get_param_importances(study)
