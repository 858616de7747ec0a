"""k-fold cross-validation: one complete run per fold, mean and std of every metric."""

import json
import statistics

import pytest

pytestmark = pytest.mark.slow


def test_kfold_runs_each_fold_and_reports_mean_and_std(kfold_run):
    """The session's shared 3-fold run (tests/conftest.py): 150 rows, 30 of them held out for the test."""
    run = kfold_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["folds"]) == 3
    vals = [f["validation"]["accuracy"] for f in metrics["folds"]]
    assert abs(metrics["mean"]["validation"]["accuracy"] - sum(vals) / 3) < 1e-9
    assert metrics["std"]["validation"]["accuracy"] == pytest.approx(statistics.stdev(vals), abs=1e-9)  # ddof 1
    assert "test" in metrics["mean"]
    for i in (1, 2, 3):
        assert (run / f"fold-{i}" / "model.h5").is_file()
        fold_run = json.loads((run / f"fold-{i}" / "run.json").read_text())
        assert fold_run["fold"] == i and fold_run["status"] == "completed"
    rows = [json.loads((run / f"fold-{i}" / "run.json").read_text())["data"]["rows"] for i in (1, 2, 3)]
    assert {r["test"] for r in rows} == {30}
    # every non-test row validates in exactly one fold and trains in the two others
    assert sum(r["validation"] for r in rows) == 120
    assert all(r["train"] + r["validation"] == 120 for r in rows)
    out = (run.parent / "fit-output.txt").read_text()  # what `fit --quiet` printed on stdout
    assert "mean ± std" in out and out.rstrip().endswith(f"run directory: {run}")
    # the folds' headers, epoch lines and notices are on stderr with the rest of the progress
    assert "fold 1/3" not in out and "epoch 1/2" not in out and "best epoch" not in out
