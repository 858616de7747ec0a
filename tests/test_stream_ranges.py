"""A CSV parsed in byte ranges by several threads (`data.stream.ranges`) gives the serial reader's
chunks and errors, row for row: plain files, quoted values, files whose quotes cannot be shown safe
(read serially from their start, the rows already given skipped), and every kind of bad file. The
first pass over a file read in ranges gives the dataset the serial reader gives."""

import io
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from nettrain.data import chunks as C
from nettrain.data import stream as S
from nettrain.data.stream import ranges as R
from nettrain.errors import DataError

from tests.test_stream_firstpass import CONTINUOUS, same, table, write

NUMERIC = ["a", "b", "y"]


@pytest.fixture
def small_ranges(monkeypatch):
    """Ranges of 4 kB (blocks of 1 kB) on two threads, whatever the machine's cores."""
    monkeypatch.setattr(C, "BLOCK_BYTES", 1024)
    monkeypatch.setattr(R, "workers", lambda: 2)


def frame(n: int = 3000, seed: int = 0, words=("x", "y", "z")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 100, n), "c": rng.choice(list(words), n),
                         "y": rng.normal(size=n)})


def ranges(path, ahead):
    """What `range_batches` gives (None: the serial reader is to read the file)."""
    return R.range_batches(path, ",", {"parse_options": pcsv.ParseOptions(delimiter=",")}, lambda: iter(()), ahead)


def chunks_both_ways(path, numeric=NUMERIC, columns=None):
    """(serial, in ranges): each the list of (start, frame) or the DataError's text."""
    out = []
    for ahead in (0, 3):
        try:
            out.append([(c.start, c.frame) for c in C.exact_chunks(path, numeric=numeric, columns=columns, rows=300,
                                                                   ahead=ahead)])
        except DataError as e:
            out.append(str(e))
    return out


def assert_same(serial, ranges):
    if isinstance(serial, str) or isinstance(ranges, str):
        assert serial == ranges
        return
    assert [s for s, _ in serial] == [s for s, _ in ranges]
    for (_, x), (_, y) in zip(serial, ranges):
        pd.testing.assert_frame_equal(x, y)


def arrow_csv(f: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    pcsv.write_csv(pa.Table.from_pandas(f, preserve_index=False), out)  # every text value quoted
    return out.getvalue()


LINES = frame()
BAD = LINES.astype({"b": object})
BAD.loc[2400, "b"] = "oops"
SHORT = LINES.to_csv(index=False).splitlines()
SHORT[2500] = SHORT[2500].rsplit(",", 1)[0]
TEXT = LINES.to_csv(index=False).encode()

FILES = {
    "plain": LINES.to_csv(index=False),
    "quoted by pyarrow": arrow_csv(LINES),
    "commas in quotes": frame(words=("x", "y, z")).to_csv(index=False),
    "doubled quotes": frame(words=("x", 'say "hi"')).to_csv(index=False),
    "a value on two lines, late": LINES.assign(c=np.where(np.arange(3000) == 2000, "two\nlines", "x")).to_csv(
        index=False),
    "values on two lines": frame(words=("x", "two\nlines")).to_csv(index=False),
    "crlf": LINES.to_csv(index=False, lineterminator="\r\n"),
    "cr only": LINES.to_csv(index=False, lineterminator="\r"),
    "empty lines": LINES.to_csv(index=False).replace("\n", "\n\n"),
    "no last line end": LINES.to_csv(index=False).rstrip("\n"),
    "bom": "\ufeff" + LINES.to_csv(index=False),
    "missing values": LINES.assign(a=np.where(np.arange(3000) % 7 == 0, np.nan, LINES["a"])).to_csv(index=False),
    "a bad number": BAD.to_csv(index=False),
    "a short line": "\n".join(SHORT) + "\n",
    "not utf-8": TEXT[:len(TEXT) * 3 // 4] + b"\xff" + TEXT[len(TEXT) * 3 // 4:],
}


@pytest.mark.parametrize("name", list(FILES))
def test_ranges_give_the_serial_readers_chunks_and_errors(tmp_path, small_ranges, name):
    text = FILES[name]
    path = tmp_path / "d.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert_same(*chunks_both_ways(path))
    assert_same(*chunks_both_ways(path, numeric=["y"], columns=["y", "c", "a"]))


@pytest.mark.parametrize("name", ["values on two lines", "a value on two lines, late"])
def test_values_over_two_lines_are_read_whole_wherever_a_block_ends(tmp_path, small_ranges, name):
    """A quoted value with a line end in it (pandas writes text so) is one value, also where one of
    the serial reader's blocks ends inside it (before: "Expected 4 columns, got 2")."""
    path = tmp_path / "d.csv"
    path.write_text(FILES[name])
    expected = pd.read_csv(path)
    for ahead in (0, 3):
        got = pd.concat([c.frame for c in C.exact_chunks(path, numeric=NUMERIC, rows=300, ahead=ahead)],
                        ignore_index=True)
        assert len(got) == 3000 and got["c"].tolist() == expected["c"].tolist()
        np.testing.assert_array_equal(got["a"].to_numpy(), expected["a"].to_numpy())


def test_a_tsv_is_cut_at_its_tabs(tmp_path, small_ranges):
    path = tmp_path / "d.tsv"
    path.write_text(frame(words=("x", "y, z")).to_csv(index=False, sep="\t"))
    assert_same(*chunks_both_ways(path))


def test_ranges_are_used_where_shown_safe_else_the_serial_reader(tmp_path, small_ranges, monkeypatch):
    serial = []
    real = R._skipped
    monkeypatch.setattr(R, "_skipped", lambda batches, rows: serial.append(rows) or real(batches, rows))
    for name, used, fallback in [("plain", True, []), ("quoted by pyarrow", True, []), ("cr only", False, []),
                                 ("doubled quotes", True, []), ("a value on two lines, late", True, [1862]),
                                 ("values on two lines", True, [0]), ("empty lines", True, [])]:
        serial.clear()
        path = tmp_path / "d.csv"
        text = FILES[name]
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        assert (ranges(path, 3) is not None) == used, name
        try:
            list(C.exact_chunks(path, numeric=NUMERIC, rows=300, ahead=3))
        except DataError:
            raise AssertionError(name) from None
        assert [rows > 0 for rows in serial] == [rows > 0 for rows in fallback], name


def test_small_compressed_and_one_core_files_are_read_serially(tmp_path, small_ranges, monkeypatch):
    path = tmp_path / "d.csv"
    path.write_text(FILES["plain"])
    assert ranges(path, 3) is not None
    assert ranges(path, 0) is None
    monkeypatch.setattr(C, "BLOCK_BYTES", path.stat().st_size // R.RANGE_BLOCKS)
    assert ranges(path, 3) is None  # fewer than two ranges
    monkeypatch.setattr(C, "BLOCK_BYTES", 1024)
    gz = tmp_path / "d.csv.gz"
    LINES.to_csv(gz, index=False)
    assert ranges(gz, 3) is None
    assert_same(*chunks_both_ways(gz))
    monkeypatch.setattr(R, "workers", lambda: 1)
    assert ranges(path, 3) is None


@pytest.mark.parametrize("data, plain", [
    (b"1,2\n3,4\n", True), (b'"a","b"\n"c",1\n', True), (b'"a,b",1\r\n"",2\n', True), (b'1,"a"', True),
    (b'"a""b",1\n', False), (b'"two\nlines",1\n', False), (b'x"y,1\n', False), (b'"a"b,1\n', False),
    (b'"a",1\n"b\n', False), (b'a\t"b"\n', False),
])
def test_plain_quotes(data, plain):
    assert R.plain_quotes(data, ",") == plain


def test_the_first_pass_over_ranges_is_the_serial_ones(tmp_path, small_ranges, monkeypatch):
    f = table(3000, 7, CONTINUOUS)
    f.loc[::11, "a"] = np.nan
    cfg = write(tmp_path, f, """
        data: {source: d.csv, target: y, stream: true, split: {validation: 0.2, test: 0.1}}
        model: {layers: []}
        preprocessing: {missing: mean}
    """)
    monkeypatch.setattr(C, "CHUNK_ROWS", 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranged = S.load_stream(cfg)
        monkeypatch.setattr(R, "workers", lambda: 1)
        serial = S.load_stream(cfg)
    same(ranged, serial)


def test_a_file_of_wide_lines_is_parsed_in_blocks_of_many_lines(tmp_path):
    """A 256 kB block held 6 lines of a 2,000-column file, and the reader's work per block and column
    made predict of such a file slower than the fit (5.7 s of chunks against 0.9 s in 4 MB blocks).
    A block holds at least ROWS_PER_BLOCK lines (up to MAX_BLOCK_BYTES); a file of usual lines keeps
    BLOCK_BYTES; the rows read are the same either way, serially and in ranges."""
    from nettrain.data import chunks as C

    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.normal(size=(300, 600)), columns=[f"c{i}" for i in range(600)])
    wide.to_csv(tmp_path / "wide.csv", index=False)
    longest = max(len(line) + 1 for line in (tmp_path / "wide.csv").read_text().splitlines()[1:])
    assert C.BLOCK_BYTES < C.block_bytes(tmp_path / "wide.csv") <= C.ROWS_PER_BLOCK * longest
    wide.iloc[:, :5].to_csv(tmp_path / "narrow.csv", index=False)
    assert C.block_bytes(tmp_path / "narrow.csv") == C.BLOCK_BYTES
    (tmp_path / "huge.csv").write_text(",".join(f"c{i}" for i in range(20_000)) + "\n" + "1.5," * 19_999 + "2\n")
    assert C.block_bytes(tmp_path / "huge.csv") == C.MAX_BLOCK_BYTES
    for ahead in (0, 4):
        got = pd.concat(c.frame for c in C.exact_chunks(tmp_path / "wide.csv", numeric=list(wide.columns),
                                                         rows=128, ahead=ahead))
        np.testing.assert_array_equal(got.to_numpy(), pd.read_csv(tmp_path / "wide.csv").to_numpy())
