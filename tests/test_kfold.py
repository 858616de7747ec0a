"""k-fold cross-validation: one complete run per fold, mean and std of every metric."""

import json
import textwrap

from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import mixed_csv

runner = CliRunner()


def test_kfold_runs_each_fold_and_reports_mean_and_std(tmp_path):
    mixed_csv(tmp_path / "mixed.csv", n=150)
    cfg = tmp_path / "k.yaml"
    cfg.write_text(textwrap.dedent("""
        data: {source: mixed.csv, target: label, split: {folds: 3, test: 0.2}}
        model: {layers: [{type: Dense, units: 8, activation: relu}]}
        training: {epochs: 2, metrics: [accuracy]}
    """))
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(cfg), "--run-dir", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["folds"]) == 3
    vals = [f["validation"]["accuracy"] for f in metrics["folds"]]
    assert abs(metrics["mean"]["validation"]["accuracy"] - sum(vals) / 3) < 1e-9
    assert metrics["std"]["validation"]["accuracy"] >= 0
    assert "test" in metrics["mean"]
    for i in (1, 2, 3):
        assert (run / f"fold-{i}" / "model.h5").is_file()
        fold_run = json.loads((run / f"fold-{i}" / "run.json").read_text())
        assert fold_run["fold"] == i and fold_run["status"] == "completed"
    rows = [json.loads((run / f"fold-{i}" / "run.json").read_text())["data"]["rows"]["validation"] for i in (1, 2, 3)]
    assert sum(rows) >= 110  # the folds together cover the 120 non-test rows (within rounding)
    assert "mean ± std" in result.stdout
