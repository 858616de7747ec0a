"""A stream's first pass against pyarrow's plain `open_csv` read of the same file (issue 25): MB/s.

    .venv/bin/python bench/firstpass.py [--rows 1000000] [--categoricals 2] [--repeat 2]
                                        [--against OTHER_TREE ...] [--dir DIR] [--profile]

A CSV of N rows x 20 float32 features (+ `--categoricals` columns of 8-50 words each) and a
continuous target `y` is generated in a temporary folder (about 230 MB per million rows without
categoricals). Each reader runs in a fresh process (imports not timed), `--repeat` times, alternating,
the best time (and the least CPU time, all threads) kept: pyarrow's `pyarrow.csv.open_csv` with its
defaults (types inferred, every block read, nothing kept; the ceiling for this reader), nettrain's
first pass (`load_stream` with `data.stream: true`: parse, typing, statistics, split codes, label
tally, sha256) of this tree and, with `--against`, of another copy of the nettrain sources (e.g. `git archive HEAD nettrain | tar -x
-C /tmp/old`), so a change is measured against the code before it on the same machine in one run.
`--profile` prints this tree's cProfile (cumulative, top 30) of one more pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FEATURES = 20
BLOCK = 250_000

CHILD = """
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
which, folder = sys.argv[1], sys.argv[2]
if which == "arrow":
    import pyarrow.csv as pc
    t, c = time.perf_counter(), time.process_time()
    rows = sum(b.num_rows for b in pc.open_csv(folder + "/data.csv"))
else:
    from nettrain.config.loader import load_config
    from nettrain.data.stream import load_stream
    cfg = load_config(folder + "/bench.yaml", ["data.stream=true"])
    if which == "profile":
        import cProfile, pstats
        pr = cProfile.Profile()
        pr.enable()
    t, c = time.perf_counter(), time.process_time()
    rows = load_stream(cfg).n_rows
    if which == "profile":
        pr.disable()
        pstats.Stats(pr, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""


def write_csv(path: Path, rows: int, categoricals: int, seed: int = 0) -> None:
    """`rows` rows of 20 standard-normal features, `categoricals` word columns and y = x @ w + noise."""
    import pyarrow as pa
    import pyarrow.csv as pc

    rng = np.random.default_rng(seed)
    w = rng.normal(size=FEATURES)
    words = [np.array([f"w{j}_{i}" for i in range(8 + 42 * j // max(categoricals, 1))]) for j in range(categoricals)]
    fields = [(f"f{i}", pa.float32()) for i in range(FEATURES)] + [(f"c{j}", pa.string()) for j in
                                                                   range(categoricals)] + [("y", pa.float32())]
    with pc.CSVWriter(str(path), pa.schema(fields)) as out:
        done = 0
        while done < rows:
            n = min(BLOCK, rows - done)
            x = rng.normal(size=(n, FEATURES)).astype("float32")
            y = (x @ w + rng.normal(scale=0.1, size=n)).astype("float32")
            cats = [vocab[rng.integers(0, len(vocab), size=n)] for vocab in words]
            out.write_table(pa.table([*x.T, *cats, y], schema=pa.schema(fields)))
            done += n


def timed(which: str, folder: Path, tree: Path) -> tuple[float, float]:
    env = {**os.environ, "NETTRAIN_PROGRESS": "off", "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", CHILD, "nettrain" if which != "arrow" else "arrow", str(folder)],
                          capture_output=True, text=True, env=env, check=True, cwd=tree)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["seconds"], out["cpu"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--categoricals", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--against", type=Path, action="append", default=[],
                    help="another nettrain source tree to time as well (may be given more than once)")
    ap.add_argument("--dir", type=Path, default=None, help="where the file is generated (default: a temp folder)")
    ap.add_argument("--profile", action="store_true", help="print this tree's cProfile of one more pass")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nettrain-firstpass-", dir=args.dir))
    try:
        write_csv(folder / "data.csv", args.rows, args.categoricals)
        (folder / "bench.yaml").write_text("data: {source: data.csv, target: y, split: {validation: 0.1, test: 0.1}}\n"
                                           "model: {layers: [{type: Dense, units: 64, activation: relu}]}\n"
                                           "training: {loss: mean_squared_error}\n")
        size = (folder / "data.csv").stat().st_size
        trees = {"pyarrow.csv.open_csv": ("arrow", ROOT), "nettrain first pass (this tree)": ("nettrain", ROOT)}
        for other in args.against:
            trees[f"nettrain first pass ({other})"] = ("nettrain", other.resolve())
        best = {name: (float("inf"), float("inf")) for name in trees}
        for _ in range(args.repeat):
            for name, (which, tree) in trees.items():
                seconds, cpu = timed(which, folder, tree)
                best[name] = (min(best[name][0], seconds), min(best[name][1], cpu))
        arrow = best["pyarrow.csv.open_csv"][0]
        print(f"| {args.rows:,} rows, {FEATURES} numbers, {args.categoricals} categoricals ({size / 1e6:,.0f} MB CSV) "
              "| seconds | CPU seconds | MB/s | of pyarrow's MB/s |\n|---|---:|---:|---:|---:|")
        for name, (seconds, cpu) in best.items():
            print(f"| {name} | {seconds:.2f} | {cpu:.2f} | {size / 1e6 / seconds:.1f} | {arrow / seconds:.2f}x |")
        if args.profile:
            env = {**os.environ, "NETTRAIN_PROGRESS": "off", "PYTHONPATH": str(ROOT)}
            subprocess.run([sys.executable, "-c", CHILD, "profile", str(folder)], env=env, check=True, cwd=ROOT)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
