"""`callbacks.gradient_stats` in a run: the metrics.csv columns `grad_norm/<layer>` and the plot
`plots/gradients.png` of them over the epochs. No TensorFlow; matplotlib only inside the plot."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

# metrics.csv column of a layer's gradient norm: `grad_norm/<layer name>` (after `seconds`).
COLUMN_PREFIX = "grad_norm/"


def is_gradient_column(name: str) -> bool:
    return isinstance(name, str) and name.startswith(COLUMN_PREFIX)


def without_gradients(history: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """The metrics.csv columns other than the gradient norms (what the learning curves draw)."""
    return {k: list(v) for k, v in history.items() if not is_gradient_column(k)}


def gradient_columns(history: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Layer name -> its gradient norm per epoch (None where not measured), in model order."""
    return {k[len(COLUMN_PREFIX):]: list(v) for k, v in history.items() if is_gradient_column(k)}


def gradients_plot(history: Mapping[str, Sequence[Any]], path: str | os.PathLike) -> Path:
    """One line per layer: its gradient norm on the fixed batch over the epochs, log y axis; the
    first layer dark, the last light (viridis), so a fan spreading downwards reads as vanishing
    gradients in the early layers."""
    import numpy as np

    from nettrain.report.plots import new_figure, atomic_savefig

    layers = gradient_columns(history)
    epochs = [float(e) if e is not None else math.nan for e in history.get("epoch", [])]
    if not epochs:
        epochs = [float(i + 1) for i in range(max((len(v) for v in layers.values()), default=0))]
    x = np.asarray(epochs, dtype=float)
    fig = new_figure(8.0, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    n = len(layers)
    positive = True
    for i, (name, values) in enumerate(layers.items()):
        y = np.asarray([v if v is not None else math.nan for v in values], dtype=float)
        keep = np.isfinite(y)
        if not keep.any():
            continue
        positive &= bool(np.all(y[keep] > 0))
        ax.plot(x[keep], y[keep], marker="o" if keep.sum() <= 30 else None, markersize=3,
                color=cmap(0.9 * i / max(1, n - 1)), label=name)
    if n and positive:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient norm (fixed batch)")
    ax.set_title("gradient norm per layer (first layer dark, last light)")
    ax.grid(True, alpha=0.3, which="both")
    if n:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0.0)
    else:
        ax.text(0.5, 0.5, "no gradient norms recorded", ha="center", va="center", transform=ax.transAxes)
    if len(x) and np.isfinite(x).any() and float(np.nanmax(x)) <= 20:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return atomic_savefig(fig, path)
