"""How the command line shows a result: one JSON rule, tables through `nettrain.report` (fit's and
evaluate's are put together here from `report.tables`).

`nettrain.api` returns result objects and never prints; `cli.py` hands each one to the `show_*`
function of its command. Results go to stdout; notes about them (an unreadable run.json, a sweep's
gates) go to stderr. Every `--json` is one line written by `print_json`.

Nothing here imports TensorFlow: the report modules are imported inside the functions that draw.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from nettrain.store.atomic import finite


def json_text(obj: Any) -> str:
    """The one JSON rule: one line, NaN and infinities as null (never invalid JSON), paths and
    other objects as their text."""
    return json.dumps(finite(obj), allow_nan=False, default=str)


def print_json(obj: Any) -> None:
    """`obj` as one JSON line on stdout."""
    sys.stdout.write(json_text(obj) + "\n")
    sys.stdout.flush()


def note(line: str) -> None:
    """A line about a result on stderr (stdout holds only results)."""
    sys.stderr.write(line + "\n")


def show_fit(result, as_json: bool) -> None:
    """`fit`/`retrain`: the final metrics table (a k-fold run's refit model's first, when it trained)
    and the `run directory:` line, or with --json the one object (run_dir, files, metrics per split;
    the run directory was named on stderr as training ended). A worker of a cluster shows nothing
    but its JSON: the run and its table are the chief's."""
    baseline = getattr(result, "baseline", None)  # fit --baseline
    if as_json:
        out = result.to_json()
        if baseline is not None:
            out["baseline"] = baseline.to_dict()
        print_json(out)
        return
    run_dir = getattr(result, "run_dir", None)
    if run_dir is None:
        return
    from nettrain.report.tables import make_console, metrics_table, print_metrics, print_table

    console = make_console()
    refit = getattr(result, "refit", None)
    if refit is not None:
        print_metrics(refit, console, title="Ensemble model" if getattr(result, "ensemble", False) else "Refit model")
    if baseline is None:
        print_metrics(result.metrics, console)
    else:
        print_table(console, metrics_table(result.metrics, others=baseline_models(baseline, network=False)))
        _baseline_notes(baseline)
    sys.stdout.write(f"run directory: {run_dir}\n")


# How the tables name the models of `nettrain baseline` (the JSON keys name them as report.baseline does).
def baseline_models(result, network: bool = True) -> dict[str, dict[str, dict[str, float]]]:
    """{label: {split: {metric: value}}} of a `BaselineResult`'s models (the network's first, unless
    not `network`), labelled by their estimator: `network`, `HistGradientBoosting`, `LogisticRegression`."""
    out = {}
    for model in result.models:
        if model.name == "network":
            if network:
                out["network"] = model.metrics
            continue
        label = model.estimator.removesuffix("Classifier").removesuffix("Regressor")
        out[label + (" (failed)" if model.error else "")] = model.metrics
    return out


def _baseline_notes(result) -> None:
    for line in result.notes:
        note(f"baseline: {line}")
    for model in result.models:
        if model.error:
            note(f"baseline: {model.estimator} could not be fitted: {model.error}")


def show_baseline(result, as_json: bool) -> None:
    """`baseline`: what was fitted on which rows, one table (per metric a row per model, a column per
    split), the file written; the notes on stderr. Or with --json one object."""
    if as_json:
        _baseline_notes(result)
        print_json(result.to_dict())
        return
    from nettrain.report.tables import baseline_table, make_console, print_table

    console = make_console()
    rows = ", ".join(f"{split} {n}" for split, n in result.rows.items())
    what = str(result.run_dir or result.config)
    fitted = result.rows.get(result.fit_on, 0)
    console.print(f"baselines for {what} ({result.task}, seed {result.seed}): fitted on the {fitted} {result.fit_on} "
                  f"rows; scored on {rows}", markup=False, soft_wrap=True)
    print_table(console, baseline_table(result.metrics, baseline_models(result)))
    if result.file is not None:
        console.print(f"wrote {result.file}", markup=False, soft_wrap=True)
    _baseline_notes(result)


def evaluate_json(result) -> dict[str, Any]:
    """`evaluate --json`: the evaluation's own keys (`metrics` of the measured rows, `split`, ...)
    and, as in fit's JSON, `run_dir`, `files` and the metrics under the split's name (`test`, ...;
    not with --data, whose rows are no split of the run)."""
    out = result.to_dict()
    out.setdefault("run_dir", None)
    out.setdefault("files", [])
    if result.split:
        out[result.split] = out["metrics"]
    return out


def show_evaluate(result, as_json: bool) -> None:
    """`evaluate`: the metric tables (per fold for a k-fold run), or one JSON object."""
    if as_json:
        print_json(evaluate_json(result))
        return
    from nettrain.lifecycle.evaluate import KFoldResult

    (_kfold_evaluation if isinstance(result, KFoldResult) else _evaluation)(result)


def _evaluation(result) -> None:
    """An `EvalResult`: what was measured, the metrics, for a classifier the per-class report and the
    confusion matrix, the gates and the file written."""
    from nettrain.report.tables import (classification_report_table, confusion_matrix_table, make_console,
                                        metrics_table, print_table)

    console = make_console()
    where = f"split '{result.split}'" if result.split else result.data
    epoch = f" (epoch {result.epoch})" if result.epoch else ""
    if result.restored:
        epoch = (f" (epoch {result.epoch}: the best, its weights restored by early stopping; trained "
                 f"{result.epochs_done} epochs)")
    if result.note:
        console.print(result.note, markup=False, soft_wrap=True)
    console.print(f"evaluated {result.model_path}{epoch} on {where}: {result.rows} rows", markup=False, soft_wrap=True)
    print_table(console, metrics_table({result.name: result.metrics}, title="Metrics"))
    if result.report is not None:
        print_table(console, classification_report_table(result.report))
        print_table(console, confusion_matrix_table(result.confusion_matrix, result.class_names))
    for gate in result.gates:
        console.print(f"gate: {gate.describe()}", markup=False)
    if result.eval_file is not None:
        console.print(f"wrote {result.eval_file}", markup=False, soft_wrap=True)


def _kfold_evaluation(result) -> None:
    """A `KFoldResult`: the metrics per fold, their mean ± std, the gates (on the mean) and the files."""
    from nettrain.report.tables import make_console, metrics_table, print_table

    console = make_console()
    console.print(f"{result.note}: {', '.join(str(f.rows) for f in result.folds)} rows", markup=False,
                  soft_wrap=True)
    per_fold = {f"fold-{i}": f.metrics for i, f in enumerate(result.folds, start=1)}
    print_table(console, metrics_table(per_fold, title="Per fold"))
    print_table(console, metrics_table({"folds": [f.metrics for f in result.folds], "mean": result.mean,
                                        "std": result.std}, title="Metrics"))
    for gate in result.gates:
        console.print(f"gate (mean over the folds): {gate.describe()}", markup=False)
    for path in result.files:
        console.print(f"wrote {path}", markup=False, soft_wrap=True)


def show_export(result, as_json: bool) -> None:
    """`export`: where it was written, its inputs and outputs, and the check against the run's model
    (notes to stderr), or one JSON object."""
    if as_json:
        print_json(result.to_dict())
        return
    print(f"exported {result.format} to {result.model_path}")
    print(f"inputs: {', '.join(i['name'] for i in result.inputs)}; outputs: {', '.join(result.outputs)}")
    scaled = "" if result.max_scaled_diff == result.max_abs_diff else \
        f" ({result.max_scaled_diff:.3g} of the values' size)"
    print(f"checked on {result.rows_compared} {result.split} rows: max difference {result.max_abs_diff:.3g}{scaled}")
    for line in result.notes:
        note(line)


def show_runs(listing, as_json: bool) -> None:
    """`runs`: the table with its notes, or one JSON array (the note on unreadable run.json files
    then on stderr)."""
    if as_json:
        if listing.note:
            note(listing.note)
        print_json(listing.to_json())
        return
    from nettrain.report.runs import print_listing

    print_listing(listing.root, listing.found, listing.runs, filters=listing.filters, sort=listing.sort,
                  last=listing.last)


def show_compare(result: dict[str, Any], as_json: bool) -> None:
    """`compare`: the side-by-side tables, or one JSON object."""
    if as_json:
        print_json(result)
        return
    from nettrain.report.compare import print_comparison

    print_comparison(result)


def show_sweep(result, as_json: bool) -> None:
    """`sweep`/`sweep-status`: the trial table and where best.yaml is, or one JSON object; then the
    `--fail-under` gates of the best trial, one line each on stderr."""
    if as_json:
        print_json(result.to_json())
    else:
        _sweep_table(result)
    for gate in result.gates:
        note(f"gate: {gate.describe()}")


def _sweep_table(result) -> None:
    from nettrain.report.sweep import print_trials

    best = result.best
    title = (f"study {result.study}: best trial {best['number']}, {result.metric} {best['value']:.6g}"
             if best else f"study {result.study}: no completed trial yet")
    print_trials(result.trials, result.metric, title=title)
    if best and any(str(f).endswith("best.yaml") for f in result.files):
        sys.stdout.write(f"best config: {result.folder / 'best.yaml'} (train it with: nettrain fit "
                         f"{result.folder / 'best.yaml'})\n")


def show_inspect(report, as_json: bool) -> None:
    """`inspect`: the tables and findings, or one JSON object."""
    if as_json:
        print_json(report.to_dict())
        return
    from nettrain.report.inspect import print_report

    print_report(report)


def show_lr_find(result, as_json: bool) -> None:
    """`lr-find`: the suggestion and its reasoning, or one JSON object."""
    if as_json:
        print_json(result.to_dict())
    else:
        sys.stdout.write("\n".join(result.reasoning()) + "\n")
