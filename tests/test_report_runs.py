"""Listing runs (nettrain.report.runs): discovery, order, skipped files, the printed table."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from rich.console import Console

from nettrain.report.runs import collect_runs, headline_metrics, print_runs


def write_run(root: Path, rel: str, mtime: float | None = None, **run) -> Path:
    folder = root / rel
    folder.mkdir(parents=True)
    path = folder / "run.json"
    path.write_text(json.dumps(run))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return folder


def make_runs(root: Path) -> None:
    # mtimes deliberately in the opposite order of `started`: the start time must win
    write_run(root, "iris/20240101-100000", mtime=2_000_000_000, name="iris", status="completed",
              started="2024-01-01T10:00:00", ended="2024-01-01T10:01:00", epochs_done=20, best_epoch=17,
              final_metrics={"train": {"loss": 0.1, "accuracy": 0.97},
                             "validation": {"loss": 0.2, "accuracy": 0.95},
                             "test": {"loss": 0.25, "accuracy": 0.9333}})
    write_run(root, "housing/20240301-090000", mtime=1_000_000_000, name="housing", status="failed",
              started="2024-03-01T09:00:00+00:00", epochs_done=3,
              final_metrics={"train": {"loss": 12.0, "mae": 2.5}, "validation": {"loss": 15.5, "mae": 3.25}})
    write_run(root, "iris/20240201-080000", mtime=1_500_000_000, name="iris", status="interrupted",
              started="2024-02-01T08:00:00Z", epochs_done=5, final_metrics={})
    (root / "broken" / "r1").mkdir(parents=True)
    (root / "broken" / "r1" / "run.json").write_text("{not json")
    (root / "broken" / "r2").mkdir(parents=True)
    (root / "broken" / "r2" / "run.json").write_text("[1, 2, 3]")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")


def plain_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=100)


def test_collect_runs_newest_first_and_counts_unreadable(tmp_path):
    make_runs(tmp_path)
    runs = collect_runs(tmp_path)
    assert [r["relpath"] for r in runs] == [
        "housing/20240301-090000", "iris/20240201-080000", "iris/20240101-100000"]
    assert runs[0]["path"] == tmp_path / "housing" / "20240301-090000"
    assert runs[0]["status"] == "failed"
    assert runs[2]["best_epoch"] == 17
    assert sorted(p.parent.name for p in runs.skipped) == ["r1", "r2"]


def test_collect_runs_falls_back_to_file_time(tmp_path):
    write_run(tmp_path, "old", mtime=1_000_000_000, name="old")
    write_run(tmp_path, "new", mtime=1_700_000_000, name="new", started="not a date")
    assert [r["name"] for r in collect_runs(tmp_path)] == ["new", "old"]


def test_collect_runs_root_itself_a_run(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"name": "solo", "status": "completed"}))
    runs = collect_runs(tmp_path)
    assert [(r["relpath"], r["name"]) for r in runs] == [(".", "solo")]


def test_print_runs_table(tmp_path):
    make_runs(tmp_path)
    console = plain_console()
    listed = print_runs(tmp_path, console)
    out = console.file.getvalue()
    assert "\x1b" not in out
    assert len(listed) == 3
    lines = out.splitlines()
    header = next(ln for ln in lines if ln.strip().startswith("run "))
    for column in ("name", "status", "started", "epochs", "loss", "accuracy", "mae"):
        assert column in header
    assert header.index("loss") < header.index("accuracy")  # loss first

    def line_of(rel: str) -> str:
        return next(ln for ln in lines if rel in ln)

    iris = line_of("iris/20240101-100000")
    # test metrics win over validation ones
    assert "test" in iris and "0.9333" in iris and "0.2500" in iris and "0.9500" not in iris
    assert "completed" in iris and "2024-01-01 10:00:00" in iris and "20 (best 17)" in iris
    housing = line_of("housing/20240301-090000")
    # no test set: validation metrics; a metric the run lacks shows "-"
    assert "validation" in housing and "15.50" in housing and "3.250" in housing
    assert "failed" in housing and housing.split()[-1] == "-"
    # newest first
    assert lines.index(housing) < lines.index(line_of("iris/20240201-080000")) < lines.index(iris)
    assert "2 unreadable run.json files skipped" in out


def test_print_runs_does_not_wrap_off_terminal(tmp_path):
    make_runs(tmp_path)
    console = Console(file=io.StringIO(), force_terminal=False, width=60)
    print_runs(tmp_path, console)
    out = console.file.getvalue()
    # a pipe or a CI log gets whole rows, one per run, however narrow the console says it is
    assert len([ln for ln in out.splitlines() if "/2024" in ln]) == 3
    assert "20 (best 17)" in out and "2024-01-01 10:00:00" in out
    assert console.width == 60


def test_print_runs_empty(tmp_path):
    console = plain_console()
    assert print_runs(tmp_path, console) == []
    assert console.file.getvalue().strip() == f"no runs found under {tmp_path}"


def test_print_runs_only_unreadable(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run.json").write_text("")
    console = plain_console()
    print_runs(tmp_path, console)
    out = console.file.getvalue()
    assert out.startswith(f"no runs found under {tmp_path}") and "1 unreadable run.json file skipped" in out


def test_headline_metrics_shapes():
    assert headline_metrics({"test": {"loss": 1.0}, "validation": {"loss": 2.0}}) == ("test", {"loss": 1.0})
    assert headline_metrics({"train": {"loss": 1.0}, "validation": {"loss": 2.0}}) == ("validation", {"loss": 2.0})
    kfold = {"folds": [{}, {}], "mean": {"loss": 0.3, "val_loss": 0.4, "val_mae": 1.0}, "std": {}}
    assert headline_metrics(kfold) == ("validation (cv mean)", {"loss": 0.4, "mae": 1.0})
    assert headline_metrics(None) == ("", {})
    assert headline_metrics({"test": {"note": "n/a"}}) == ("", {})


# ------------------------------------------------------------------ metric direction, select

import pytest  # noqa: E402

from nettrain.errors import UsageError  # noqa: E402
from nettrain.report.metrics import metric_direction  # noqa: E402
from nettrain.report.runs import metric_choices, run_metric, select_runs, split_metrics  # noqa: E402


@pytest.mark.parametrize("name, direction", [
    ("loss", "min"), ("val_loss", "min"), ("mae", "min"), ("val_mse", "min"), ("rmse", "min"),
    ("mean_absolute_percentage_error", "min"), ("categorical_crossentropy", "min"), ("squared_hinge", "min"),
    ("kl_divergence", "min"), ("poisson", "min"), ("false_positives", "min"), ("test.loss", "min"),
    ("accuracy", "max"), ("val_accuracy", "max"), ("binary_accuracy", "max"), ("top_k_categorical_accuracy", "max"),
    ("auc", "max"), ("val_AUC", "max"), ("precision", "max"), ("recall_macro", "max"), ("f1_weighted", "max"),
    ("fbeta_score", "max"), ("r2", "max"), ("r2_score", "max"), ("mean_iou", "max"), ("true_positives", "max"),
    ("test.accuracy", "max"), ("pearson_correlation", "max"),
    # where the two older rules disagreed: a score named like a loss is still minimized; the
    # similarity/specificity/sensitivity scores are maximized (Keras's own metric direction)
    ("cosine_similarity", "max"), ("specificity_at_sensitivity", "max"), ("sensitivity_at_specificity", "max"),
    ("auc_loss", "min"),
    # a name that says neither: the default, "min" unless asked otherwise
    ("mean", "min"), ("my_metric", "min"),
])
def test_metric_direction(name, direction):
    assert metric_direction(name) == direction


def test_metric_direction_default_for_unknown_names_only():
    assert metric_direction("my_metric", default="max") == "max"
    assert metric_direction("loss", default="max") == "min"
    assert metric_direction("accuracy", default="min") == "max"
    with pytest.raises(ValueError):
        metric_direction("loss", default="up")


def test_split_metrics_and_run_metric():
    plain = {"final_metrics": {"train": {"loss": 1.0}, "validation": {"loss": 2.0, "acc": True},
                               "test": {"loss": 3.0, "note": "x"}}}
    assert split_metrics(plain["final_metrics"]) == {"train": {"loss": 1.0}, "validation": {"loss": 2.0},
                                                     "test": {"loss": 3.0}}
    assert run_metric(plain, "loss") == 3.0  # the listed (test) metric
    assert run_metric(plain, "val_loss") == 2.0
    assert run_metric(plain, "train.loss") == 1.0
    assert run_metric(plain, "validation.acc") is None  # booleans are not metrics
    assert run_metric(plain, "test.accuracy") is None
    kfold = {"final_metrics": {"mean": {"train": {"loss": 0.3}, "validation": {"loss": 0.4}}, "std": {}}}
    assert run_metric(kfold, "val_loss") == 0.4 and run_metric(kfold, "loss") == 0.4
    flat = {"final_metrics": {"mean": {"loss": 0.3, "val_loss": 0.5}}}
    assert run_metric(flat, "val_loss") == 0.5 and run_metric(flat, "train.loss") == 0.3
    assert run_metric({"final_metrics": {"test": {"loss": float("nan")}}}, "loss") is None
    assert metric_choices([plain]) == ["loss", "val_loss", "train.loss", "validation.loss", "test.loss"]


def test_select_runs_filters_takes_last_then_sorts(tmp_path):
    make_runs(tmp_path)
    found = collect_runs(tmp_path)
    rel = lambda runs: [r["relpath"] for r in runs]  # noqa: E731
    assert rel(select_runs(found)) == rel(found)
    assert rel(select_runs(found, filters=["name=iris"])) == ["iris/20240201-080000", "iris/20240101-100000"]
    assert rel(select_runs(found, filters=["best_epoch=17"])) == ["iris/20240101-100000"]
    assert rel(select_runs(found, sort="loss")) == ["iris/20240101-100000", "housing/20240301-090000",
                                                    "iris/20240201-080000"]  # no metrics: last
    assert rel(select_runs(found, last=2, sort="loss")) == ["housing/20240301-090000", "iris/20240201-080000"]
    kept = select_runs(found, filters=["status=failed"])
    assert len(kept) == 1 and len(kept.skipped) == 2  # the unreadable files are still reported
    with pytest.raises(UsageError, match="available: loss, mae, accuracy, val_loss"):
        select_runs(found, sort="auc")
    with pytest.raises(UsageError, match="no run has the field 'stat'"):
        select_runs(found, filters=["stat=failed"])
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        select_runs(found, filters=["failed"])
    with pytest.raises(UsageError, match="--last 0"):
        select_runs(found, last=0)


def test_filter_compares_json_text_of_values(tmp_path):
    write_run(tmp_path, "a", name="a", flag=True, nothing=None, rate=0.5, tags=["x", "y"], started="2024-01-01")
    write_run(tmp_path, "b", name="b", flag=False, rate=1, tags=["z"], started="2024-01-02")
    found = collect_runs(tmp_path)
    names = lambda *f: [r["name"] for r in select_runs(found, filters=list(f))]  # noqa: E731
    assert names("flag=true") == ["a"] and names("flag=false") == ["b"]
    assert names("nothing=null") == ["a"] and names("rate=0.5") == ["a"] and names("rate=1") == ["b"]
    assert names("tags.1=y") == ["a"] and names("tags.0=z") == ["b"] and names("name=A") == []


def test_print_runs_with_selection(tmp_path):
    make_runs(tmp_path)
    console = plain_console()
    print_runs(tmp_path, console, filters=["name=iris"], sort="accuracy", last=5)
    out = console.file.getvalue()
    assert "2 of 3 runs: --filter name=iris, --last 5, sorted by accuracy (highest first)" in out
    lines = out.splitlines()
    assert lines.index(next(ln for ln in lines if "iris/20240101" in ln)) < lines.index(
        next(ln for ln in lines if "iris/20240201" in ln))
