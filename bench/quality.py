"""Train every example config in configs/ fully and check its held-out test figure against a goal.

    python bench/quality.py [CONFIG ...]      (make quality)

Each config is trained once, in this process, through `nettrain.api.fit` (quiet, JSON output),
with its own seed; run directories go to a temporary folder that is removed afterwards. The
table prints config, metric, value, goal and pass/fail; the exit code is 1 if any goal is missed
(or a config failed to train), 0 otherwise.

penguins has a relative goal: a scikit-learn HistGradientBoostingClassifier is trained on exactly
the rows nettrain puts in train + validation (same imputation: the split's inputs after
nettrain's missing-value policy; categorical columns ordinal-encoded and declared categorical),
scored on nettrain's test rows, and the network must reach that accuracy minus 0.02.

Regression target scaling (`preprocessing.target`, run after the configs, or alone with
`--regression`): on scikit-learn's bundled diabetes set (442 patients, target 25..346) and on a
generated price table (target in the thousands, nonlinear in its features, a categorical column),
nettrain's default MLP is trained twice, with `preprocessing.target: standard` (the default) and
`none`, and a HistGradientBoostingRegressor on the same train + validation rows; all three are
scored by MAE on the same held-out test rows. Goals: standard beats none, and stays within
REGRESSION_MARGIN of the gradient-boosting MAE.

    python bench/quality.py --regression

The real-tables suite of issue 22 (ten public tables, `init` + `fit` at the defaults against
HistGradientBoosting and a linear model, in the same run) is `bench/tables.py` (`make quality-tables`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONFIGS = ROOT / "configs"
BASELINE_MARGIN = 0.02


@dataclass
class Goal:
    split: str            # which split's metrics ("test"; "mean.validation" for a k-fold run)
    metric: str           # Keras metric name in metrics.json ("loss", "accuracy", ...)
    op: str               # ">=" or "<="
    value: float | None   # None: computed by `baseline`
    label: str = ""       # shown instead of the metric name
    baseline: Callable[[Path], tuple[float, str]] | None = None  # config path -> (value, description)


def hgb_rows(ds):
    """(x_fit, y_fit, x_test, categorical mask) for scikit-learn from a nettrain Dataset: the fit rows are
    nettrain's train + validation rows (after its missing-value policy), the test rows its test rows;
    encoded by the library's `report.baseline.Tabular` (what `nettrain baseline` fits on): categorical
    columns ordinal-encoded (unknown values -1) and declared categorical."""
    import numpy as np

    from nettrain.data import Split
    from nettrain.report.baseline import Tabular

    texts = [c.name for c in ds.schema.other_columns if c.kind == "text"]
    if texts:
        raise ValueError(f"the HGB baseline does not handle text columns ({', '.join(texts)})")
    fit = Split.concat([s for s in (ds.train, ds.validation) if s is not None and len(s)])
    table = Tabular(ds.schema, fit)
    return table.ordinal(fit), np.asarray(fit.y), table.ordinal(ds.test), table.boosting_categorical


def hgb_baseline(config_path: Path) -> tuple[float, str]:
    """Test accuracy of HistGradientBoostingClassifier on nettrain's own split of the config's data."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from nettrain.config import load_config
    from nettrain.data import load_dataset

    cfg = load_config(config_path)
    with warnings_off():
        ds = load_dataset(cfg)
    x_fit, y_fit, x_test, categorical = hgb_rows(ds)
    model = HistGradientBoostingClassifier(categorical_features=categorical, random_state=cfg.seed)
    model.fit(x_fit, y_fit)
    acc = float((model.predict(x_test) == ds.test.y).mean())
    return acc, (f"HGB {acc:.4f} - {BASELINE_MARGIN} (HistGradientBoosting trained on nettrain's "
                 f"{len(y_fit)} train+validation rows, scored on its {len(ds.test)} test rows)")


GOALS: dict[str, Goal] = {
    # noise 5.0: the best possible test MAE is about 5 * sqrt(2 / pi) = 4.0 (the loss is the
    # standardized MSE since preprocessing.target: standard, so the goal is on the MAE)
    "regression": Goal("test", "mae", "<=", 4.8, "test MAE"),
    "iris": Goal("test", "accuracy", ">=", 0.93),
    "iris-team": Goal("test", "accuracy", ">=", 0.9),  # iris through two levels of extends: (configs/team/)
    "iris-sweep": Goal("test", "accuracy", ">=", 0.9),
    "iris-plugins": Goal("test", "accuracy", ">=", 0.9),  # a custom layer, loss and metric from configs/plugins/  # the config as written; its sweep runs with nettrain sweep
    "breast_cancer": Goal("test", "accuracy", ">=", 0.95),
    "blobs": Goal("test", "accuracy", ">=", 0.95),
    "wine": Goal("test", "accuracy", ">=", 0.95),
    "digits": Goal("test", "accuracy", ">=", 0.95),
    "shapes-images": Goal("test", "accuracy", ">=", 0.9),  # an image folder (data/shapes/), a small CNN
    "penguins": Goal("test", "accuracy", ">=", None, baseline=hgb_baseline),
    # The Keras tutorials, on the datasets Keras caches (skipped when the cache file is absent):
    "mnist": Goal("test", "accuracy", ">=", 0.97),
    "imdb": Goal("test", "accuracy", ">=", 0.85),
    "boston_kfold": Goal("mean.validation", "mae", "<=", 3.5, "mean fold validation MAE ($1000s)"),
}


def keras_cache_missing(config_path: Path) -> str | None:
    """The cache file a `keras:NAME` config needs when it is not on this machine, else None."""
    import yaml

    from nettrain.data.keras_sets import keras_cache_dirs

    source = (yaml.safe_load(config_path.read_text()).get("data") or {}).get("source")
    if not (isinstance(source, str) and source.startswith("keras:")):
        return None
    file = f"{source.split(':', 1)[1]}.npz"
    dirs = keras_cache_dirs()
    return None if any((d / file).is_file() for d in dirs) else str(dirs[0] / file)


@contextlib.contextmanager
def warnings_off():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def run_one(path: Path, runs: Path, log: io.StringIO) -> dict:
    from nettrain import api

    stem = path.stem
    goal = GOALS.get(stem)
    row = {"config": stem, "metric": "-", "value": "-", "goal": "(no goal)", "result": "-", "note": ""}
    if goal is not None:
        row["metric"] = goal.label or f"{goal.split} {goal.metric}"
        row["goal"] = f"{goal.op} baseline - {BASELINE_MARGIN}" if goal.baseline else f"{goal.op} {goal.value:g}"
    missing = keras_cache_missing(path)
    if missing:
        row.update(result="skip", note=f"needs {missing} (the Keras dataset cache; nettrain does not download)")
        return row
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log), warnings_off():
            result = api.fit(path, run_dir=runs / stem, quiet=True, json_output=True)
    except BaseException as e:  # noqa: BLE001  (a config that cannot train is a missed goal)
        if isinstance(e, KeyboardInterrupt):
            raise
        row.update(result="FAIL", note=f"{type(e).__name__}: {e}".splitlines()[0][:200])
        log.write(traceback.format_exc())
        row["seconds"] = time.perf_counter() - start
        return row
    row["seconds"] = time.perf_counter() - start
    row["epochs"] = result.epochs_done
    if goal is None:
        test = result.metrics.get("test", {})
        if test:
            name = "accuracy" if "accuracy" in test else "loss"
            row.update(metric=f"test {name}", value=f"{test[name]:.4f}")
        return row
    target, note = goal.value, ""
    if goal.baseline is not None:
        try:
            base, note = goal.baseline(path)
        except Exception as e:  # noqa: BLE001
            row.update(result="FAIL", note=f"baseline failed: {type(e).__name__}: {e}")
            log.write(traceback.format_exc())
            return row
        target = base - BASELINE_MARGIN
    split_metrics = result.metrics
    for part in goal.split.split("."):
        split_metrics = split_metrics.get(part, {})
    value = split_metrics.get(goal.metric)
    if goal.baseline is not None:
        row["goal"] = f"{goal.op} {target:.4f}"
    row["note"] = note
    if value is None or not math.isfinite(value):
        row.update(value=str(value), result="FAIL",
                   note=f"no finite {goal.split} {goal.metric} in metrics {sorted(result.metrics)}")
        return row
    ok = value >= target if goal.op == ">=" else value <= target
    row.update(value=f"{value:.4f}", result="pass" if ok else "FAIL")
    return row


# ------------------------------------------------------------------ regression: target scaling

# nettrain's default MLP (target standard) must reach the gradient-boosting MAE times this.
REGRESSION_MARGIN = 1.10


def price_table(path: Path, n: int = 4000, seed: int = 0) -> Path:
    """A generated housing-price table: price (in the thousands: mean about 4300, standard deviation
    about 2000) nonlinear in living area, age, lot and rooms, multiplied by a neighbourhood factor (a
    categorical column), with 8% multiplicative noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    area = rng.lognormal(np.log(1800), 0.35, n)                        # square feet
    rooms = np.clip(np.round(area / 550 + rng.normal(0, 0.8, n)), 1, 8)
    age = rng.uniform(0, 90, n)
    hood = rng.choice(["harbor", "hills", "center", "mill", "fields"], n, p=[0.15, 0.2, 0.25, 0.2, 0.2])
    factor = pd.Series(hood).map({"harbor": 1.8, "hills": 1.4, "center": 1.2, "mill": 0.85, "fields": 0.7})
    lot = rng.gamma(2.0, 2500, n)                                      # square feet of land
    value = (0.55 * area ** 1.1 * (1 - 0.45 * (1 - np.exp(-age / 30))) + 60 * np.sqrt(lot)
             + 80 * np.maximum(rooms - 3, 0) - 40 * np.maximum(rooms - 5, 0) ** 2)
    price = value * factor.to_numpy() * rng.lognormal(0, 0.08, n) / 1.5
    pd.DataFrame({"area": area.round(0), "rooms": rooms, "age": age.round(1), "lot": lot.round(0),
                  "hood": hood, "price": price.round(1)}).to_csv(path, index=False)
    return path


REGRESSION_SETS = {
    # name: (source or None for the generated table, target, epochs)
    "diabetes": ("sklearn:diabetes", None, 200),
    "prices": (None, "price", 100),
}


def regression_config(folder: Path, name: str, target_mode: str) -> Path:
    """nettrain's defaults (one Dense(64, relu), adam 0.001, batch 32, mse) with the split, the epochs
    and early stopping on val_loss (patience 20, best weights), target scaling as asked."""
    source, target, epochs = REGRESSION_SETS[name]
    if source is None:
        source = str(price_table(folder / f"{name}.csv"))
    data = f"{{source: {source}" + (f", target: {target}" if target else "")
    data += ", split: {test: 0.2, validation: 0.15}}"
    path = folder / f"{name}-{target_mode}.yaml"
    path.write_text(f"""name: {name}-{target_mode}
seed: 42
data: {data}
preprocessing: {{target: {target_mode}}}
training: {{epochs: {epochs}, metrics: [mae]}}
callbacks: {{early_stopping: {{patience: 20, restore_best_weights: true}}}}
""")
    return path


def regression_comparison(runs: Path, log: io.StringIO) -> list[dict]:
    """One row per regression set: test MAE of nettrain (standard, none) and of HGB on the same rows."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor

    from nettrain import api
    from nettrain.config import load_config
    from nettrain.data import load_dataset

    rows = []
    for name in REGRESSION_SETS:
        print(f"training {name}: target standard, none, gradient boosting ...", file=sys.stderr, flush=True)
        row: dict = {"set": name}
        start = time.perf_counter()
        try:
            with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log), warnings_off():
                paths = {mode: regression_config(runs, name, mode) for mode in ("standard", "none")}
                for mode, path in paths.items():
                    result = api.fit(path, run_dir=runs / f"{name}-{mode}", quiet=True, json_output=True)
                    row[mode] = float(result.metrics["test"]["mae"])
                    row[f"{mode}_epochs"] = result.epochs_done
                cfg = load_config(paths["standard"])
                ds = load_dataset(cfg)
                x_fit, y_fit, x_test, categorical = hgb_rows(ds)
                hgb = HistGradientBoostingRegressor(categorical_features=categorical, random_state=cfg.seed)
                hgb.fit(x_fit, y_fit)
                row["hgb"] = float(np.mean(np.abs(hgb.predict(x_test) - ds.test.y)))
                y = np.asarray(ds.test.y, dtype=np.float64)
                row["rows"] = f"{len(y_fit)}/{len(y)}"
                row["target"] = f"{np.mean(np.concatenate([y_fit, y])):.0f} ± {np.std(np.concatenate([y_fit, y])):.0f}"
        except Exception as e:  # noqa: BLE001  (a set that cannot train is a missed goal)
            row.update(result="FAIL", note=f"{type(e).__name__}: {e}".splitlines()[0][:200])
            log.write(traceback.format_exc())
            rows.append(row)
            continue
        row["seconds"] = time.perf_counter() - start
        ok = row["standard"] < row["none"] and row["standard"] <= REGRESSION_MARGIN * row["hgb"]
        row["result"] = "pass" if ok else "FAIL"
        rows.append(row)
    return rows


def print_regression_table(rows: list[dict]) -> None:
    heads = ["set", "train+val/test", "target", "MAE standard", "MAE none", "MAE HGB", "standard/HGB",
             "epochs", "result", "seconds"]

    def num(r, key):
        return f"{r[key]:.2f}" if key in r else "-"

    cells = [[r["set"], r.get("rows", "-"), r.get("target", "-"), num(r, "standard"), num(r, "none"), num(r, "hgb"),
              f"{r['standard'] / r['hgb']:.3f}" if "standard" in r and "hgb" in r else "-",
              f"{r.get('standard_epochs', '-')}/{r.get('none_epochs', '-')}", r.get("result", "-"),
              f"{r.get('seconds', 0):.1f}"] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    print("regression target scaling (preprocessing.target), MAE on the same held-out test rows; goal: "
          f"standard < none and standard <= {REGRESSION_MARGIN:g} x HGB")
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.rjust(w) if 3 <= i <= 7 or i == 9 else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))))
    for r in rows:
        if r.get("note"):
            print(f"{r['set']}: {r['note']}")


def print_table(rows: list[dict]) -> None:
    heads = ["config", "metric", "value", "goal", "result", "epochs", "seconds"]
    cells = [[str(r.get("config")), str(r.get("metric")), str(r.get("value")), str(r.get("goal")),
              str(r.get("result")), str(r.get("epochs", "-")), f"{r.get('seconds', 0):.1f}"] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    right = {2, 5, 6}

    def line(values):
        return "  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))

    print(line(heads))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line(c))
    notes = [(r["config"], r["note"]) for r in rows if r.get("note")]
    if notes:
        print()
        for name, note in notes:
            print(f"{name}: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, help="configs to check (default: configs/*.yaml)")
    parser.add_argument("--keep", type=Path, default=None, help="write run directories here instead of a temp dir")
    parser.add_argument("--verbose", action="store_true", help="show each run's training log")
    parser.add_argument("--regression", action="store_true",
                        help="only the regression target-scaling comparison (diabetes, generated prices)")
    args = parser.parse_args(argv)
    paths = [] if args.regression else [p.resolve() for p in args.configs] or sorted(CONFIGS.glob("*.yaml"))
    if not paths and not args.regression:
        print(f"no configs in {CONFIGS}", file=sys.stderr)
        return 1

    total = time.perf_counter()
    rows, regression = [], []
    with contextlib.ExitStack() as stack:
        runs = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nettrain-quality-")))
        runs.mkdir(parents=True, exist_ok=True)
        for path in paths:
            print(f"training {path.name} ...", file=sys.stderr, flush=True)
            log = io.StringIO()
            row = run_one(path, runs, log)
            rows.append(row)
            if args.verbose or row["result"] == "FAIL":
                sys.stderr.write(log.getvalue())
        if args.regression or not args.configs:  # the comparison runs with the default set of configs
            log = io.StringIO()
            (runs / "regression").mkdir(exist_ok=True)
            regression = regression_comparison(runs / "regression", log)
            if args.verbose or any(r.get("result") == "FAIL" for r in regression):
                sys.stderr.write(log.getvalue())
    failed = [r["config"] for r in rows if r["result"] == "FAIL"]
    failed += [f"regression:{r['set']}" for r in regression if r.get("result") == "FAIL"]
    if rows:
        print()
        print_table(rows)
    if regression:
        print()
        print_regression_table(regression)
    elapsed = time.perf_counter() - total
    checked = len(rows) + len(regression)
    print()
    print(f"{checked - len(failed)}/{checked} checks met their goal in {elapsed:.0f} s"
          + (f"; missed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
