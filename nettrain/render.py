"""How the command line shows a result: one JSON rule, tables through `nettrain.report`.

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
    """`fit`/`retrain`: the metrics table and run directory were printed as training ended; with
    --json the one object (run_dir, files, metrics per split)."""
    if as_json:
        print_json(result.to_json())


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
    from nettrain.lifecycle.evaluate import KFoldResult, print_kfold_result, print_result

    (print_kfold_result if isinstance(result, KFoldResult) else print_result)(result)


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
