"""`evaluate RUN` of a streamed run reads the prepared rows its training kept (`.cache/<split>.bin`),
not the source file again, while the file is the one training read (issue 25)."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.data.stream import keep as K
from nettrain.data.stream import path as P
from nettrain.data.stream import progress as PR
from nettrain.store import rundir
from tests.helpers import mixed_csv, regression_csv

runner = CliRunner()
LOUD = {PR.MODE_ENV: "plain", PR.EVERY_ENV: "0"}   # every pass says so on stderr

CONFIG = """
    data: {source: r.csv, target: y, stream: auto}
    model: {layers: [{type: Dense, units: 4}]}
    training: {epochs: 1, batch_size: 32}
"""


@pytest.fixture(scope="module")
def streamed_run(tmp_path_factory):
    """A run that streamed `r.csv` under data.stream: auto, with a memory budget it does not fit."""
    folder = tmp_path_factory.mktemp("read_once")
    regression_csv(folder / "r.csv", n=400)
    (folder / "c.yaml").write_text(textwrap.dedent(CONFIG))
    run = folder / "run"
    result = runner.invoke(app, ["fit", str(folder / "c.yaml"), "--run-dir", str(run), "--quiet"],
                           env={P.MEMORY_ENV: "1kB", **LOUD})
    assert result.exit_code == 0, result.output
    return run


def evaluate(run, *args, env=None):
    return runner.invoke(app, ["evaluate", str(run), "--json", *args], env={**LOUD, **(env or {})})


@pytest.mark.slow
def test_auto_streamed_and_recorded_the_decision(streamed_run):
    data = json.loads((streamed_run / "run.json").read_text())["data"]
    decision = data["stream_decision"]
    assert data["stream"] is True and decision["stream"] is True
    assert decision["available_bytes"] == 1024 and decision["estimate"]["rows"] == 400
    assert "more than half of the 1.0 kB" in decision["why"]


@pytest.mark.slow
def test_training_keeps_the_evaluation_rows_described(streamed_run):
    cache = streamed_run / rundir.CACHE
    assert sorted(p.name for p in cache.iterdir()) == ["test.bin", "test.json", "validation.bin", "validation.json"]
    meta = json.loads((cache / "test.json").read_text())
    rows = json.loads((streamed_run / "run.json").read_text())["data"]["rows"]
    assert meta["format"] == K.FORMAT and meta["rows"] == rows["test"]
    assert meta["files"][0]["path"] == str((streamed_run.parent / "r.csv").resolve())


@pytest.mark.slow
def test_evaluate_reads_the_kept_rows_and_gives_the_final_metrics(streamed_run):
    result = evaluate(streamed_run)
    assert result.exit_code == 0, result.output
    assert "first pass" not in result.stderr          # the file was not parsed again
    report = json.loads(result.stdout)
    final = json.loads((streamed_run / "metrics.json").read_text())["test"]
    for name, value in final.items():
        assert report["keras_metrics"][name] == pytest.approx(value, rel=1e-5), name
    # without the kept rows: the file is read again, for the same numbers
    moved = streamed_run.parent / "kept"
    (streamed_run / rundir.CACHE).rename(moved)
    try:
        again = evaluate(streamed_run)
        assert again.exit_code == 0, again.output
        assert "first pass over" in again.stderr
        assert json.loads(again.stdout)["keras_metrics"] == report["keras_metrics"]
    finally:
        moved.rename(streamed_run / rundir.CACHE)


@pytest.mark.slow
def test_a_changed_file_is_read_again_and_a_different_one_is_an_error(streamed_run):
    source = streamed_run.parent / "r.csv"
    before = source.stat()
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))   # touched: the same bytes
    result = evaluate(streamed_run)
    assert result.exit_code == 0, result.output
    assert "changed since training (its modification time changed); reading the data again" in result.stderr
    assert "first pass over" in result.stderr
    text = source.read_text()
    source.write_text(text + text.splitlines()[-1] + "\n")                  # one row more: other data
    try:
        result = evaluate(streamed_run)
        assert result.exit_code == 2
        assert "its size went from" in result.stderr and "the data changed since training" in result.stderr
    finally:
        source.write_text(text)


def test_kept_rows_are_bounded_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv(K.KEEP_ENV, "10MB")
    assert K.keep_limit() == 10 << 20
    monkeypatch.setenv(K.KEEP_ENV, "0")
    assert K.keep_limit() == 0
    monkeypatch.delenv(K.KEEP_ENV)
    assert K.keep_limit() == K.KEEP_BYTES
    assert K.kept_rows(tmp_path, "test") == (None, None)                  # none kept
    (tmp_path / "test.bin").write_bytes(b"x")
    (tmp_path / "test.json").write_text("{not json")
    kept, why = K.kept_rows(tmp_path, "test")
    assert kept is None and "cannot be read" in why


@pytest.mark.slow
def test_no_rows_kept_when_the_limit_is_zero_or_inputs_are_text(tmp_path):
    regression_csv(tmp_path / "r.csv", n=300)
    (tmp_path / "c.yaml").write_text(textwrap.dedent(CONFIG).replace("stream: auto", "stream: true"))
    result = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "a"), "--quiet"],
                           env={K.KEEP_ENV: "0"})
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "a" / rundir.CACHE).exists()
    mixed_csv(tmp_path / "m.csv", n=300)    # a categorical input: prepared rows of text are not cached
    (tmp_path / "m.yaml").write_text("data: {source: m.csv, target: label, stream: true}\n"
                                     "model: {layers: [{type: Dense, units: 4}]}\ntraining: {epochs: 1}\n")
    result = runner.invoke(app, ["fit", str(tmp_path / "m.yaml"), "--run-dir", str(tmp_path / "b"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "b" / rundir.CACHE).exists()
