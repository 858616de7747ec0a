"""Terminal tables: final metrics, per-epoch lines, classification report, confusion matrix.

Rich only (no TensorFlow, no pandas). Every data string goes in as `Text`, never as markup,
so a class or metric name containing brackets prints as written. On a non-terminal, or with
NO_COLOR / CI set, Rich writes plain text without any control characters.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from typing import Any, Iterable, Mapping, Sequence

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from nettrain.store.rundir import NON_METRIC_COLUMNS, SPLITS

NON_METRIC_KEYS = NON_METRIC_COLUMNS  # columns of metrics.csv / Keras logs that are not model metrics


# Off a terminal (a pipe, a file, a CI log) Rich would wrap at 80 columns; rows stay whole instead.
PIPE_WIDTH = 200


def make_console(**kwargs: Any) -> Console:
    """A Console for user output: plain text (no colour, no styles) under NO_COLOR or CI.

    When the output is not a terminal and neither `width` nor the COLUMNS variable says how wide
    it is, the console is PIPE_WIDTH (200) columns wide, so `nettrain runs | cat` and CI logs keep
    each row on one line (tables wider than that print at their natural width, see print_table).
    """
    if os.environ.get("NO_COLOR") or os.environ.get("CI"):
        kwargs.setdefault("color_system", None)
        kwargs.setdefault("no_color", True)
    kwargs.setdefault("highlight", False)
    console = Console(**kwargs)
    if "width" not in kwargs and not os.environ.get("COLUMNS", "").strip() and not console.is_terminal:
        console.width = max(console.width, PIPE_WIDTH)
    return console


def _np_bool_types() -> tuple[type, ...]:
    """numpy's boolean type when numpy is already loaded (never imported for this)."""
    np = sys.modules.get("numpy")
    return (np.bool_,) if np is not None else ()


def format_value(value: Any) -> str:
    """A number as every nettrain table and message shows it: 4 significant digits.

    `0.96667 -> 0.9667`, `0.3 -> 0.3000`, `27.2149 -> 27.21`, `1.2346e-05 -> 1.235e-05`,
    `1234567 -> 1.235e+06`; whole numbers below a million (counts, epochs) as they are;
    `nan`, `inf`, `-` for None, `true`/`false`; anything else as text.
    """
    if value is None:
        return "-"
    if isinstance(value, (bool, _np_bool_types())):
        return str(bool(value)).lower()
    if isinstance(value, numbers.Integral):
        value = int(value)  # numpy integers too
    elif not isinstance(value, float):
        try:
            value = float(value)  # numpy floats
        except (TypeError, ValueError, OverflowError):
            return str(value)
    if isinstance(value, int):
        if abs(value) < 1_000_000:
            return str(value)
        try:
            value = float(value)
        except OverflowError:  # beyond any float: exact digits, same style
            from decimal import Decimal

            return f"{Decimal(value):.3e}"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        value = 0.0  # no "-0.000"
    text = f"{value:#.4g}"  # '#': keep trailing zeros, so a column of values lines up
    mantissa, e, exponent = text.partition("e")
    return mantissa.rstrip(".") + e + exponent


def format_delta(value: Any) -> str:
    """A difference with its sign: `+0.0123`, `-1.500`, `0` for none (format_value otherwise)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return "0"
    text = format_value(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and text != "inf":
        return "+" + text
    return "+inf" if text == "inf" else text


def format_share(value: Any) -> str:
    """A share (0..1) as a percentage with one decimal: `0.9667 -> 96.7%`; `-` when not a number."""
    if value is None or isinstance(value, bool):
        return "-"
    try:
        share = float(value)
    except (TypeError, ValueError, OverflowError):
        return str(value)
    if not math.isfinite(share):
        return format_value(share)
    return f"{share * 100:.1f}%"


def ordered_names(groups: Iterable[Mapping[str, Any]]) -> list[str]:
    """Union of metric names, `loss` first, then in order of first appearance."""
    names: list[str] = []
    for group in groups:
        for name in group:
            if name not in names:
                names.append(name)
    if "loss" in names:
        names.remove("loss")
        names.insert(0, "loss")
    return names


def _is_flat(d: Any) -> bool:
    return isinstance(d, Mapping) and all(not isinstance(v, Mapping) for v in d.values())


def new_table(title: str | Text | None) -> Table:
    title = Text(title) if isinstance(title, str) else title  # never parsed as markup
    return Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)


def split_kfold(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A k-fold `mean`/`std` entry as {column: metrics}.

    Either already by split ({"train": {...}, "validation": {...}}) or flat Keras-style names
    ({"loss": .., "val_loss": ..}), which are separated on the `val_` prefix.
    """
    if not isinstance(summary, Mapping):
        return {}
    if not _is_flat(summary):
        return {k: v for k, v in summary.items() if isinstance(v, Mapping)}
    if any(str(k).startswith("val_") for k in summary):
        train = {k: v for k, v in summary.items() if not str(k).startswith("val_")}
        val = {k[4:]: v for k, v in summary.items() if str(k).startswith("val_")}
        return {k: v for k, v in (("train", train), ("validation", val)) if v}
    return {"cross-validation": summary}


def _column_order(names: Iterable[str]) -> list[str]:
    names = list(names)
    known = [s for s in SPLITS if s in names]
    return known + [n for n in names if n not in known]


def metrics_table(metrics: Mapping[str, Any], title: str | None = "Final metrics",
                  others: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> Table:
    """A table with one row per metric and one column per split.

    Plain shape: `{"train": {"loss": 0.3, ...}, "validation": {...}, "test": {...}}`.
    K-fold shape: `{"folds": [...], "mean": {...}, "std": {...}, "test": {...}}`, shown as
    `mean ± std` columns (plus the test column when the held-out test set was evaluated).
    `others`: other models' metrics of the same shape by their label (fit --baseline's baselines),
    in a section below, one row per model and metric (`accuracy (HistGradientBoosting)`).
    """
    table = new_table(title)
    table.add_column("metric", no_wrap=True)
    columns: list[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]] = []

    if "mean" in metrics:
        means = split_kfold(metrics.get("mean") or {})
        stds = split_kfold(metrics.get("std") or {})
        folds = metrics.get("folds")
        k = f"{len(folds)}-fold " if isinstance(folds, Sequence) and folds else ""
        for name in _column_order(means):
            columns.append((f"{name} ({k}mean ± std)", means[name], stds.get(name, {})))
        for name in SPLITS:
            if name not in means and isinstance(metrics.get(name), Mapping):
                columns.append((name, metrics[name], None))
    else:
        for name in _column_order(k for k, v in metrics.items() if isinstance(v, Mapping)):
            columns.append((name, metrics[name], None))

    for header, _, _ in columns:
        table.add_column(Text(header), justify="right")
    for name in ordered_names(values for _, values, _ in columns):
        row: list[Text] = [Text(str(name))]
        for _, values, std in columns:
            if name not in values:
                row.append(Text("-"))
            elif std is not None and name in std:
                row.append(Text(f"{format_value(values[name])} ± {format_value(std[name])}"))
            else:
                row.append(Text(format_value(values[name])))
        table.add_row(*row)
    for i, (label, by_split) in enumerate((others or {}).items()):
        if i == 0:
            table.add_section()
        for name in ordered_names(v for v in by_split.values() if isinstance(v, Mapping)):
            cells = [Text(format_value((by_split.get(header) or {}).get(name))) for header, _, _ in columns]
            table.add_row(Text(f"{name} ({label})"), *cells)
    return table


def baseline_table(metrics: Sequence[str], models: Mapping[str, Mapping[str, Mapping[str, Any]]],
                   title: str | None = "Baselines") -> Table:
    """One row per model for each metric (a section each), one column per split: `models` is
    {label: {split: {metric: value}}}, the splits in their order, `-` where a model lacks a value."""
    table = new_table(title)
    table.add_column("metric", no_wrap=True)
    table.add_column("model", no_wrap=True)
    splits = _column_order({s for by_split in models.values() for s, v in by_split.items() if isinstance(v, Mapping)})
    for split in splits:
        table.add_column(Text(split), justify="right")
    for i, name in enumerate(metrics):
        if i:
            table.add_section()
        for j, (label, by_split) in enumerate(models.items()):
            cells = [Text(format_value((by_split.get(split) or {}).get(name))) for split in splits]
            table.add_row(Text(str(name) if j == 0 else ""), Text(str(label)), *cells)
    return table


def print_table(console: Console, table: Table) -> None:
    """Print a table; off a terminal (a pipe, a CI log) at its natural width instead of wrapping."""
    if not console.is_terminal:
        natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
        if natural > console.width:
            saved = console.width
            console.width = natural
            try:
                console.print(table)
            finally:
                console.width = saved
            return
    console.print(table)


def print_metrics(metrics: Mapping[str, Any], console: Console | None = None,
                  title: str | None = "Final metrics") -> None:
    print_table(console or make_console(), metrics_table(metrics, title=title))


def epoch_line(epoch: int, epochs: int, logs: Mapping[str, Any], seconds: float) -> str:
    """`epoch 3/20  loss 0.4123  accuracy 0.8750  val_loss 0.4411  val_accuracy 0.8600  lr 0.001  2.1s`."""
    train = [k for k in logs if not k.startswith("val_") and k not in NON_METRIC_KEYS]
    val = [k for k in logs if k.startswith("val_")]
    train.sort(key=lambda k: k != "loss")  # stable: loss first, the rest as logged
    val.sort(key=lambda k: k != "val_loss")
    parts = [f"epoch {epoch}/{epochs}"]
    parts += [f"{k} {format_value(logs[k])}" for k in train + val]
    lr = logs.get("learning_rate", logs.get("lr"))
    if lr is not None:
        try:
            parts.append(f"lr {float(lr):.4g}")
        except (TypeError, ValueError):
            pass
    parts.append(f"{seconds:.1f}s")
    return "  ".join(parts)


REPORT_COLUMNS = ("precision", "recall", "f1-score", "support")


def classification_report_table(report: Mapping[str, Any], title: str | None = "Classification report") -> Table:
    """sklearn's `classification_report(..., output_dict=True)` as a table.

    Per-class rows first, then accuracy (in the f1-score column, as sklearn prints it) and the
    averages.
    """
    table = new_table(title)
    table.add_column("class", no_wrap=True)
    for col in REPORT_COLUMNS:
        table.add_column(col, justify="right")
    summary_keys = ("accuracy", "micro avg", "macro avg", "weighted avg", "samples avg")
    classes = [k for k in report if k not in summary_keys]

    def cells(values: Mapping[str, Any]) -> list[Text]:
        out = [Text(format_value(values.get(c)) if c in values else "-") for c in REPORT_COLUMNS[:3]]
        support = values.get("support")
        out.append(Text("-" if support is None else str(int(round(float(support))))))
        return out

    for name in classes:
        if isinstance(report[name], Mapping):
            table.add_row(Text(str(name)), *cells(report[name]))
    end_section = True
    if "accuracy" in report and not isinstance(report["accuracy"], Mapping):
        total = None
        for avg in ("macro avg", "weighted avg"):
            if isinstance(report.get(avg), Mapping) and "support" in report[avg]:
                total = str(int(round(float(report[avg]["support"]))))
                break
        table.add_section()
        end_section = False
        table.add_row(Text("accuracy"), Text(""), Text(""), Text(format_value(report["accuracy"])),
                      Text(total or ""))
    for avg in summary_keys[1:]:
        if isinstance(report.get(avg), Mapping):
            if end_section:
                table.add_section()
                end_section = False
            table.add_row(Text(avg), *cells(report[avg]))
    return table


def confusion_matrix_table(matrix: Any, class_names: Sequence[Any] | None = None,
                           title: str | None = "Confusion matrix") -> Table:
    """Counts with actual classes as rows and predicted classes as columns; the diagonal in bold."""
    rows = [list(r) for r in (matrix.tolist() if hasattr(matrix, "tolist") else matrix)]
    n = len(rows)
    if any(len(r) != n for r in rows):
        raise ValueError(f"a confusion matrix must be square, got {n} rows of lengths {[len(r) for r in rows]}")
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for a {n}x{n} confusion matrix")
    table = new_table(title)
    table.add_column(Text("actual \\ predicted"), no_wrap=True)
    for name in names:
        table.add_column(Text(name), justify="right")
    for i, (name, row) in enumerate(zip(names, rows)):
        cells = []
        for j, value in enumerate(row):
            text = str(int(value)) if float(value).is_integer() else format_value(value)
            cells.append(Text(text, style="bold" if i == j else ""))
        table.add_row(Text(name), *cells)
    return table
