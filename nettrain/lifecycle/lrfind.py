"""`nettrain lr-find CONFIG`: the learning-rate range test.

From the freshly initialized model of CONFIG (with its `--set` overrides), train one batch per
step with the configured optimizer while the learning rate grows exponentially from `--min` to
`--max` over `--steps` steps (epochs of the training rows, reshuffled each time, as `fit` draws
them), and stop early when the loss explodes (not finite, or a running average of the loss above
4 times its lowest value). The batch losses are then smoothed (a centred moving average over half
a decade of rates), and the suggested rate is where the smoothed loss falls fastest per decade of
rate (the steepest descent) in the descent that leads to its lowest point. There is no suggestion
when the network learned nothing: the smoothed loss never fell clearly (by 3 standard errors of its
noise) below both its starting level and chance, the loss of always predicting the training rows'
class shares (the mean target for regression); the result says why.

Nothing is written before the test is done; then `lr_find.csv` and `lr_find.png` go into the
output folder: `--output DIR`, by default `<output.dir>/<name>/lr-find-<YYYYmmdd-HHMMSS>/` (next to
the config's runs, never inside one). No run directory is created or touched.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nettrain.errors import UsageError

CSV = "lr_find.csv"
PNG = "lr_find.png"
MIN_STEPS, MAX_STEPS = 10, 100_000
EXPLODED = 4.0       # smoothed loss above this many times its lowest value: stop
WARMUP = 5           # steps before the explosion rule applies (the first losses are noisy)
BETA = 0.9           # the running average of the stop rule
CHANCE_ROWS = 100_000  # training targets kept (as the batches come) to measure chance
CLEARLY = 3.0        # a fall counts when it exceeds this many standard errors of the smoothed loss
SMALL_RATE = 1e-3    # rates below this that leave the loss where it started are called too small
LARGE_RATE = 0.1     # rates up to this that do not beat chance are not too small: the labels are suspect


@dataclass
class LRFindResult:
    output: Path
    rates: list[float]
    losses: list[float]
    smoothed: list[float]
    steps_planned: int
    min_lr: float
    max_lr: float
    suggestion: float | None
    steepest_slope: float | None          # smoothed loss per decade of rate at the suggestion
    lowest_rate: float | None             # where the smoothed loss was lowest
    lowest_loss: float | None
    stopped: str | None                   # why the test ended before --steps, None when it ran them all
    chance_loss: float | None = None      # the loss of the best constant prediction (see chance_loss)
    chance_what: str = "a constant"       # that prediction, in words
    learned: bool | None = None           # the smoothed loss fell clearly below its start and chance (None: too few steps)
    reason: str | None = None             # why there is no suggestion (None when there is one)
    files: list[Path] = field(default_factory=list)

    def reasoning(self) -> list[str]:
        """The printed lines: what the loss did, and why the suggestion."""
        from nettrain.report.tables import format_value as fmt

        ran = len(self.rates)
        lines = [f"lr-find: {ran} steps, learning rate {self.min_lr:.3g} to {self.rates[-1]:.3g}"
                 + (f" (stopped: {self.stopped})" if self.stopped else "")]
        if self.lowest_rate is not None:
            lines.append(f"the smoothed loss was lowest ({fmt(self.lowest_loss)}) at learning rate "
                         f"{self.lowest_rate:.3g}")
        if self.suggestion is None:
            lines.append(f"no suggestion: {self.reason}")
        else:
            lines.append(f"on its way down there it fell fastest ({fmt(self.steepest_slope)} per tenfold rate) at "
                         f"learning rate {self.suggestion:.3g}: the steepest descent, where the rate is large enough "
                         "to learn fast and still well below where the loss blows up")
            lines.append(f"suggested learning rate: {self.suggestion:.3g} "
                         f"(nettrain fit CONFIG --set training.optimizer.learning_rate={self.suggestion:.3g})")
        lines.append("wrote " + ", ".join(str(f) for f in self.files))
        return lines

    def to_dict(self) -> dict[str, Any]:
        from nettrain.store.atomic import finite

        return finite({"output": str(self.output), "suggestion": self.suggestion,
                       "steepest_slope": self.steepest_slope, "lowest_rate": self.lowest_rate,
                       "lowest_loss": self.lowest_loss, "steps": len(self.rates), "steps_planned": self.steps_planned,
                       "min_lr": self.min_lr, "max_lr": self.max_lr, "stopped": self.stopped,
                       "chance_loss": self.chance_loss, "learned": self.learned, "reason": self.reason,
                       "files": [str(f) for f in self.files]})


NEVER_FELL = ("the smoothed loss never fell as the rate grew; widen the range (--min, --max), use more --steps, "
              "or check the data and the loss")


# ------------------------------------------------------------------------------ arguments

def check_range(min_lr: Any, max_lr: Any, steps: Any) -> tuple[float, float, int]:
    def rate(flag: str, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{flag} {value!r}: expected a learning rate, a number > 0 (e.g. 1e-6)") from None
        if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
            raise UsageError(f"{flag} {value!r}: expected a learning rate, a finite number > 0 (e.g. 1e-6)")
        return number

    lo, hi = rate("--min", min_lr), rate("--max", max_lr)
    if not lo < hi:
        raise UsageError(f"--min {lo:g} --max {hi:g}: the range must grow: --min below --max (default 1e-06 to 1)")
    if isinstance(steps, bool) or not isinstance(steps, int) or not MIN_STEPS <= steps <= MAX_STEPS:
        raise UsageError(f"--steps {steps!r}: expected a whole number from {MIN_STEPS} to {MAX_STEPS:,} "
                         "(default 100)")
    return lo, hi, steps


def _leftover(name: str) -> bool:
    from nettrain.store import atomic

    return atomic.is_leftover(name)


def check_output(out: Path) -> None:
    """An lr-find folder: where the one output-path policy lets a folder be written
    (`nettrain.store.paths.check_output_path`: not inside a run directory, no file in its way, a
    writable folder), and new, empty or an earlier lr-find's output."""
    from nettrain.store.paths import check_output_path

    check_output_path(out, writer="lr-find", kind="folder", wanted=f"a folder for {CSV} and {PNG}",
                      outside=" (default <output.dir>/<name>/lr-find-<time>)")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in (CSV, PNG) and not _leftover(p.name))
        if others:
            shown = ", ".join(others[:5]) + (f", ... ({len(others)} in all)" if len(others) > 5 else "")
            raise UsageError(f"--output {out} holds other files ({shown}); give a new or empty folder, or one an "
                             "earlier lr-find wrote (its files are replaced)")


def default_output(cfg) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.output.dir) / (cfg.name or "run")
    path, n = base / f"lr-find-{stamp}", 1
    while path.exists():
        n += 1
        path = base / f"lr-find-{stamp}-{n}"
    return path


# ------------------------------------------------------------------------------ the test

def rates(min_lr: float, max_lr: float, steps: int) -> list[float]:
    """`steps` rates growing exponentially from min_lr to max_lr (both included)."""
    ratio = max_lr / min_lr
    return [min_lr * ratio ** (i / (steps - 1)) for i in range(steps)]


def window(rates_: list[float], decades: float = 0.5) -> int:
    """Points in `decades` of rate (odd, at least 5): the width of the centred smoothing and of the
    slope fit."""
    if len(rates_) < 2:
        return 5
    per_decade = (len(rates_) - 1) / max(1e-12, math.log10(rates_[-1] / rates_[0]))
    n = max(5, int(round(per_decade * decades)))
    return n + 1 if n % 2 == 0 else n


def smooth(losses: list[float], width: int) -> list[float]:
    """Centred moving average over `width` points (narrower at the ends); NaN stays NaN."""
    import numpy as np

    y = np.asarray(losses, dtype=float)
    half = width // 2
    out = []
    for i in range(len(y)):
        part = y[max(0, i - half):i + half + 1]
        part = part[np.isfinite(part)]
        out.append(float(part.mean()) if part.size and np.isfinite(y[i]) else math.nan)
    return out


def suggest(rates_: list[float], smoothed: list[float], width: int) -> tuple[float | None, float | None, int | None]:
    """(rate, slope per decade, index of the lowest smoothed loss): the steepest descent of the
    smoothed loss against log10(rate) (the slope of a straight line fitted over `width` points
    around each one) in the descent that leads to the lowest point: from the last rate where the
    smoothed loss was still at its starting level (the median of the first tenth of the steps), so
    that a wobble of the noise on the flat start is not taken for the descent."""
    import numpy as np

    y = np.asarray(smoothed, dtype=float)
    x = np.log10(np.asarray(rates_[:len(y)], dtype=float))
    finite = np.isfinite(y)
    if finite.sum() < 3:
        return None, None, None
    lowest = int(np.nanargmin(np.where(finite, y, np.nan)))
    half = width // 2
    start_level = float(np.nanmedian(y[:max(3, len(y) // 10)]))
    above = [k for k in range(lowest) if np.isfinite(y[k]) and y[k] >= start_level]
    first = max(above[-1] if above else 0, half)
    best, best_slope = None, 0.0
    for i in range(first, lowest + 1):
        lo, hi = i - half, min(len(y), i + half + 1)
        xs, ys = x[lo:hi], y[lo:hi]
        keep = np.isfinite(ys)
        if keep.sum() < 3:
            continue
        slope = float(np.polyfit(xs[keep], ys[keep], 1)[0])
        if slope < best_slope:
            best, best_slope = i, slope
    if best is None:
        return None, None, lowest
    return float(rates_[best]), best_slope, lowest


def standard_error(losses: list[float], smoothed: list[float], width: int) -> float | None:
    """The standard error of one smoothed value: the batch losses' spread around the smoothed curve
    (robust: 1.4826 x the median absolute deviation, so an explosion at the end does not count) over
    sqrt(width). None with fewer than `width` finite points."""
    import numpy as np

    raw, smooth_ = np.asarray(losses, dtype=float), np.asarray(smoothed, dtype=float)
    keep = np.isfinite(raw) & np.isfinite(smooth_)
    if keep.sum() < max(width, 5):
        return None
    residual = raw[keep] - smooth_[keep]
    spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    spread /= math.sqrt(1.0 - 1.0 / width)  # a loss's distance to an average it is part of is shrunk
    return spread / math.sqrt(width)


def no_learning(result: "LRFindResult", width: int) -> str | None:
    """Why the test shows that the network learned nothing, or None when its smoothed loss fell clearly
    (CLEARLY standard errors) below both its starting level and chance, or the steps are too few to
    tell. The why, worded as inspect's findings: rates too small (the loss stayed at its start and
    every rate was below SMALL_RATE), labels unrelated to the features (the loss grew at the larger
    rates, or stayed at chance up to LARGE_RATE or more), or either of the two."""
    import numpy as np

    from nettrain.report.tables import format_value as fmt

    se = standard_error(result.losses, result.smoothed, width)
    y = np.asarray(result.smoothed, dtype=float)
    if se is None or result.lowest_loss is None:
        return None
    start = float(np.nanmedian(y[:max(3, len(y) // 10)]))
    margin = CLEARLY * se                      # against chance, an exact number
    apart = margin * math.sqrt(2.0)            # between two smoothed values, each as noisy
    below_start = result.lowest_loss < start - apart
    if below_start and (result.chance_loss is None or result.lowest_loss < result.chance_loss - margin):
        return None
    chance = None if result.chance_loss is None else \
        f"{fmt(result.chance_loss)}, the loss of always predicting {result.chance_what}"
    rose = result.stopped is not None or float(np.nanmax(y)) > start + apart
    at_chance = chance is not None and result.lowest_loss >= result.chance_loss - margin
    last, steps = result.rates[-1], len(result.rates)
    if not rose and not below_start and last < SMALL_RATE:
        return (f"the network learned nothing: over learning rates {result.min_lr:.3g} to {last:.3g} the smoothed "
                f"loss stayed within the noise of its starting level, {fmt(start)}"
                + (f" (chance: {chance})" if chance else "") + f": these rates are too small to change the weights "
                f"in {steps} steps; raise --max (default 1) or use more --steps")
    head = (f"the network learned nothing: the smoothed loss fell no lower than {fmt(result.lowest_loss)} (at "
            f"learning rate {result.lowest_rate:.3g}), " + (f"no better than chance ({chance})" if at_chance else
                                                             f"not clearly below its starting level, {fmt(start)}"))
    labels = ("the labels do not seem to depend on the features; check data.target and the feature columns (are "
              "the labels shuffled against their rows?)")
    if rose:
        return f"{head}, and grew at the larger rates: {labels}"
    if last >= LARGE_RATE:
        return f"{head}, up to learning rate {last:.3g}: {labels}"
    return (f"{head}: the labels may not depend on the features (check data.target and the feature columns), or "
            f"rates up to {last:.3g} are too small to learn them in {steps} steps (raise --max or --steps)")


def chance_loss(model, targets: list, class_weight: dict | None, from_logits: bool,
                regularization: float) -> float | None:
    """The loss (as training reports it: class weights, the target's loss weight, plus the initial
    weights' `regularization`) of the best constant prediction for `targets`, the training rows'
    encoded targets: the class shares (weighted), or for a regression the lower of the mean and the
    median. None when it cannot be computed."""
    import numpy as np

    import keras

    if not targets:
        return None
    y = np.concatenate(targets)[:CHANCE_ROWS]
    units = int(model.outputs[0].shape[-1])
    weights = _row_weights(y, class_weight, units)
    values = []
    for constant in _constants(y, weights, units, from_logits):
        pred = np.broadcast_to(np.asarray(constant, dtype=np.float32), (len(y), units))
        try:
            total = model.compute_loss(y=keras.ops.convert_to_tensor(y), y_pred=keras.ops.convert_to_tensor(pred),
                                       sample_weight=None if weights is None else keras.ops.convert_to_tensor(weights))
        except (TypeError, ValueError):
            return None
        extra = sum(float(keras.ops.convert_to_numpy(keras.ops.sum(v))) for v in model.losses)
        values.append(float(keras.ops.convert_to_numpy(total)) - extra + regularization)
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else None


def _sparse(y, units: int) -> bool:
    import numpy as np

    return units > 1 and np.issubdtype(y.dtype, np.integer) and (y.ndim == 1 or y.shape[-1] == 1)


def _row_weights(y, class_weight: dict | None, units: int):
    """Keras's per-row weights from `class_weight` (None without it)."""
    import numpy as np

    if not class_weight:
        return None
    if _sparse(y, units):
        index = y.reshape(-1).astype(np.int64)
    elif y.ndim > 1 and y.shape[-1] > 1:
        index = np.argmax(y, axis=-1)
    else:
        index = np.round(y.reshape(-1)).astype(np.int64)
    return np.asarray([float(class_weight.get(int(i), 1.0)) for i in index], dtype=np.float32)


def _constants(y, weights, units: int, from_logits: bool) -> list:
    """The constant predictions to try: the (weighted) class shares or mean, and for numbers the median;
    as logits when the loss takes logits."""
    import numpy as np

    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    if _sparse(y, units):
        shares = np.bincount(y.reshape(-1).astype(np.int64), weights=w, minlength=units)[:units] / w.sum()
        return [np.log(np.clip(shares, 1e-7, 1.0))] if from_logits else [shares]
    flat = y.reshape(len(y), -1).astype(float)
    mean = (flat * w[:, None]).sum(axis=0) / w.sum()
    if from_logits:
        p = np.clip(mean, 1e-7, 1 - 1e-7)
        return [np.log(p / (1 - p))] if units == 1 else [np.log(p)]
    return [mean, np.median(flat, axis=0)]


def lr_find(config: str | Path, overrides: Iterable[str] = (), *, min_lr: float = 1e-6, max_lr: float = 1.0,
            steps: int = 100, output: str | Path | None = None) -> LRFindResult:
    min_lr, max_lr, steps = check_range(min_lr, max_lr, steps)
    from nettrain.config import load_config

    cfg = load_config(config, overrides)
    out = Path(output) if output is not None else default_output(cfg)
    check_output(out)

    from nettrain.training import runtime  # noqa: F401 - loads TensorFlow without its native start-up chatter
    import keras
    import numpy as np

    from nettrain.model.compile import compile_model, label_mode, make_optimizer
    from nettrain.store import guard
    from nettrain.training.feed import EpochCursor
    from nettrain.training.fit import new_model, prepare

    prep = prepare(cfg)
    model = new_model(prep)
    with prep.scope():
        optimizer = make_optimizer(cfg, min_lr)
        compile_model(cfg, model, prep.dataset.schema, optimizer=optimizer)
    class_weight = prep.feed.class_weight(cfg)
    schedule = rates(min_lr, max_lr, steps)
    done_rates: list[float] = []
    losses: list[float] = []
    running: list[float] = []  # running average (bias-corrected), for the stop rule
    stopped = None
    average = 0.0
    cursor = EpochCursor(1)
    epoch = 1
    targets: list = []  # the first CHANCE_ROWS training targets, as the batches come
    kept = 0
    regularization = sum(float(keras.ops.convert_to_numpy(keras.ops.sum(v))) for v in model.losses)
    while len(done_rates) < steps and stopped is None:
        cursor.epoch.assign(epoch)
        for xb, yb in prep.feed.training(model, cursor):
            rate = schedule[len(done_rates)]
            model.optimizer.learning_rate = rate
            model.reset_metrics()
            logs = model.train_on_batch(xb, yb, class_weight=class_weight, return_dict=True)
            if kept < CHANCE_ROWS:
                targets.append(np.asarray(yb))
                kept += len(targets[-1])
            guard.poll()
            loss = float(logs["loss"])
            done_rates.append(rate)
            losses.append(loss)
            if not math.isfinite(loss):
                stopped = f"the loss became {loss} at learning rate {rate:.3g}"
                break
            average = BETA * average + (1 - BETA) * loss
            running.append(average / (1 - BETA ** (len(running) + 1)))
            if len(running) > WARMUP and running[-1] > EXPLODED * min(running):
                stopped = (f"the smoothed loss exploded at learning rate {rate:.3g}: above {EXPLODED:g} times "
                           f"its lowest value")
                break
            if len(done_rates) >= steps:
                break
        epoch += 1
    width = window(schedule)
    smoothed = smooth(losses, width)  # centred: no lag, unlike the running average of the stop rule
    suggestion, slope, lowest = suggest(done_rates, smoothed, width)
    loss = cfg.training.loss
    regression = label_mode(cfg, prep.dataset.schema) == "regression"
    result = LRFindResult(output=out, rates=done_rates, losses=losses, smoothed=smoothed, steps_planned=steps,
                          min_lr=min_lr, max_lr=max_lr, suggestion=suggestion, steepest_slope=slope,
                          lowest_rate=done_rates[lowest] if lowest is not None else None,
                          lowest_loss=smoothed[lowest] if lowest is not None else None, stopped=stopped,
                          chance_loss=chance_loss(model, targets, class_weight,
                                                  isinstance(loss, dict) and loss.get("from_logits") is True,
                                                  regularization),
                          chance_what="the mean (or median) target of the training rows" if regression
                          else "the class shares of the training rows")
    _judge(result, width)
    _write(result)
    return result


def _judge(result: LRFindResult, width: int) -> None:
    """`learned`, and no suggestion (with the reason) when the network learned nothing."""
    why = no_learning(result, width)
    if why is not None:
        result.learned, result.suggestion, result.steepest_slope, result.reason = False, None, None, why
        return
    result.learned = True if standard_error(result.losses, result.smoothed, width) is not None else None
    if result.suggestion is None:
        result.reason = NEVER_FELL


def _write(result: LRFindResult) -> None:
    import csv
    import io

    from nettrain.report.lrfind import lr_find_plot
    from nettrain.store import atomic

    out = result.output
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the lr-find folder {out}: {e.strerror or e}") from None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["step", "learning_rate", "loss", "smoothed_loss"])
    for i, (rate, loss, smooth_loss) in enumerate(zip(result.rates, result.losses, result.smoothed), 1):
        writer.writerow([i, repr(rate), repr(loss), repr(smooth_loss)])
    csv_path = atomic.write_text(out / CSV, buf.getvalue())
    png_path = lr_find_plot(result, out / PNG)
    result.files = [Path(csv_path), Path(png_path)]
