"""A streamed dataset holds a few chunks at a time, never its file: the memory of the first pass and
of an epoch's rows is measured (tracemalloc for Python and numpy, a proxy of pyarrow's memory pool
for Arrow's buffers, ru_maxrss of a process for everything) and shown not to grow with the file.
Measured, never timed.
"""

import json
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from nettrain.config.loader import load_config
from nettrain.data import chunks as C
from nettrain.data import stream as S

ROOT = Path(__file__).resolve().parent.parent
MB = 1 << 20


def numbers_csv(path: Path, rows: int, seed: int = 0) -> int:
    """`rows` rows of 8 float columns and a 0/1 label (~90 bytes a row); returns the file's size."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8)).astype(np.float32)
    table = pa.table({**{f"x{i}": x[:, i] for i in range(8)}, "label": (x[:, 0] + x[:, 1] > 0).astype(np.int64)})
    pcsv.write_csv(table, path)
    return path.stat().st_size


def stream_config(folder: Path, name: str):
    path = folder / f"{name}.yaml"
    path.write_text(f"data: {{source: {name}.csv, target: label, stream: true}}\nmodel: {{layers: []}}\n")
    return load_config(path)


def served(ds, seed: int, epoch: int) -> int:
    """One epoch of the training rows as `engine.StreamLoop` takes them: shuffle windows read one ahead
    by a thread (`feed.StreamFeed.epoch_arrays`), a graph call's rows (8192) taken at a time."""
    rows = 0
    for window in S.read_ahead(ds.reader.windows(ds.codes["train"], shuffle=(seed, epoch), bare=True), depth=1):
        for lo in range(0, len(window), 8192):
            rows += len(np.take(window.split.inputs["numeric"], window.order[lo:lo + 8192], axis=0))
        del window
    return rows


def measured(cfg) -> dict:
    """Peak bytes (Python/numpy via tracemalloc, Arrow via a proxy pool) of the first pass, of one
    shuffled epoch of the training rows (`rows`: each window permuted) and of one epoch as training
    serves it (`served`), and the rows those epochs gave."""
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    before = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = S.load_stream(cfg)
        first_pass = tracemalloc.get_traced_memory()[1]
        arrow_pass = pool.max_memory()
        tracemalloc.reset_peak()
        rows = sum(len(part) for part in ds.reader.rows(ds.codes["train"], shuffle=(cfg.seed, 1)))
        epoch = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        rows_served = served(ds, cfg.seed, 1)
        serving = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(before)
    return {"pass": first_pass, "epoch": epoch, "serving": serving, "arrow": pool.max_memory(),
            "arrow_pass": arrow_pass, "rows": rows, "served": rows_served, "train": ds.rows("train")}


def test_first_pass_and_an_epoch_stay_under_a_budget_a_fraction_of_the_file(tmp_path, monkeypatch):
    """Chunks of ~2k rows (64 kB blocks): a file ~4.5 times the 4 MB budget is read in its first pass
    and one epoch within the budget, Python and Arrow alike, and a file 4 times larger needs no more."""
    monkeypatch.setattr(C, "CHUNK_ROWS", 2048)
    monkeypatch.setattr(C, "BLOCK_BYTES", 1 << 16)
    budget = 4 * MB
    numbers_csv(tmp_path / "small.csv", 50_000)
    big_size = numbers_csv(tmp_path / "big.csv", 200_000)
    assert big_size > 4 * budget
    small = measured(stream_config(tmp_path, "small"))
    big = measured(stream_config(tmp_path, "big"))
    assert big["rows"] == big["served"] == big["train"] > 100_000   # every training row went by
    for what in ("pass", "epoch", "serving", "arrow"):
        assert big[what] < budget, (what, big[what] / MB)
        # flat: four times the file, not more memory (a margin for chunk sizes and allocator rounding)
        assert big[what] < 1.25 * small[what] + 0.5 * MB, (what, small[what] / MB, big[what] / MB)
    # training holds a window once (no permuted copy), with the next one read ahead
    assert big["serving"] < big["epoch"], (big["serving"] / MB, big["epoch"] / MB)


CHILD = """
    import json, sys, warnings
    import numpy as np
    from nettrain.config.loader import load_config
    from nettrain.data import chunks as C
    from nettrain.data import stream as S

    def peak_kb():  # VmHWM: the peak resident set since the last reset
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])

    def reset_peak():  # Linux: writing 5 to clear_refs resets VmHWM to the current resident set
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    warnings.simplefilter("ignore")
    C.CHUNK_ROWS, C.BLOCK_BYTES = 4096, 1 << 18  # windows of ~16k rows: both files are many windows long
    cfg = load_config(sys.argv[1])
    S.load_stream(load_config(sys.argv[2]))  # a tiny file first: every library the stream uses is loaded
    reset_peak()
    start = peak_kb()
    ds = S.load_stream(cfg)
    after_pass = peak_kb()
    rows = sum(len(part) for part in ds.reader.rows(ds.codes["train"], shuffle=(cfg.seed, 1)))
    rows += sum(len(part) for part in ds.reader.rows(ds.codes["validation"]))
    for window in S.read_ahead(ds.reader.windows(ds.codes["train"], shuffle=(cfg.seed, 2), bare=True), depth=1):
        for lo in range(0, len(window), 8192):  # as engine.StreamLoop takes a window's rows
            rows += len(np.take(window.split.inputs["numeric"], window.order[lo:lo + 8192], axis=0))
        del window
    print(json.dumps({"start_kb": start, "pass_kb": after_pass, "kb": peak_kb(),
                      "rows": rows, "train": ds.rows("train"), "validation": ds.rows("validation")}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_peak_rss_of_a_stream_is_flat_in_the_file_size(tmp_path):
    """A process streams a ~27 MB and a ~215 MB file (chunks of ~4k rows, 256 kB blocks): the first
    pass, one shuffled epoch, the validation rows and one epoch as training serves it (windows read
    one ahead, a call's rows taken at a time) raise its peak resident set (VmHWM, reset once the
    libraries are loaded) by less than a 64 MB budget for both, and the eight times larger file by
    about as much as the small one."""
    budget = 64 * MB
    sizes = {"small": numbers_csv(tmp_path / "small.csv", 300_000, seed=1),
             "big": numbers_csv(tmp_path / "big.csv", 2_400_000, seed=2)}
    assert sizes["big"] > 3 * budget
    numbers_csv(tmp_path / "tiny.csv", 100)
    stream_config(tmp_path, "tiny")
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD))
    grown = {}
    for name in sizes:
        stream_config(tmp_path, name)
        done = subprocess.run([sys.executable, str(tmp_path / "child.py"), str(tmp_path / f"{name}.yaml"),
                               str(tmp_path / "tiny.yaml")], capture_output=True, text=True, timeout=300, cwd=ROOT,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"})
        assert done.returncode == 0, done.stderr[-2000:]
        peak = json.loads(done.stdout.strip().splitlines()[-1])
        rows = 300_000 if name == "small" else 2_400_000
        assert peak["rows"] == 2 * peak["train"] + peak["validation"] > 0.7 * rows  # two epochs and the validation
        grown[name] = (peak["kb"] - peak["start_kb"]) * 1024
    assert grown["small"] < budget and grown["big"] < budget, {k: v / MB for k, v in grown.items()}
    assert grown["big"] < grown["small"] + 16 * MB, {k: v / MB for k, v in grown.items()}
