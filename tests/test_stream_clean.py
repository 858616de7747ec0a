"""`nettrain clean RUN`: a streamed run's kept rows (`.cache/`, its folds' too) are removed, nothing
else; a RUN being written or not a run is exit code 2 and nothing is removed."""

import json
import textwrap

import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.data.stream import progress as PR
from nettrain.store import rundir
from tests.helpers import regression_csv

runner = CliRunner()


def fake_run(folder, folds: int = 0):
    """A run folder with kept rows in `.cache/` (and in each fold's), as training leaves them."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": "completed"}))
    (folder / "model.h5").write_bytes(b"model")
    for where in [folder] + [folder / f"fold-{i}" for i in range(1, folds + 1)]:
        (where / rundir.CACHE).mkdir(parents=True)
        (where / rundir.CACHE / "test.bin").write_bytes(b"\0" * 3000)
        (where / rundir.CACHE / "test.json").write_text("{}")
    return folder


def clean(*runs):
    return runner.invoke(app, ["clean", *map(str, runs)])


def test_clean_removes_the_kept_rows_of_a_run_and_its_folds_only(tmp_path):
    run, other = fake_run(tmp_path / "a", folds=2), fake_run(tmp_path / "b")
    result = clean(run, other, run)   # (a RUN named twice is cleaned once)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{run}: removed 6 files (0.0 MB) of kept rows",
                                          f"{other}: removed 2 files (0.0 MB) of kept rows"]
    assert not list(tmp_path.glob(f"**/{rundir.CACHE}"))
    assert (run / "model.h5").read_bytes() == b"model" and (run / "fold-1").is_dir()
    again = clean(run)
    assert again.exit_code == 0 and again.stdout.strip() == f"{run}: no kept rows"


def test_a_run_being_written_or_no_run_is_exit_2_and_nothing_is_removed(tmp_path):
    run, busy = fake_run(tmp_path / "a"), fake_run(tmp_path / "b")
    with rundir.RunLock(busy):
        result = clean(run, busy)
    assert result.exit_code == 2
    assert f"RUN {busy} is being written by another process" in result.stderr and "Traceback" not in result.output
    assert (run / rundir.CACHE / "test.bin").is_file() and (busy / rundir.CACHE / "test.bin").is_file()
    result = clean(run, tmp_path)
    assert result.exit_code == 2 and f"RUN {tmp_path}: not a run directory (no run.json in it)" in result.stderr
    assert (run / rundir.CACHE / "test.bin").is_file()


@pytest.mark.slow
def test_evaluate_after_clean_reads_the_file_for_the_same_metrics(tmp_path):
    regression_csv(tmp_path / "r.csv", n=400)
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""
        data: {source: r.csv, target: y, stream: true}
        model: {layers: [{type: Dense, units: 4}]}
        training: {epochs: 1, batch_size: 32}
    """))
    run = tmp_path / "run"
    assert runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", str(run), "--quiet"]).exit_code == 0
    env = {PR.MODE_ENV: "plain", PR.EVERY_ENV: "0"}
    kept = runner.invoke(app, ["evaluate", str(run), "--json"], env=env)
    assert kept.exit_code == 0 and "first pass" not in kept.stderr
    assert clean(run).exit_code == 0 and not (run / rundir.CACHE).exists()
    parsed = runner.invoke(app, ["evaluate", str(run), "--json"], env=env)
    assert parsed.exit_code == 0, parsed.output
    assert "first pass over r.csv" in parsed.stderr                 # the file was read again
    a, b = json.loads(kept.stdout)["keras_metrics"], json.loads(parsed.stdout)["keras_metrics"]
    assert a.keys() == b.keys() and all(b[k] == pytest.approx(a[k], rel=1e-5) for k in a)
