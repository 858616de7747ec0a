"""`data.stream: auto` decides from an estimate of what reading the data whole would cost (issue 25)."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config.loader import load_config
from nettrain.data import stream as S
from nettrain.data.stream import path as P

runner = CliRunner()


def numbers_csv(path, rows: int, cols: int = 6, text: bool = False):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, cols)), columns=[f"x{i}" for i in range(cols)])
    if text:
        frame["word"] = rng.choice(["alpha", "beta", "gamma"], size=rows)
    frame["y"] = rng.normal(size=rows)
    frame.to_csv(path, index=False)
    return path


def test_estimate_counts_a_small_file_and_extrapolates_a_large_one(tmp_path):
    small = S.estimate({"source": str(numbers_csv(tmp_path / "s.csv", 300))})
    assert small.exact and small.rows == 300 and small.columns == 7
    assert small.value_bytes == P.NUMBER_BYTES and small.memory == 300 * 7 * P.NUMBER_BYTES
    big = S.estimate({"source": str(numbers_csv(tmp_path / "b.csv", 60_000))})   # ~1.2 MB: more than the sample
    assert (tmp_path / "b.csv").stat().st_size > P.SAMPLE_BYTES
    assert not big.exact and abs(big.rows - 60_000) < 0.05 * 60_000
    assert "about" in big.describe() and "x 7 columns" in big.describe()
    words = S.estimate({"source": str(numbers_csv(tmp_path / "w.csv", 300, text=True))})
    assert words.value_bytes > P.NUMBER_BYTES   # a text value costs more than a number


def test_estimate_of_compressed_and_parquet_files(tmp_path):
    frame = pd.read_csv(numbers_csv(tmp_path / "a.csv", 50_000))
    frame.to_csv(tmp_path / "a.csv.gz", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    gz = S.estimate({"source": str(tmp_path / "a.csv.gz")})
    assert abs(gz.rows - 50_000) < 0.1 * 50_000     # from the compressed bytes the sample took
    pq = S.estimate({"source": str(tmp_path / "a.parquet")})
    assert pq.exact and pq.rows == 50_000 and pq.columns == 7


def test_parse_bytes_and_the_memory_budget_variable(monkeypatch):
    assert P.parse_bytes("512MB") == 512 << 20 and P.parse_bytes("2G") == 2 << 30 and P.parse_bytes("1000") == 1000
    assert P.parse_bytes("1.5GiB") == int(1.5 * (1 << 30)) and P.parse_bytes("lots") is None
    monkeypatch.setenv(P.MEMORY_ENV, "3MB")
    assert S.available_memory() == 3 << 20
    monkeypatch.delenv(P.MEMORY_ENV)
    real = S.available_memory()
    assert real is None or real > 0


def test_auto_streams_when_the_estimate_passes_half_the_budget(tmp_path, monkeypatch):
    numbers_csv(tmp_path / "d.csv", 2_000)
    (tmp_path / "c.yaml").write_text("data: {source: d.csv, target: y}\nmodel: {layers: []}\n")
    cfg = load_config(tmp_path / "c.yaml")
    cost = S.estimate({"source": str(tmp_path / "d.csv")}).memory
    monkeypatch.setenv(P.MEMORY_ENV, str(2 * cost + 10))
    whole = S.choose(cfg)
    assert not whole.stream and "less than half" in whole.why and whole.available == 2 * cost + 10
    monkeypatch.setenv(P.MEMORY_ENV, str(2 * cost - 10))
    streamed = S.choose(cfg)
    assert streamed.stream and "more than half" in streamed.why
    record = streamed.to_dict()
    assert record["stream"] is True and record["estimate"]["rows"] == 2_000 and record["estimate"]["bytes"] == cost
    assert record["available_bytes"] == 2 * cost - 10
    # true and false are not weighed
    assert "estimate" not in S.choose(load_config(tmp_path / "c.yaml", ["data.stream=false"])).to_dict()


def test_validate_prints_the_estimate_and_the_decision(tmp_path):
    numbers_csv(tmp_path / "d.csv", 500)
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""
        data: {source: d.csv, target: y}
        model: {layers: [{type: Dense, units: 4}]}
    """))
    small = runner.invoke(app, ["validate", str(tmp_path / "c.yaml")], env={P.MEMORY_ENV: "1kB"})
    assert small.exit_code == 0, small.output
    assert "data: streamed (data.stream: auto; d.csv read whole would take 500 rows x 7 columns" in small.stdout
    assert "more than half of the 1.0 kB of available memory" in small.stdout
    big = runner.invoke(app, ["validate", str(tmp_path / "c.yaml")], env={P.MEMORY_ENV: "1GB"})
    assert "data: in memory (data.stream: auto; d.csv read whole would take" in big.stdout
    assert "less than half of the 1.0 GB" in big.stdout


@pytest.mark.parametrize("text", ["data: {source: 'sklearn:iris', stream: auto}"])
def test_sources_that_cannot_stream_are_read_whole_under_auto(tmp_path, text):
    (tmp_path / "c.yaml").write_text(text + "\nmodel: {layers: []}\n")
    path = S.choose(load_config(tmp_path / "c.yaml"))
    assert not path.stream and path.estimate is None
