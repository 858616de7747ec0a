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
    assert "validation" in housing and "15.5000" in housing and "3.2500" in housing
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
