"""Terminal tables and epoch lines (nettrain.report.tables)."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from nettrain.report.tables import (
    classification_report_table,
    confusion_matrix_table,
    epoch_line,
    format_value,
    make_console,
    metrics_table,
    print_metrics,
)

METRICS = {
    "test": {"accuracy": 0.87, "loss": 0.51},
    "train": {"loss": 0.3, "accuracy": 0.9},
    "validation": {"accuracy": 0.88, "loss": 0.35, "auc": 0.93},
}


def plain_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=100)


def render(renderable) -> str:
    console = plain_console()
    console.print(renderable)
    return console.file.getvalue()


def row(text: str, first: str) -> list[str]:
    """The cells of the table line whose first cell is `first` (split on runs of spaces)."""
    for line in text.splitlines():
        cells = [c for c in line.strip().split("  ") if c.strip()]
        if cells and cells[0].strip() == first:
            return [c.strip() for c in cells]
    raise AssertionError(f"no row {first!r} in:\n{text}")


def test_metrics_table_rows_columns_and_missing_values():
    text = render(metrics_table(METRICS))
    assert "Final metrics" in text
    header = row(text, "metric")
    assert header == ["metric", "train", "validation", "test"]  # fixed split order, not dict order
    assert row(text, "loss") == ["loss", "0.3000", "0.3500", "0.5100"]
    assert row(text, "accuracy") == ["accuracy", "0.9000", "0.8800", "0.8700"]
    assert row(text, "auc") == ["auc", "-", "0.9300", "-"]
    lines = [ln.strip().split()[0] for ln in text.splitlines() if ln.strip()]
    assert lines.index("loss") < lines.index("accuracy") < lines.index("auc")  # loss first


def test_metrics_table_only_present_splits():
    text = render(metrics_table({"validation": {"mae": 1.5}, "train": {"mae": 1.25, "loss": 2.0}}))
    assert row(text, "metric") == ["metric", "train", "validation"]
    assert "test" not in text
    assert row(text, "loss") == ["loss", "2.000", "-"]


def test_metrics_table_kfold_flat_mean_and_std():
    metrics = {
        "folds": [{"loss": 0.3}, {"loss": 0.31}, {"loss": 0.29}],
        "mean": {"loss": 0.3, "val_loss": 0.4, "val_accuracy": 0.8},
        "std": {"loss": 0.01, "val_loss": 0.02, "val_accuracy": 0.03},
        "test": {"loss": 0.5, "accuracy": 0.7},
    }
    text = render(metrics_table(metrics))
    assert "3-fold mean ± std" in text
    assert row(text, "loss") == ["loss", "0.3000 ± 0.01000", "0.4000 ± 0.02000", "0.5000"]
    assert row(text, "accuracy") == ["accuracy", "-", "0.8000 ± 0.03000", "0.7000"]


def test_metrics_table_kfold_nested_by_split():
    metrics = {"folds": [{}, {}], "mean": {"validation": {"loss": 0.25}}, "std": {"validation": {"loss": 0.05}}}
    text = render(metrics_table(metrics))
    assert "validation (2-fold mean ± std)" in text
    assert row(text, "loss") == ["loss", "0.2500 ± 0.05000"]


def test_metric_names_are_not_markup():
    text = render(metrics_table({"train": {"[bold]weird[/bold]": 1.0}}))
    assert "[bold]weird[/bold]" in text


def test_print_metrics_plain_when_not_a_terminal():
    console = plain_console()
    print_metrics(METRICS, console)
    out = console.file.getvalue()
    assert "0.3500" in out
    assert "\x1b" not in out


@pytest.mark.parametrize("var", ["NO_COLOR", "CI"])
def test_make_console_plain_under_no_color_or_ci(monkeypatch, var):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("CI", raising=False)
    # Control: a forced terminal does get escape codes (the bold header) without the variable ...
    styled = make_console(file=io.StringIO(), force_terminal=True, width=100)
    print_metrics(METRICS, styled)
    assert "\x1b[" in styled.file.getvalue()
    # ... and none with it.
    monkeypatch.setenv(var, "1")
    plain = make_console(file=io.StringIO(), force_terminal=True, width=100)
    print_metrics(METRICS, plain)
    out = plain.file.getvalue()
    assert "0.3500" in out and "\x1b" not in out


def test_epoch_line_format_and_order():
    logs = {"val_accuracy": 0.86, "learning_rate": 0.001, "accuracy": 0.875, "val_loss": 0.4411,
            "loss": 0.41234}
    line = epoch_line(3, 20, logs, 2.1)
    assert line == "epoch 3/20  loss 0.4123  accuracy 0.8750  val_loss 0.4411  val_accuracy 0.8600  lr 0.001  2.1s"
    assert all(ch.isprintable() for ch in line)


def test_epoch_line_without_validation_or_lr():
    line = epoch_line(1, 5, {"mae": 12.5, "loss": 250.0, "epoch": 0, "seconds": 9.0}, 0.04)
    assert line == "epoch 1/5  loss 250.0  mae 12.50  0.0s"
    assert " lr " not in line


def test_epoch_line_odd_values():
    line = epoch_line(2, 2, {"loss": math.nan, "lr": 1e-5}, 10)
    assert line == "epoch 2/2  loss nan  lr 1e-05  10.0s"


@pytest.mark.parametrize("value, text", [
    # 4 significant digits everywhere, trailing zeros kept so a column lines up
    (0.41234, "0.4123"), (0.875, "0.8750"), (0, "0"), (0.0, "0.000"), (-0.0, "0.000"), (1234.5, "1234"),
    (0.96667, "0.9667"), (27.2149, "27.21"), (1.2346e-5, "1.235e-05"), (1.5e-5, "1.500e-05"),
    (2.5e7, "2.500e+07"), (12345.6, "1.235e+04"), (-3.14159, "-3.142"), (0.001, "0.001000"),
    # whole numbers (counts, epochs) stay exact below a million
    (48, "48"), (999_999, "999999"), (1234567, "1.235e+06"), (1234567.0, "1.235e+06"), (10**400, "1.000e+400"),
    (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"), (None, "-"), (True, "true"), ("n/a", "n/a"),
])
def test_format_value(value, text):
    assert format_value(value) == text


REPORT = {
    "cat": {"precision": 1.0, "recall": 0.5, "f1-score": 0.6666667, "support": 2.0},
    "dog": {"precision": 0.6666667, "recall": 1.0, "f1-score": 0.8, "support": 2.0},
    "accuracy": 0.75,
    "macro avg": {"precision": 0.8333333, "recall": 0.75, "f1-score": 0.7333333, "support": 4.0},
    "weighted avg": {"precision": 0.8333333, "recall": 0.75, "f1-score": 0.7333333, "support": 4.0},
}


def test_classification_report_table():
    text = render(classification_report_table(REPORT))
    assert row(text, "class") == ["class", "precision", "recall", "f1-score", "support"]
    assert row(text, "cat") == ["cat", "1.000", "0.5000", "0.6667", "2"]
    assert row(text, "dog") == ["dog", "0.6667", "1.000", "0.8000", "2"]
    assert row(text, "accuracy") == ["accuracy", "0.7500", "4"]
    assert row(text, "macro avg") == ["macro avg", "0.8333", "0.7500", "0.7333", "4"]
    order = [ln.split()[0] for ln in text.splitlines() if ln.strip()]
    assert order.index("dog") < order.index("accuracy") < order.index("macro")


def test_classification_report_table_from_sklearn():
    from sklearn import metrics

    report = metrics.classification_report(["a", "b", "b", "c"], ["a", "b", "c", "c"], output_dict=True,
                                           zero_division=0)
    text = render(classification_report_table(report))
    assert row(text, "b") == ["b", "1.000", "0.5000", "0.6667", "2"]
    assert row(text, "weighted avg")[-1] == "4"


def test_confusion_matrix_table():
    text = render(confusion_matrix_table([[5, 1, 0], [0, 4, 2], [1, 0, 7]], ["setosa", "[v]", "virginica"]))
    assert row(text, "actual \\ predicted") == ["actual \\ predicted", "setosa", "[v]", "virginica"]
    assert row(text, "setosa") == ["setosa", "5", "1", "0"]
    assert row(text, "[v]") == ["[v]", "0", "4", "2"]  # bracketed names printed as written
    assert row(text, "virginica") == ["virginica", "1", "0", "7"]


def test_confusion_matrix_table_numpy_and_default_names():
    import numpy as np

    text = render(confusion_matrix_table(np.array([[3, 0], [1, 2]]), None))
    assert row(text, "0") == ["0", "3", "0"]
    assert row(text, "1") == ["1", "1", "2"]


def test_confusion_matrix_table_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        confusion_matrix_table([[1, 2, 3], [4, 5, 6]], ["a", "b"])
    with pytest.raises(ValueError, match="class names"):
        confusion_matrix_table([[1, 0], [0, 1]], ["a", "b", "c"])


@pytest.mark.parametrize("value, text", [
    (0.9667, "96.7%"), (1, "100.0%"), (0.0005, "0.1%"), (0, "0.0%"), (None, "-"), (math.nan, "nan"),
])
def test_format_share(value, text):
    from nettrain.report.tables import format_share

    assert format_share(value) == text


@pytest.mark.parametrize("value, text", [
    (0.0334, "+0.03340"), (-0.15, "-0.1500"), (0, "0"), (0.0, "0"), (12.0, "+12.00"), (math.inf, "+inf"),
    (-math.inf, "-inf"), (None, "-"),
])
def test_format_delta(value, text):
    from nettrain.report.tables import format_delta

    assert format_delta(value) == text


def test_make_console_is_wide_off_a_terminal(monkeypatch):
    from nettrain.report.tables import PIPE_WIDTH

    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console(file=io.StringIO()).width == PIPE_WIDTH  # a pipe, a file, a CI log
    assert make_console(file=io.StringIO(), width=60).width == 60  # an explicit width wins
    monkeypatch.setenv("COLUMNS", "90")
    assert make_console(file=io.StringIO()).width == 90  # so does the user's COLUMNS


def test_long_rows_stay_whole_in_a_pipe(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console(file=io.StringIO())
    metrics = {"test": {f"metric_number_{i}": i / 7 for i in range(8)}}
    wide = {"validation": metrics["test"], "train": metrics["test"], **metrics}
    print_metrics(wide, console)
    rows = [ln for ln in console.file.getvalue().splitlines() if ln.strip().startswith("metric_number_")]
    assert len(rows) == 8
