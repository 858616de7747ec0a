"""Hostile or damaged input files: data files, the Keras cache, model files, runs trees, predict output.

Every case ends in exit 2 (or a clean DataError/UsageError) whose message names the file, never a
traceback; no user file or run file changes; nothing in a data or model file is ever run as code.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.lib import format as npy_format
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.data import load_dataset, read_table
from nettrain.errors import DataError
from tests.helpers import as_unprivileged, copy_run

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def digest(*paths: Path) -> dict[str, str]:
    """sha256 of every file under `paths` (files or folders): compared before and after a command."""
    out = {}
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and not f.is_symlink())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def assert_clean_exit_2(result, *needles, max_lines: int = 2):
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("error: "), message
    assert len(message.splitlines()) <= max_lines, message
    assert len(message) < 1000, message[:2000]
    for needle in needles:
        assert str(needle) in message, (needle, message)


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def run(mixed_run) -> Path:
    """A tiny 3-class model (1 epoch) on the mixed CSV, shared with other modules: its run directory."""
    return mixed_run


@pytest.fixture(scope="module")
def data(run) -> Path:
    return run.parent / "mixed.csv"


@pytest.fixture
def untouched(run, data):
    """The run and its data must come out of every test byte for byte as they went in."""
    before = digest(run, data)
    yield
    assert digest(run, data) == before


# ============================================================================ 1. no pickle

def npy_bytes(header_shape, descr: str, payload: bytes) -> bytes:
    """An .npy member: a genuine header followed by `payload` (raw data, or a pickle for descr '|O')."""
    import io

    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": header_shape})
    return buf.getvalue() + payload


def write_npz(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in members.items():
            z.writestr(f"{name}.npy", blob)
    return path


def plain_npy(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def keras_home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "khome"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "datasets"


def sequences(n: int, numpy_ints: bool, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=object)
    for i in range(n):
        seq = rng.integers(1, 60, size=3 + i % 5)
        out[i] = list(seq) if numpy_ints else [int(v) for v in seq]
    return out


@pytest.mark.parametrize("name, numpy_ints", [("imdb", True), ("imdb", False), ("reuters", False)])
def test_keras_ragged_sets_load_with_the_restricted_unpickler(tmp_path, monkeypatch, name, numpy_ints):
    d = keras_home(tmp_path, monkeypatch)
    # as Keras stores them: object arrays of int lists, pickled by numpy.savez
    np.savez(d / f"{name}.npz", x_train=sequences(30, numpy_ints), y_train=np.arange(30) % 2,
             x_test=sequences(10, numpy_ints, seed=1), y_test=np.arange(10) % 2)
    ds = load_dataset(load_config(None, data={"data": {"source": f"keras:{name}"}}))
    assert [(c.name, c.kind) for c in ds.schema.columns] == [("text", "text")]
    assert ds.n_rows == 40
    first = ds.train.inputs["text"][0, 0]
    assert isinstance(first, str) and all(tok.isdigit() for tok in first.split())


def _evil_pickles(marker: Path) -> dict[str, bytes]:
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil_array = np.empty(2, dtype=object)
    evil_array[0], evil_array[1] = [1, 2], Evil()
    return {
        # the classic: a bare global call at the top of the stream
        "os.system": f"cos\nsystem\n(V touch {marker}\ntR.".encode(),
        "builtins.exec": f"cbuiltins\nexec\n(Vopen({str(marker)!r}, 'w').close()\ntR.".encode(),
        "builtins.eval": f"cbuiltins\neval\n(V__import__('os').system('touch {marker}')\ntR.".encode(),
        # a genuine numpy object array with a code-running item in the middle of its data
        "inside an array": pickle.dumps(evil_array, protocol=4),
        # numpy's own constructor, asked to build something that is not an array
        "numpy constructor misuse": (b"cnumpy._core.multiarray\n_reconstruct\n(cnumpy\ndtype\n(I0\ntS'b'\ntR."),
    }


EVIL = ["os.system", "builtins.exec", "builtins.eval", "inside an array", "numpy constructor misuse"]


@pytest.mark.parametrize("kind", EVIL)
def test_keras_cache_with_a_malicious_pickle_is_refused_and_nothing_runs(tmp_path, monkeypatch, kind):
    d = keras_home(tmp_path, monkeypatch)
    marker = tmp_path / "PWNED"
    evil = _evil_pickles(marker)[kind]
    write_npz(d / "imdb.npz", {"x_train": npy_bytes((2,), "|O", evil), "y_train": plain_npy(np.array([0, 1]))})
    before = digest(d)
    with pytest.raises(DataError) as info:
        load_dataset(load_config(None, data={"data": {"source": "keras:imdb"}}))
    msg = str(info.value)
    assert str(d / "imdb.npz") in msg and "x_train" in msg
    assert "\n" not in msg and "Traceback" not in msg
    if kind in ("os.system", "builtins.exec", "builtins.eval"):
        assert f"type {kind}" in msg and "refused: nettrain never runs code from data" in msg
    assert not marker.exists()
    assert digest(d) == before


@pytest.mark.parametrize("key", ["x", "x_train"])
def test_user_npz_needing_pickle_is_refused_without_unpickling(tmp_path, key):
    marker = tmp_path / "PWNED"
    members = {key: npy_bytes((2,), "|O", _evil_pickles(marker)["os.system"]),
               key.replace("x", "y"): plain_npy(np.array([0, 1]))}
    path = write_npz(tmp_path / "d.npz", members)
    with pytest.raises(DataError) as info:
        read_table(path)
    msg = str(info.value)
    assert str(path) in msg and f"'{key}'" in msg and "Python objects" in msg
    assert not marker.exists()


def test_no_pickle_anywhere_in_the_readers():
    """Every module of the package (the readers: data/, store/h5.py, data/rows.py ... and any added later)."""
    files = sorted((ROOT / "nettrain").rglob("*.py"))
    assert len(files) > 50 and ROOT / "nettrain" / "data" / "rows.py" in files
    for path in files:
        text = path.read_text()
        assert "allow_pickle=True" not in text and "safe_mode=False" not in text, path
        assert "np.load(" not in text, path


@pytest.mark.slow
def test_data_and_metadata_readers_never_import_tensorflow(run, tmp_path):
    d = tmp_path / "khome" / "datasets"
    d.mkdir(parents=True)
    np.savez(d / "imdb.npz", x_train=sequences(12, True), y_train=np.arange(12) % 2)
    code = textwrap.dedent(f"""
        import sys, json
        from nettrain.config import load_config
        from nettrain.data import load_dataset, read_table
        from nettrain.store import h5
        load_dataset(load_config(None, data={{'data': {{'source': 'keras:imdb'}}}}))
        read_table({str(run.parent / 'mixed.csv')!r})
        h5.read_meta({str(run / 'model.h5')!r})
        h5.refuse_code_layers({str(run / 'model.h5')!r})
        print(json.dumps(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "KERAS_HOME": str(tmp_path / "khome")})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ======================================================================= 2. data files

def _parquet(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def _make(kind: str, d: Path) -> tuple[Path, list[str]]:
    """A hostile data file of `kind` and the words its error message must hold."""
    rng = np.random.default_rng(0)
    if kind == "duplicate header csv":
        p = d / "dup.csv"
        p.write_text("a,b,a,y\n1,2,3,x\n4,5,6,z\n")
        return p, ["duplicate column name", "'a' (2 times)"]
    if kind == "duplicate header tsv":
        p = d / "dup.tsv"
        p.write_text("y\ta\ty\n1\t2\t3\n4\t5\t6\n")
        return p, ["duplicate column name", "'y' (2 times)"]
    if kind == "duplicate header gz":
        p = d / "dup.csv.gz"
        with gzip.open(p, "wt") as f:
            f.write("q,q,q,y\n1,2,3,x\n")
        return p, ["'q' (3 times)"]
    if kind == "duplicate parquet fields":
        p = d / "dup.parquet"
        _parquet(p, pa.table([pa.array([1, 2]), pa.array([3, 4]), pa.array(["a", "b"])], names=["a", "a", "y"]))
        return p, ["duplicate column name", "'a'"]
    if kind == "parquet columns 1 and '1'":
        p = d / "intnames.parquet"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyarrow warns about names of mixed types
            table = pa.Table.from_pandas(pd.DataFrame({1: [1, 2], "1": [3, 4], "y": ["a", "b"]}))
        _parquet(p, table)
        return p, ["duplicate column name", "'1'"]
    if kind == "parquet index named like a column":
        p = d / "idx.parquet"
        pd.DataFrame({"a": [1, 2], "y": ["u", "v"]}, index=pd.Index(["r1", "r2"], name="a")).to_parquet(p)
        return p, ["duplicate column name", "'a'"]
    if kind == "nul byte in a value":
        p = d / "nul.csv"
        p.write_bytes(b"a,y\n" + b"".join(b"%d,x\n" % i for i in range(20000)) + b"7\x00,x\n")
        return p, ["'a'", "row 20001", "NUL byte"]
    if kind == "nul byte early":
        p = d / "nul_early.csv"
        p.write_bytes(b"a,y\n1\x00,x\n2,z\n")
        return p, ["NUL byte at byte 5"]
    if kind == "binary file named csv":
        p = d / "image.csv"
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 4000, dtype=np.uint8)))
        return p, []
    if kind == "utf-16 text":
        p = d / "utf16.csv"
        p.write_bytes("a,y\n1,x\n2,z\n".encode("utf-16"))
        return p, ["UTF-8"]
    if kind == "huge single line":
        p = d / "oneline.csv"
        p.write_bytes(b"x" * 3_000_000)
        return p, ["header but no rows", "..."]
    if kind == "row longer than the header":
        p = d / "short_header.csv"
        p.write_text("a,y\n1,2,x\n3,4,z\n")
        return p, ["3 fields", "2 names"]
    if kind == "jsonl arrays":
        p = d / "arrays.jsonl"
        p.write_text("[1, 2]\n[3, 4]\n")
        return p, ["line 1", "an array, not a JSON object"]
    if kind == "jsonl numbers":
        p = d / "numbers.jsonl"
        p.write_text("1\n2\n")
        return p, ["line 1", "a number, not a JSON object"]
    if kind == "jsonl mixed lines":
        p = d / "mixed_lines.jsonl"
        p.write_text('{"a": 1, "y": "x"}\n\n["no"]\n')
        return p, ["line 3", "an array"]
    if kind == "jsonl null line":
        p = d / "null_line.jsonl"
        p.write_text('{"a": 1, "y": "x"}\nnull\n')
        return p, ["line 2", "null"]
    if kind == "jsonl nested object":
        p = d / "nested.jsonl"
        p.write_text('{"a": 1, "y": "x"}\n{"a": {"deep": 1}, "y": "z"}\n')
        return p, ["'a'", "row 2", "an object", "nested"]
    if kind == "jsonl duplicate key":
        p = d / "dupkey.jsonl"
        p.write_text('{"a": 1, "y": "x"}\n{"a": 2, "y": "z", "a": 3}\n')
        return p, ["line 2", "'a' appears twice"]
    if kind == "jsonl list value":
        p = d / "listval.jsonl"
        p.write_text('{"a": [1, 2], "y": "x"}\n')
        return p, ["'a'", "a list"]
    if kind == "jsonl invalid":
        p = d / "broken.jsonl"
        p.write_text('{"a": 1, "y": "x"}\n{"a": \n')
        return p, ["cannot read it as jsonl", "line 2"]
    if kind == "parquet truncated":
        full = d / "full.parquet"
        pd.DataFrame({"a": np.arange(50.0), "y": ["x", "z"] * 25}).to_parquet(full)
        p = d / "cut.parquet"
        p.write_bytes(full.read_bytes()[:300])
        full.unlink()
        return p, ["cannot read it as parquet"]
    if kind == "parquet nested column":
        p = d / "nested.parquet"
        _parquet(p, pa.table({"s": pa.array([{"k": 1}, {"k": 2}]), "y": ["a", "b"]}))
        return p, ["'s'", "nested values"]
    if kind == "npz 0-d x":
        p = write_npz(d / "zero.npz", {"x": plain_npy(np.array(5.0)), "y": plain_npy(np.array([1]))})
        return p, ["'x'", "0-d"]
    if kind == "npz object x":
        seqs = np.empty(2, dtype=object)
        seqs[0], seqs[1] = [1], [2, 3]
        p = d / "obj.npz"
        np.savez(p, x=seqs, y=np.array([0, 1]))
        return p, ["'x'", "Python objects"]
    if kind == "npz truncated":
        full = d / "full.npz"
        np.savez(full, x=np.ones((100, 3)), y=np.zeros(100))
        p = d / "cut.npz"
        p.write_bytes(full.read_bytes()[:700])
        full.unlink()
        return p, ["not a readable .npz archive"]
    if kind == "npz header lies about its size":
        p = write_npz(d / "liar.npz", {"x": npy_bytes((10**9, 10**3), "<f8", b"\x00" * 64),
                                       "y": plain_npy(np.zeros(2))})
        return p, ["'x'", "truncated or damaged"]
    if kind == "npz x_test without y_test":
        p = d / "parts.npz"
        np.savez(p, x_train=np.ones((3, 2)), y_train=np.ones(3), x_test=np.ones((2, 2)))
        return p, ["x_test", "y_test"]
    if kind == "npz parts of different shapes":
        p = d / "shapes.npz"
        np.savez(p, x_train=np.ones((3, 2)), y_train=np.ones(3), x_test=np.ones((2, 5)), y_test=np.ones(2))
        return p, ["x_train", "x_test", "different shapes"]
    if kind == "gz that is not gzip":
        p = d / "fake.csv.gz"
        p.write_text("a,y\n1,2\n")
        return p, ["cannot read it as csv"]
    if kind == "folder named csv":
        p = d / "folder.csv"
        p.mkdir()
        return p, ["not a file"]
    if kind == "name too long":
        return d / ("n" * 300 + ".csv"), ["cannot access"]
    raise AssertionError(kind)


HOSTILE_DATA = ["duplicate header csv", "duplicate header tsv", "duplicate header gz", "duplicate parquet fields",
                "parquet columns 1 and '1'", "parquet index named like a column", "nul byte in a value",
                "nul byte early", "binary file named csv", "utf-16 text", "huge single line",
                "row longer than the header", "jsonl arrays", "jsonl numbers", "jsonl mixed lines",
                "jsonl null line", "jsonl nested object", "jsonl duplicate key", "jsonl list value", "jsonl invalid",
                "parquet truncated", "parquet nested column", "npz 0-d x", "npz object x", "npz truncated",
                "npz header lies about its size", "npz x_test without y_test", "npz parts of different shapes",
                "gz that is not gzip", "folder named csv", "name too long"]


@pytest.mark.parametrize("kind", HOSTILE_DATA)
def test_hostile_data_file_is_one_clean_error(tmp_path, kind):
    path, needles = _make(kind, tmp_path)
    before = digest(tmp_path)
    result = cli("init", path, "--target", "y")
    assert_clean_exit_2(result, path.name, *needles)
    assert digest(tmp_path) == before
    with pytest.raises(DataError):  # the library raises the same, never another exception
        read_table(path)


@pytest.mark.parametrize("kind", ["duplicate header csv", "jsonl nested object", "npz object x"])
def test_hostile_data_file_in_a_config(tmp_path, kind):
    path, needles = _make(kind, tmp_path)
    cfg = load_config(None, data={"data": {"source": str(path), "target": "y"}})
    with pytest.raises(DataError) as info:
        load_dataset(cfg)
    assert str(path) in str(info.value)
    for needle in needles:
        assert needle in str(info.value)


def test_a_legit_column_named_like_a_pandas_copy_is_kept(tmp_path):
    (tmp_path / "d.csv").write_text("a,a.1,y\n1,2,x\n3,4,z\n")
    assert list(read_table(tmp_path / "d.csv").columns) == ["a", "a.1", "y"]


# ---------------------------------------------------------------------------- nettrain init

@pytest.mark.parametrize("case", ["all missing", "all blank text", "one value", "only the target",
                                  "not a column", "one value and gaps"])
def test_init_with_an_unusable_target(tmp_path, case):
    rows, target = 30, "y"
    if case == "all missing":
        frame = pd.DataFrame({"a": np.arange(rows), "y": [np.nan] * rows})
        needles = ["'y'", "no values"]
    elif case == "all blank text":
        frame = pd.DataFrame({"a": np.arange(rows), "y": ["", "  "] * (rows // 2)})
        needles = ["'y'", "no values"]
    elif case == "one value":
        frame = pd.DataFrame({"a": np.arange(rows), "y": [3.5] * rows})
        needles = ["'y'", "one value only", "3.5"]
    elif case == "one value and gaps":
        frame = pd.DataFrame({"a": np.arange(rows), "y": ["spam", None, ""] * (rows // 3)})
        needles = ["'y'", "one value only", "spam"]
    elif case == "only the target":
        frame = pd.DataFrame({"y": ["a", "b"] * (rows // 2)})
        needles = ["'y'", "only the target column"]
    else:
        frame = pd.DataFrame({"a": np.arange(rows), "label": ["a", "b"] * (rows // 2)})
        target, needles = "lable", ["no column 'lable'", "did you mean 'label'", "columns: a, label"]
    path = tmp_path / "d.jsonl"
    frame.to_json(path, orient="records", lines=True)
    assert_clean_exit_2(cli("init", path, "--target", target), path.name, *needles)


def test_init_with_column_names_that_are_not_strings(tmp_path):
    path = tmp_path / "ints.parquet"
    frame = pd.DataFrame({1: np.linspace(0, 1, 40), 2: ["a", "b"] * 20, "true": np.arange(40) % 3})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyarrow warns about names of mixed types
        pq.write_table(pa.Table.from_pandas(frame), path)
    result = cli("init", path, "--target", "2")
    assert result.exit_code == 0, result.output
    out = tmp_path / "c.yaml"
    out.write_text(result.stdout)
    cfg = load_config(out)
    assert cfg.data.target == "2"
    assert load_dataset(cfg).schema.numeric_columns == ["1", "true"]
    assert_clean_exit_2(cli("init", path, "--target", "3"), path.name, "no column '3'")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_as_data_is_refused_without_blocking(run, tmp_path):
    """A FIFO named like a CSV: the stream decision's sample read it and blocked until a writer came, so
    validate, fit, predict and evaluate --data hung. Nothing opens it now: validate says so, the others
    refuse it (exit 2, nettrain reads a data file more than once). Each command in a process of its own,
    with a time limit, so a regression fails instead of hanging the suite."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{source: {fifo}, target: label}}\n")
    commands = {"validate": ["validate", config], "fit": ["fit", config, "--run-dir", tmp_path / "r"],
                "predict": ["predict", run, fifo], "evaluate": ["evaluate", run, "--data", fifo],
                "stream": ["fit", config, "--run-dir", tmp_path / "r", "--set", "data.stream=true"]}
    for name, args in commands.items():
        proc = subprocess.run([sys.executable, "-m", "nettrain", *map(str, args)], capture_output=True,
                              text=True, cwd=ROOT, timeout=120)
        if name == "validate":
            assert proc.returncode == 0 and "pipe.csv is not a regular file" in proc.stdout, proc.stdout
        else:
            assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
            assert "is not a regular file (a pipe or a device)" in proc.stderr, (name, proc.stderr)
    assert not (tmp_path / "r").exists()
    os.unlink(fifo)
    config.unlink()
    os.mkfifo(config)  # a config given as <(...) or a FIFO: named, not "not a file"
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2 and "c.yaml is not a regular file (a pipe or a device)" in result.stderr


# ======================================================================= 3. model files

def meta_of(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["nettrain"])


def set_meta(path: Path, value) -> None:
    with h5py.File(path, "a") as f:
        if value is None:
            del f.attrs["nettrain"]
        else:
            f.attrs["nettrain"] = value if not isinstance(value, (dict, list)) else json.dumps(value)


def _edit(fn):
    def apply(meta):
        fn(meta)
        return meta
    return apply


DAMAGE = {  # name -> (new attribute from the good metadata, words the message must hold)
    "invalid JSON": (lambda m: '{"features": {', ["not valid JSON"]),
    "JSON list": (lambda m: [m], ["a list where a mapping"]),
    "JSON string": (lambda m: json.dumps("hello"), ["a string where a mapping"]),
    "numeric attribute": (lambda m: np.int64(7), ["not JSON text"]),
    "features a list": (_edit(lambda m: m.update(features=[1, 2])), ["'features' is a list"]),
    "config a list": (_edit(lambda m: m.update(config=["a"])), ["'config' is a list"]),
    "config.data a list": (_edit(lambda m: m["config"].update(data=[1])), ["'config.data' is a list"]),
    "config.training a string": (_edit(lambda m: m["config"].update(training="fast")),
                                 ["'config.training' is a string"]),
    "config.runtime a list": (_edit(lambda m: m["config"].update(runtime=[])), ["'config.runtime' is a list"]),
    "epoch a string": (_edit(lambda m: m.update(epoch="three")), ["'epoch'", "'three'"]),
    "epoch negative": (_edit(lambda m: m.update(epoch=-4)), ["'epoch' is -4"]),
    "run a mapping": (_edit(lambda m: m.update(run={"x": 1})), ["'run' is a mapping"]),
    "no config": (_edit(lambda m: m.pop("config")), ["'config' is missing"]),
    "no features": (_edit(lambda m: m.pop("features")), ["'features' is missing"]),
    "no columns": (_edit(lambda m: m["features"].pop("columns")), ["'features.columns'"]),
    "columns a mapping": (_edit(lambda m: m["features"].update(columns={"x1": "numeric"})),
                          ["'features.columns' is a mapping"]),
    "column a string": (_edit(lambda m: m["features"]["columns"].__setitem__(0, "x1")),
                        ["'features.columns.0' is a string"]),
    "column kind unknown": (_edit(lambda m: m["features"]["columns"][0].update(kind="image")),
                            ["'features.columns.0.kind' is 'image'"]),
    "column unknown key": (_edit(lambda m: m["features"]["columns"][1].update(evil=1)),
                           ["'features.columns.1' has unknown key", "'evil'"]),
    "column listed twice": (_edit(lambda m: m["features"]["columns"].append(dict(m["features"]["columns"][0]))),
                            ["listed twice"]),
    "no class names": (_edit(lambda m: m["features"].pop("class_names")), ["'features.class_names' is null"]),
    "class names a string": (_edit(lambda m: m["features"].update(class_names="high,low,mid")),
                             ["'features.class_names'"]),
    "one class name": (_edit(lambda m: m["features"].update(class_names=["high"])), ["has 1 class;"]),
    "task unknown": (_edit(lambda m: m["features"].update(task="clustering")),
                     ["'features.task' is 'clustering'"]),
    "no target key": (_edit(lambda m: m["features"].pop("target")), ["'features.target' is missing"]),
    "label mode wrong": (_edit(lambda m: m["features"].update(label_mode="regression")),
                         ["'features.label_mode'"]),
    "threshold text": (_edit(lambda m: m["features"].update(threshold="half")), ["'features.threshold'"]),
    "imputation a list": (_edit(lambda m: m["features"].update(imputation=[0])), ["'features.imputation'"]),
}


@pytest.fixture(scope="module")
def good_meta(run) -> dict:
    return meta_of(run / "model.h5")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_model_metadata(run, data, good_meta, tmp_path, untouched, damage, command):
    model = tmp_path / "copied.h5"  # outside any run: the metadata is all there is
    shutil.copyfile(run / "model.h5", model)
    make, needles = DAMAGE[damage]
    set_meta(model, make(json.loads(json.dumps(good_meta))))
    before = digest(tmp_path)
    args = [command, model, data] if command == "predict" else [command, model, "--data", data]
    assert_clean_exit_2(cli(*args), "copied.h5", *needles)
    assert digest(tmp_path) == before


def _two_classes(mode):
    return _edit(lambda m: m["features"].update(task="binary", class_names=["high", "low"], label_mode=mode))


MISMATCH = {  # metadata that is well formed but describes another model; the data fits the metadata
    "two classes for a 3-class head": (_two_classes("sparse"), ["gives 3 output(s) per row", "describes 2"]),
    "binary head for a 3-class model": (_two_classes("binary"), ["gives 3 output(s)", "describes 1"]),
    "one numeric column fewer": (_edit(lambda m: m["features"]["columns"].pop(0)),
                                 ["takes 2 numeric values per row", "has 1 numeric columns"]),
    "a text input the model lacks": (_edit(lambda m: m["features"]["columns"].__setitem__(
        2, {"name": "color", "kind": "numeric"})), ["takes an input 'color'"]),
}


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("mismatch", list(MISMATCH))
def test_metadata_of_another_model(run, data, good_meta, tmp_path, untouched, mismatch, command):
    model = tmp_path / "other.h5"
    shutil.copyfile(run / "model.h5", model)
    make, needles = MISMATCH[mismatch]
    set_meta(model, make(json.loads(json.dumps(good_meta))))
    rows = pd.read_csv(data)
    rows = rows[rows["label"].isin(["high", "low"])].assign(color=rows["color"].map({"red": 1, "green": 2,
                                                                                   "blue": 3}))
    rows.to_csv(tmp_path / "rows.csv", index=False)
    fits = tmp_path / "rows.csv"
    args = [command, model, fits] if command == "predict" else [command, model, "--data", fits]
    assert_clean_exit_2(cli(*args), "other.h5", "do not belong together", *needles)


def test_model_from_before_metadata_uses_its_run_files(run, data, tmp_path):
    copy = tmp_path / "old_run"
    shutil.copytree(run, copy)
    set_meta(copy / "model.h5", None)
    result = cli("predict", copy, data)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "id,prediction"


RUN_FILE_DAMAGE = {  # file -> text, words of the message
    "features.json not JSON": ("features.json", "{broken", ["features.json", "not valid JSON"]),
    "features.json a list": ("features.json", "[1, 2, 3]", ["features.json", "'features' is a list"]),
    "features.json columns a mapping": ("features.json", None, ["features.json", "'features.columns' is a mapping"]),
    "features.json missing": ("features.json", "", ["features.json is missing"]),
    "config.yaml garbage": ("config.yaml", "data: [unclosed\n  x: :\n", ["config.yaml", "not valid YAML"]),
    "config.yaml a list": ("config.yaml", "- 1\n- 2\n", ["config.yaml", "'config' is a list"]),
    "config.yaml data a list": ("config.yaml", "data: [1, 2]\n", ["config.yaml", "'config.data' is a list"]),
    "config.yaml binary": ("config.yaml", b"\xff\xfe\x00garbage", ["config.yaml"]),
}


@pytest.mark.parametrize("damage", list(RUN_FILE_DAMAGE))
def test_damaged_run_files_used_as_fallback(run, data, tmp_path, untouched, damage):
    copy = tmp_path / "old_run"
    shutil.copytree(run, copy)
    set_meta(copy / "model.h5", None)
    name, text, needles = RUN_FILE_DAMAGE[damage]
    target = copy / name
    if text == "":
        target.unlink()
    elif text is None:
        features = json.loads(target.read_text())
        features["columns"] = {c["name"]: c["kind"] for c in features["columns"]}
        target.write_text(json.dumps(features))
    elif isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text)
    before = digest(copy)
    assert_clean_exit_2(cli("predict", copy, data), *needles)
    assert digest(copy) == before


def _code_model(path: Path, marker: Path, kind: str, good_meta: dict) -> None:
    """A Keras model holding code (a Lambda, or a layer class Keras does not know), saved as .h5 with
    the nettrain metadata of a real run so that it passes every check before Keras loads it."""
    import keras

    numeric = keras.Input(shape=(2,), name="numeric")
    if kind == "Lambda":
        # the function would leave a marker file each time it runs
        hidden = keras.layers.Lambda(lambda x, m=str(marker): (open(m, "a").close(), x * 2)[1])(numeric)
    else:
        class Boom(keras.layers.Layer):  # not registered: Keras cannot know it when loading
            def call(self, x):
                with open(marker, "a") as f:
                    f.write("ran\n")
                return x

        hidden = Boom()(numeric)
    out = keras.layers.Dense(3, activation="softmax")(hidden)
    model = keras.Model(numeric, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    if marker.exists():
        marker.unlink()  # building the model traced the code once; from here on nothing may run it
    model.save(str(path))
    set_meta(path, good_meta)


@pytest.mark.parametrize("kind", ["Lambda", "unknown class"])
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_model_with_code_is_refused_and_no_code_runs(data, good_meta, tmp_path, untouched, kind, command):
    model, marker = tmp_path / "code.h5", tmp_path / "RAN"
    _code_model(model, marker, kind, good_meta)
    before = digest(tmp_path)
    args = [command, model, data] if command == "predict" else [command, model, "--data", data]
    result = cli(*args)
    assert_clean_exit_2(result, "code.h5", "refused", "never runs code from a model file",
                        "Lambda" if kind == "Lambda" else "Unknown layer: 'Boom'")
    assert "safe_mode=False" not in result.stderr
    assert not marker.exists()
    assert digest(tmp_path) == before


# ========================================================================= runs listings

def _break(kind: str, folder: Path) -> str | None:
    """Make a broken run in `folder`; returns the reason the listing gives, or None if it is listed."""
    folder.mkdir(parents=True)
    run_json = folder / "run.json"
    if kind == "run.json not JSON":
        run_json.write_text("{not json")
        return "not valid JSON"
    if kind == "run.json a list":
        run_json.write_text("[1, 2]")
        return "an array, not a JSON object"
    if kind == "run.json binary":
        run_json.write_bytes(b"\xff\xfe\x00\x01")
        return "not UTF-8"
    if kind == "run.json a fifo":
        os.mkfifo(run_json)
        return "not a regular file"
    if kind == "metrics missing":
        run_json.write_text(json.dumps({"name": "nometrics", "status": "failed"}))
        return None
    if kind == "config.yaml garbage":
        run_json.write_text(json.dumps({"name": "garbage-config", "status": "completed",
                                        "final_metrics": {"test": {"loss": 0.5}}}))
        (folder / "config.yaml").write_bytes(b": : [\x00\xff")
        return None
    if kind == "values of every odd shape":
        run_json.write_text(json.dumps({"name": ["multi\nline"], "status": {"a": 1}, "started": 1e300,
                                        "epochs_done": {"n": 1}, "best_epoch": [2],
                                        "final_metrics": {"test": {"loss": "low", "acc": True, "big": 1e308}}}))
        return None
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["run.json not JSON", "run.json a list", "run.json binary", "run.json a fifo",
                                  "metrics missing", "config.yaml garbage", "values of every odd shape"])
def test_runs_listing_survives_a_broken_run(run, tmp_path, kind):
    root = tmp_path / "runs"
    shutil.copytree(run, root / "good")
    reason = _break(kind, root / "broken")
    before = digest(root / "good")
    result = cli("runs", root)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "good" in result.stdout
    if reason is None:
        assert "broken" in result.stdout and "skipped" not in result.stdout
    else:
        note = [line for line in result.stdout.splitlines() if "skipped" in line]
        assert len(note) == 1 and "broken/run.json" in note[0] and reason in note[0], result.stdout
    assert digest(root / "good") == before


# ====================================================================== 4. predict --output

def _output_case(case: str, run: Path, data: Path, tmp: Path) -> tuple[list, list[str]]:
    """(extra predict arguments, words of the message) for a refused --output."""
    if case == "a file used as a folder":
        (tmp / "existing.csv").write_text("keep me\n")
        return ["--output", tmp / "existing.csv" / "preds.csv"], ["existing.csv is a file, not a folder"]
    if case == "a file used as a folder, deeper":
        (tmp / "existing.csv").write_text("keep me\n")
        return ["--output", tmp / "existing.csv" / "sub" / "preds.csv"], ["existing.csv is a file"]
    if case == "the input file":
        return ["--output", data], ["is the input file"]
    if case == "the input by another spelling":
        return ["--output", data.parent / "." / "run" / ".." / data.name], ["is the input file"]
    if case == "the input through a symlink":
        link = tmp / "link.csv"
        link.symlink_to(data)
        return ["--output", link], ["is the input file"]
    if case == "the input through a hard link":
        hard = tmp / "hard.csv"
        os.link(data, hard)
        return ["--output", hard, "--proba"], ["is the input file"]
    if case == "a file of the run":
        return ["--output", run / "metrics.csv"], ["run directory", "run.json"]
    if case == "a new file in the run":
        return ["--output", run / "preds.csv"], ["run directory"]
    if case == "a checkpoints folder":
        return ["--output", run / "checkpoints" / "preds.parquet"], ["run directory"]
    if case == "a new folder in the run":
        return ["--output", run / "new" / "deeper" / "preds.csv"], ["run directory"]
    if case == "a folder":
        (tmp / "out.csv").mkdir()
        return ["--output", tmp / "out.csv"], ["is a folder"]
    if case == "an unknown suffix":
        return ["--output", tmp / "preds.xlsx"], [".xlsx", ".csv, .parquet"]
    if case == "a fifo":
        os.mkfifo(tmp / "pipe.csv")
        return ["--output", tmp / "pipe.csv"], ["not a regular file"]
    raise AssertionError(case)


OUTPUT_CASES = ["a file used as a folder", "a file used as a folder, deeper", "the input file",
                "the input by another spelling", "the input through a symlink", "the input through a hard link",
                "a file of the run", "a new file in the run", "a checkpoints folder", "a new folder in the run",
                "a folder", "an unknown suffix", "a fifo"]


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_predict_output_refused(run, data, tmp_path, untouched, case):
    extra, needles = _output_case(case, run, data, tmp_path)
    before = digest(tmp_path)
    result = cli("predict", run, data, *extra)
    assert_clean_exit_2(result, *needles)
    assert result.stdout == ""
    assert digest(tmp_path) == before
    assert not (run / "new").exists() and not (run / "preds.csv").exists()


def test_predict_output_in_a_missing_folder_is_created(run, data, tmp_path, untouched):
    out = tmp_path / "new" / "nested" / "preds.csv"
    result = cli("predict", run, data, "--output", out)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out).columns.tolist() == ["id", "prediction"]


def test_predict_output_in_a_read_only_folder(run, data, untouched):
    """In a process of its own, as a user who may not write into the folder (root may write into any
    folder, so root runs it as nobody: helpers.as_unprivileged), on a copy of the run in /tmp."""
    work = Path(tempfile.mkdtemp(prefix="nettrain-read-only-"))
    try:
        copy = copy_run(run, work / "mixed")
        locked, home = work / "locked", work / "home"
        locked.mkdir()
        home.mkdir()
        as_user = as_unprivileged(work)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "HOME": str(home)}
        reach = subprocess.run([*as_user, sys.executable, "-c", "import nettrain"], capture_output=True, text=True,
                               env=env)
        assert reach.returncode == 0, f"{as_user} cannot read the code or the venv: {reach.stderr}"
        locked.chmod(0o500)
        proc = subprocess.run([*as_user, sys.executable, "-m", "nettrain", "predict", str(copy),
                               str(copy.parent / data.name), "--output", str(locked / "p.csv")],
                              capture_output=True, text=True, env=env, timeout=300)
        message = proc.stderr.strip()
        assert (proc.returncode, proc.stdout) == (2, ""), (proc.returncode, proc.stdout, message)
        assert message.startswith("error: ") and len(message.splitlines()) <= 2 and "Traceback" not in message, \
            message
        assert f"the folder {locked} is not writable" in message, message
        assert list(locked.iterdir()) == []
    finally:
        shutil.rmtree(work)


@pytest.mark.parametrize("stream", [False, True])
def test_an_infinite_regression_target_is_refused_before_a_run_exists(tmp_path, stream):
    """`inf` (or 1e400) in a regression target: every loss was NaN and fit stopped with "training
    diverged. Try a lower learning rate", exit 1, beside numpy's "invalid value encountered in
    remainder". It is a data error naming the row, before a run exists (a stream's first pass too)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    y = (2 * x).astype(object)
    y[3], y[50] = "inf", "1e400"
    pd.DataFrame({"x": x, "y": y}).to_csv(tmp_path / "d.csv", index=False)
    flag = str(stream).lower()
    (tmp_path / "c.yaml").write_text(f"data: {{source: {tmp_path / 'd.csv'}, target: y, stream: {flag}}}\n"
                                     "training: {epochs: 1}\noutput: {plots: false}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "target 'y' holds an infinite or too large value in row 4" in result.stderr, result.stderr
    assert "warning" not in result.stderr and not (tmp_path / "run").exists()
