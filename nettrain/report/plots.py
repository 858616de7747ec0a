"""PNG plots of a run: learning curves, confusion matrix, predicted vs actual.

matplotlib and pandas are imported inside the functions (both are slow to import and most
commands never plot). Figures are built on the Agg canvas directly, without pyplot, so no
figure is registered in pyplot's global state and nothing accumulates across calls; each file
is rendered into memory and then written atomically.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

# Atomic writes (temp file in the same folder, then rename) belong to the run-directory store.
from nettrain.store.atomic import write_bytes as atomic_write_bytes

from nettrain.store.rundir import NON_METRIC_COLUMNS as SKIP_COLUMNS  # not curves of their own
ANNOTATE_MAX_CLASSES = 20
TICK_LABEL_MAX_CLASSES = 60


def new_figure(width: float, height: float):
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        # No display needed, and never a GUI window from a training process. Left alone when
        # the caller already drives pyplot (a notebook): switching would close its figures.
        matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def atomic_savefig(fig, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Render `fig` as PNG into memory, write it atomically, and release the figure."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", **kwargs)
    finally:
        fig.clear()
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


# ------------------------------------------------------------------------- learning curves

def _history_frame(history: Any):
    import pandas as pd

    if isinstance(history, pd.DataFrame):
        return history.reset_index(drop=True)
    if isinstance(history, Mapping):
        lengths = {len(v) for v in history.values() if isinstance(v, Sequence) or hasattr(v, "__len__")}
        if len(lengths) > 1:  # ragged lists (a metric logged only some epochs): pad with NaN
            n = max(lengths)
            history = {k: list(v) + [math.nan] * (n - len(v)) for k, v in history.items()}
        return pd.DataFrame(dict(history))
    raise TypeError(f"history must be a pandas DataFrame or a dict of lists, got {type(history).__name__}")


def _quantities(columns: Sequence[str]) -> list[tuple[str, str | None, str | None]]:
    """(title, train column, validation column) per subplot, loss first."""
    out: list[tuple[str, str | None, str | None]] = []
    cols = [c for c in columns if c not in SKIP_COLUMNS]
    for c in cols:
        if c.startswith("val_"):
            continue
        out.append((c, c, f"val_{c}" if f"val_{c}" in cols else None))
    for c in cols:  # a validation-only quantity still gets its plot
        if c.startswith("val_") and c[4:] not in cols:
            out.append((c[4:], None, c))
    out.sort(key=lambda q: q[0] != "loss")
    return out


def curve_panels(history: Any) -> list[tuple[str, str | None, str | None]]:
    """The subplots `learning_curves` draws: (title, train column, validation column).

    Loss first, then each metric in column order, then "learning rate" when it varies.
    """
    import pandas as pd

    df = _history_frame(history)
    numeric = [str(c) for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    panels = _quantities(numeric)
    lr_col = next((c for c in ("learning_rate", "lr") if c in numeric), None)
    if lr_col is not None and df[lr_col].dropna().nunique() > 1:
        panels.append(("learning rate", lr_col, None))
    return panels


def _x_values(df):
    """Epochs for the x axis: the `epoch` column when there is one, else 1, 2, 3, ..."""
    import numpy as np
    import pandas as pd

    if "epoch" in df.columns and pd.api.types.is_numeric_dtype(df["epoch"]):
        return df["epoch"].to_numpy(dtype=float)
    return np.arange(1, len(df) + 1, dtype=float)


LOG_SCALE_DECADES = 2.0


def wants_log_scale(*arrays: Any) -> bool:
    """Whether values (all finite ones > 0) span more than two decades: then a log y axis shows
    the late epochs instead of a flat line under the first ones."""
    import numpy as np

    values = [np.asarray(a, dtype=float).ravel() for a in arrays]
    finite = np.concatenate(values) if values else np.array([])
    finite = finite[np.isfinite(finite)]
    if finite.size < 2 or np.any(finite <= 0):
        return False
    return bool(np.log10(finite.max() / finite.min()) > LOG_SCALE_DECADES)


def _value_at(x, y, epoch: float) -> float | None:
    import numpy as np

    hits = np.nonzero(x == epoch)[0]
    if not hits.size:
        return None
    value = float(y[hits[-1]])
    return value if math.isfinite(value) else None


def _mark_best(ax, x, curves: Mapping[str, Any], best_epoch: int, monitor: str | None, color: str,
               label: str | None) -> None:
    """A star on the monitored curve at the best epoch (a dotted vertical line when that curve is not
    on these axes), labelled for the legend."""
    y = curves.get(monitor) if monitor else None
    if y is None and curves:
        y = curves.get(next((c for c in curves if c.startswith("val_")), next(iter(curves))))
    value = _value_at(x, y, float(best_epoch)) if y is not None else None
    if value is not None and (monitor is None or monitor in curves):
        ax.plot([best_epoch], [value], linestyle="none", marker="*", markersize=13, color=color,
                markeredgecolor="black", markeredgewidth=0.6, zorder=5, label=label)
    else:
        ax.axvline(best_epoch, color=color, linestyle=":", linewidth=1.2, label=label)


def learning_curves(history: Any, path: str | os.PathLike, best_epoch: int | None = None,
                    monitor: str | None = None) -> Path:
    """One subplot per quantity (loss, each metric), train and validation on the same axes.

    `history` is a DataFrame (metrics.csv) or a dict of lists (Keras `History.history`).
    Epochs on the x axis are counted from 1 (the `epoch` column when present). A learning-rate
    subplot is added when the rate changed during the run. With `best_epoch` (counted from 1, as
    run.json's `best_epoch`), the best epoch is marked: a star on the `monitor` curve (run.json's
    `monitor`, e.g. `val_loss`) and a dotted line on the other panels. The loss axis turns
    logarithmic when the loss spans more than two decades.
    """
    import numpy as np

    df = _history_frame(history)
    x = _x_values(df)
    panels = curve_panels(df)

    n = max(len(panels), 1)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = new_figure(4.6 * ncols, 3.4 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    style = {"marker": "o", "markersize": 3} if len(df) <= 30 else {}
    best_label = None
    if best_epoch is not None:
        best_label = f"best epoch {best_epoch}" + (f" ({monitor})" if monitor else "")
    for ax, (title, train, val) in zip(axes, panels):
        if title == "learning rate":
            values = df[train].to_numpy(dtype=float)
            ax.plot(x, values, color="tab:green", **style)
            if np.all(values[~np.isnan(values)] > 0):
                ax.set_yscale("log")
            ax.set_ylabel("learning rate")
        else:
            curves = {}
            if train is not None:
                curves[train] = df[train].to_numpy(dtype=float)
                ax.plot(x, curves[train], label="train", color="tab:blue", **style)
            if val is not None:
                curves[val] = df[val].to_numpy(dtype=float)
                ax.plot(x, curves[val], label="validation", color="tab:orange", **style)
            if best_epoch is not None:
                on_panel = monitor if monitor in curves else None
                _mark_best(ax, x, curves if on_panel else {}, best_epoch, on_panel, "tab:red", best_label)
            if title == "loss" and wants_log_scale(*curves.values()):
                ax.set_yscale("log")
            ax.legend(loc="best", fontsize="small")
            ax.set_ylabel(title)
        ax.set_title(title)
        _epoch_axis(ax, x)
    return _save_panels(fig, axes, len(panels), path)


def _epoch_axis(ax, epochs) -> None:
    """An x axis of epochs (whole numbers when there are few), and a light grid."""
    import numpy as np

    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    if len(epochs) and float(np.nanmax(epochs)) <= 20:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# The panels' margins, in inches: room for the tick labels and the axis label on the left, the title
# on top, "epoch" below. Fixed instead of `fig.tight_layout()`, which measured every tick label's text
# (0.3 s of a 0.45 s learning-curve plot, at the end of every fit) for margins that barely move:
# the panels are 4.6 x 3.4 inches whatever the data, and large values get an offset ("1e6") instead
# of long tick labels.
PANEL_LEFT, PANEL_RIGHT, PANEL_TOP, PANEL_BOTTOM = 0.8, 0.15, 0.35, 0.5
PANEL_WSPACE, PANEL_HSPACE = 0.3, 0.35   # between panels, as fractions of a panel's width and height


def _save_panels(fig, axes, used: int, path: str | os.PathLike) -> Path:
    """Blank the panels left over, say so when there is nothing to draw, and write the PNG."""
    for ax in axes[used:]:
        ax.set_axis_off()
    if not used:
        axes[0].text(0.5, 0.5, "no metrics recorded", ha="center", va="center", transform=axes[0].transAxes)
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=PANEL_LEFT / width, right=1 - PANEL_RIGHT / width, bottom=PANEL_BOTTOM / height,
                        top=1 - PANEL_TOP / height, wspace=PANEL_WSPACE, hspace=PANEL_HSPACE)
    return atomic_savefig(fig, path)


# ------------------------------------------------------------- k-fold: mean ± std per epoch

def fold_curve_stats(histories: Sequence[Any]) -> tuple[Any, dict[str, tuple[Any, Any, Any]], int]:
    """Per epoch over the folds: (epochs, {column: (mean, std, folds with a value)}, the last epoch
    every fold reached).

    `histories` are the folds' metrics.csv rows (lists of dicts, DataFrames or dicts of lists). An
    epoch's mean and std are over the folds that have a finite value at that epoch (a fold that
    stopped early has none after its last epoch); std is the sample standard deviation (ddof 1, as
    the k-fold metrics report it), 0 where only one fold has a value.
    """
    import numpy as np
    import pandas as pd

    frames = []
    for h in histories:
        df = pd.DataFrame(list(h)) if isinstance(h, (list, tuple)) else _history_frame(h)
        if len(df):
            df = df.assign(epoch=_x_values(df))
            frames.append(df)
    if not frames:
        return np.array([], dtype=float), {}, 0
    epochs = np.array(sorted({float(e) for df in frames for e in df["epoch"]}), dtype=float)
    common = min(float(df["epoch"].max()) for df in frames)
    columns = []
    for df in frames:
        columns += [str(c) for c in df.columns if c not in columns and c != "epoch"
                    and pd.api.types.is_numeric_dtype(df[c]) and c not in ("learning_rate", "lr")]
    out: dict[str, tuple[Any, Any, Any]] = {}
    for c in columns:
        grid = np.full((len(frames), len(epochs)), np.nan)
        for i, df in enumerate(frames):
            if c in df.columns:
                values = pd.Series(df[c].to_numpy(dtype=float), index=df["epoch"].to_numpy(dtype=float))
                values = values[~values.index.duplicated(keep="last")]
                grid[i] = values.reindex(epochs).to_numpy(dtype=float)
        grid[~np.isfinite(grid)] = np.nan
        count = np.sum(~np.isnan(grid), axis=0)
        with np.errstate(all="ignore"):
            mean = np.where(count > 0, np.nansum(grid, axis=0) / np.maximum(count, 1), np.nan)
            dev = np.where(np.isnan(grid), 0.0, grid - mean)
            std = np.where(count > 1, np.sqrt((dev ** 2).sum(axis=0) / np.maximum(count - 1, 1)), 0.0)
        out[c] = (mean, std, count)
    return epochs, out, int(common)


def mean_learning_curves(histories: Sequence[Any], path: str | os.PathLike, *, mean_best_epoch: int | None = None,
                         monitor: str | None = None) -> Path:
    """The k-fold figure: per quantity (loss, each metric) the mean over the folds per epoch, training
    and validation, each with a band of ± one standard deviation across the folds.

    Every epoch that at least one fold reached is drawn, over the folds that reached it
    (`fold_curve_stats`); when the folds stopped at different epochs (early stopping) the part after
    the last epoch all folds reached is dotted and a grey line marks where it begins. With
    `mean_best_epoch` (the mean of the folds' best epochs, what `data.split.refit` trains for) a red
    dotted line marks it.
    """
    import numpy as np

    epochs, stats, common = fold_curve_stats(histories)
    k = len(histories)
    panels = [(t, tr, va) for t, tr, va in _quantities(list(stats)) if t not in ("learning rate",)]
    n = max(len(panels), 1)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = new_figure(4.8 * ncols, 3.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    ragged = bool(len(epochs)) and common < float(epochs.max())
    full = epochs <= common
    style = {"marker": "o", "markersize": 3} if len(epochs) <= 30 else {}
    for ax, (title, train, val) in zip(axes, panels):
        plotted = []
        for column, label, color in ((train, "train", "tab:blue"), (val, "validation", "tab:orange")):
            if column is None:
                continue
            mean, std, _ = stats[column]
            plotted += [mean - std, mean + std]
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
            ax.plot(epochs[full], mean[full], color=color, label=f"{label} mean ± std", **style)
            if ragged:  # from the last epoch all folds reached on: fewer folds
                tail = epochs >= common
                ax.plot(epochs[tail], mean[tail], color=color, linestyle=":", **style)
        if ragged:
            ax.axvline(common, color="grey", linestyle="--", linewidth=0.8,
                       label=f"after epoch {common}: fewer than {k} folds")
        if mean_best_epoch is not None:
            ax.axvline(mean_best_epoch, color="tab:red", linestyle=":", linewidth=1.2,
                       label=f"mean best epoch {mean_best_epoch}" + (f" ({monitor})" if monitor else ""))
        if title == "loss" and wants_log_scale(*plotted):
            ax.set_yscale("log")
        ax.set_title(f"{title} ({k}-fold mean ± std)")
        ax.set_ylabel(title)
        ax.legend(loc="best", fontsize="small")
        _epoch_axis(ax, epochs)
    return _save_panels(fig, axes, len(panels), path)


# ------------------------------------------------------------- several runs on one plot

def metric_columns(columns: Sequence[str], metric: str) -> tuple[str | None, str | None]:
    """(train column, validation column) of metrics.csv that plot `metric`; (None, None) when none.

    `loss` -> (`loss`, `val_loss`); `val_loss` -> (None, `val_loss`): only the validation curve.
    """
    cols = [str(c) for c in columns if c != "epoch"]
    if metric.startswith("val_"):
        return None, (metric if metric in cols else None)
    return (metric if metric in cols else None), (f"val_{metric}" if f"val_{metric}" in cols else None)


@dataclass
class Curves:
    """One run for `overlay_curves`: its legend label, its metrics.csv rows and its best epoch."""

    label: str
    history: Any
    best_epoch: int | None = None
    monitor: str | None = None


def overlay_curves(runs: Sequence[Curves], metric: str, path: str | os.PathLike) -> Path:
    """Learning curves of several runs on one axes: one colour per run, train solid, validation
    dashed, each run's best epoch starred (on its `monitor` curve when that is plotted, else a
    dotted line); the y axis logarithmic when a loss-like metric spans more than two decades."""
    from nettrain.report.metrics import metric_direction

    plotted, entries = [], 0
    many = len(runs) > 3
    fig = new_figure(11.5 if many else 8.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    xmax = 0.0
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        df = _history_frame(run.history)
        x = _x_values(df)
        train, val = metric_columns(list(df.columns), metric)
        curves = {}
        style = {"marker": "o", "markersize": 2.5} if len(df) <= 30 else {}
        if train is not None:
            curves[train] = df[train].to_numpy(dtype=float)
            ax.plot(x, curves[train], color=color, linestyle="-", label=f"{run.label} train", **style)
        if val is not None:
            curves[val] = df[val].to_numpy(dtype=float)
            ax.plot(x, curves[val], color=color, linestyle="--", label=f"{run.label} validation", **style)
        entries += len(curves)
        plotted += list(curves.values())
        if run.best_epoch is not None:
            on_curve = run.monitor if run.monitor in curves else None
            _mark_best(ax, x, curves if on_curve else {}, run.best_epoch, on_curve, color,
                       f"{run.label} best epoch {run.best_epoch}" + (f" ({run.monitor})" if run.monitor else ""))
            entries += 1
        if len(x):
            xmax = max(xmax, float(max(x)))
    if metric_direction(metric) == "min" and wants_log_scale(*plotted):
        ax.set_yscale("log")
    if 0 < xmax <= 20:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: {len(runs)} run{'s' if len(runs) != 1 else ''} (train solid, validation dashed)")
    ax.grid(True, alpha=0.3)
    if many or entries > 8:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0.0)
    else:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return atomic_savefig(fig, path)


# ------------------------------------------------------------------------ confusion matrix

def confusion_matrix_plot(matrix: Any, class_names: Sequence[Any] | None, path: str | os.PathLike,
                          title: str = "Confusion matrix") -> Path:
    """Heat map of counts (rows: actual, columns: predicted).

    Counts are written in the cells up to 20 classes; beyond that only the colours remain, and
    beyond 60 the class names are left off the axes.
    """
    import numpy as np

    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {m.shape}")
    n = m.shape[0]
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for a {n}x{n} confusion matrix")

    side = min(max(4.5, 0.4 * n + 2.5), 16.0)
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(m, cmap="Blues", interpolation="nearest", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if n <= TICK_LABEL_MAX_CLASSES:
        fontsize = 10 if n <= 10 else 8 if n <= 30 else 6
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        long_names = max((len(s) for s in names), default=0) > 4
        ax.set_xticklabels(names, rotation=45 if long_names or n > 10 else 0,
                           ha="right" if long_names or n > 10 else "center", fontsize=fontsize)
        ax.set_yticklabels(names, fontsize=fontsize)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if n <= ANNOTATE_MAX_CLASSES and m.size:
        integer = np.issubdtype(m.dtype, np.integer) or bool(np.all(np.mod(m, 1) == 0))
        threshold = (m.max() + m.min()) / 2.0 if m.size else 0
        fontsize = 10 if n <= 10 else 7
        for i in range(n):
            for j in range(n):
                v = m[i, j]
                ax.text(j, i, f"{int(v)}" if integer else f"{v:.2f}", ha="center", va="center",
                        fontsize=fontsize, color="white" if v > threshold else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.tight_layout()
    return atomic_savefig(fig, path)


# ---------------------------------------------------------------------- predicted vs actual

def predicted_vs_actual(y_true: Any, y_pred: Any, path: str | os.PathLike,
                        title: str = "Predicted vs actual") -> Path:
    """Scatter of predictions against targets with the y = x line; R² in the title."""
    import numpy as np

    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values and y_pred {p.size}")
    from nettrain.report.metrics import r2_score

    r2 = r2_score(t, p)
    fig = new_figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    alpha = 0.7 if t.size <= 500 else 0.3 if t.size <= 5000 else 0.1
    ax.scatter(t, p, s=14 if t.size <= 1000 else 4, alpha=alpha, color="tab:blue", edgecolors="none")
    finite = np.concatenate([t, p])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = (hi - lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
        ax.plot([lo, hi], [lo, hi], color="tab:red", linewidth=1, label="y = x")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.legend(loc="upper left", fontsize="small")
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"{title} (R² = {r2:.4f})" if not math.isnan(r2) else f"{title} (R² undefined)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return atomic_savefig(fig, path)
