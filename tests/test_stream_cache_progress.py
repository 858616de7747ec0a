"""The pass that builds a stream's cache of prepared rows (the first epoch) says how far it is: rows
read of the file's rows, rows/s, ETA, in plain lines (also under training's live bars), on stderr;
a pass served from the complete cache says nothing, nor does one under `quiet()`, whichever thread
reads."""

import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest

from nettrain.config.loader import load_config
from nettrain.data import chunks as C
from nettrain.data import stream as S
from nettrain.data.stream import progress as PR


@pytest.fixture
def plain_every_chunk(monkeypatch):
    monkeypatch.setenv(PR.MODE_ENV, "plain")
    monkeypatch.setenv(PR.EVERY_ENV, "0")   # a line at each chunk: the test sees them without waiting
    monkeypatch.setattr(C, "CHUNK_ROWS", 200)
    monkeypatch.setattr(C, "BLOCK_BYTES", 4096)


def stream(tmp_path, text_column: bool = False) -> S.StreamDataset:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=1500), "b": rng.normal(size=1500)})
    if text_column:
        frame["c"] = rng.choice(["x", "y"], 1500)
    frame["y"] = frame["a"] * 2 + rng.normal(scale=0.1, size=1500)
    frame.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "c.yaml").write_text(textwrap.dedent("""
        data: {source: d.csv, target: y, stream: true, split: {validation: 0.2, test: 0.1}}
        model: {layers: []}
    """))
    with warnings.catch_warnings(), PR.quiet():
        warnings.simplefilter("ignore")
        return S.load_stream(load_config(tmp_path / "c.yaml"))


def epoch(ds: S.StreamDataset, folder) -> int:
    """One training pass as training reads it (a thread reading ahead), filling the train cache and,
    on the way, the validation one; the rows it gave."""
    train, validation = S.SplitCache(folder / "train.bin"), S.SplitCache(folder / "validation.bin")
    side = [(ds.codes["validation"], validation)]
    rows = sum(len(split) for split in S.read_ahead(ds.reader.rows(ds.codes["train"], cache=train, side=side),
                                                     depth=1))
    assert train.complete and validation.complete
    rows += sum(len(split) for split in S.read_ahead(ds.reader.rows(ds.codes["train"], cache=train), depth=1))
    return rows


def test_the_cache_build_says_rows_read_of_the_file_and_when_it_is_done(tmp_path, plain_every_chunk, capsys):
    ds = stream(tmp_path)
    capsys.readouterr()
    rows = epoch(ds, tmp_path / ".cache")
    assert rows == 2 * ds.rows("train")
    out, err = capsys.readouterr()
    assert out == ""
    lines = [line for line in err.splitlines() if line.startswith("caching the prepared rows of d.csv")]
    assert len(lines) >= 3, err                                  # some while it reads, one when done
    assert "of 1,500 rows (" in lines[0] and "rows/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("caching the prepared rows of d.csv: done, 1,500 rows in ")
    assert sum("done" in line for line in lines) == 1            # the pass from the cache says nothing


def test_quiet_silences_the_cache_build_on_the_reading_thread(tmp_path, plain_every_chunk, capsys):
    ds = stream(tmp_path)
    capsys.readouterr()
    with PR.quiet():
        epoch(ds, tmp_path / ".cache")
    assert "caching" not in capsys.readouterr().err


def test_a_pass_that_caches_nothing_shows_no_cache_build(tmp_path, plain_every_chunk, capsys):
    ds = stream(tmp_path, text_column=True)   # text inputs are never cached
    capsys.readouterr()
    rows = sum(len(split) for split in ds.reader.rows(ds.codes["train"], cache=S.SplitCache(tmp_path / "t.bin")))
    assert rows == ds.rows("train")
    assert "caching" not in capsys.readouterr().err


def test_a_terminal_gets_the_lines_too(tmp_path, plain_every_chunk, monkeypatch, capsys):
    """On a terminal (mode rich) the cache build still writes plain lines: training's own bars are the
    live display then, and Rich prints lines above them."""
    monkeypatch.setenv(PR.MODE_ENV, "rich")
    ds = stream(tmp_path)
    capsys.readouterr()
    epoch(ds, tmp_path / ".cache")
    assert "caching the prepared rows of d.csv: done, 1,500 rows" in capsys.readouterr().err
