"""`nettrain lr-find`'s plot: the loss against the learning rate (log axis), raw and smoothed, with
the suggested rate (steepest descent), the lowest point and the chance level marked."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


def lr_find_plot(result: Any, path: str | os.PathLike) -> Path:
    import numpy as np

    from nettrain.report.plots import new_figure, atomic_savefig

    x = np.asarray(result.rates, dtype=float)
    raw = np.asarray(result.losses, dtype=float)
    smooth = np.asarray(result.smoothed, dtype=float)
    fig = new_figure(8.0, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(x, raw, color="0.75", linewidth=1.0, label="loss (one batch)")
    ax.plot(x, smooth, color="tab:blue", linewidth=2.0, label="smoothed loss")
    if result.lowest_rate is not None and result.lowest_loss is not None:
        ax.plot([result.lowest_rate], [result.lowest_loss], linestyle="none", marker="o", color="tab:green",
                label=f"lowest smoothed loss (lr {result.lowest_rate:.3g})")
    chance = getattr(result, "chance_loss", None)
    if chance is not None and math.isfinite(chance):
        ax.axhline(chance, color="tab:orange", linestyle="--", linewidth=1.0,
                   label=f"chance ({chance:.4g}: a constant prediction)")
    if result.suggestion is not None:
        at = float(np.interp(math.log10(result.suggestion), np.log10(x), smooth))
        ax.axvline(result.suggestion, color="tab:red", linestyle=":", linewidth=1.2)
        ax.plot([result.suggestion], [at], linestyle="none", marker="*", markersize=14, color="tab:red",
                markeredgecolor="black", markeredgewidth=0.6, zorder=5,
                label=f"suggested: {result.suggestion:.3g} (steepest descent)")
    finite = np.isfinite(smooth)
    if finite.any():  # y up to the smoothed loss before its lowest point: an explosion at the end stays off the scale
        lowest = int(np.nanargmin(np.where(finite, smooth, np.nan)))
        low, top = float(smooth[lowest]), float(np.nanmax(smooth[:lowest + 1]))
        if chance is not None and math.isfinite(chance):
            top = max(top, chance)  # the chance line stays in view
        raw_finite = raw[np.isfinite(raw)]
        bottom = min(low, float(raw_finite.min()) if raw_finite.size else low)
        span = max(top - bottom, 1e-12)
        ax.set_ylim(bottom - 0.05 * span, top + 0.35 * span)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    title = "learning-rate range test"
    if result.suggestion is not None:
        title += f": suggested {result.suggestion:.3g}"
    elif getattr(result, "learned", None) is False:
        title += ": the network learned nothing"
    ax.set_title(title)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return atomic_savefig(fig, path)
