"""How `nettrain fit` scales with the file: wall, samples/s and peak RSS, in memory and streamed.

    .venv/bin/python bench/scale.py [--rows 250000 1000000 4000000] [--streamed-only 20000000]
                                    [--epochs 2] [--streamed-epochs 1] [--dir DIR] [--write bench/RESULTS.md]

For each size a CSV of N rows x 20 numeric features and a regression target is generated in a
temporary folder (pyarrow's CSV writer, 250k rows at a time; about 230 MB per million rows), then
`nettrain fit` trains the bench MLP (Dense 64-64 relu, batch 256, validation and test 10% each) on
it in a fresh process, once with `data.stream: false` and once with `data.stream: true` (sizes given
to --streamed-only: streamed only, for --streamed-epochs epochs, default --epochs). Measured per
run: the wall from start to exit (read or first pass, training, the final evaluation of every
split, plots, model file), the training samples/s (run.json's training rows / the mean seconds in
metrics.csv of the epochs after the first, which also traces the training step; of the only epoch
when there is one) and the peak RSS of the process (getrusage of the child, through a small
launcher so this process's pages are not counted). Each file is removed once its runs are done,
and the folder at the end.

With --write the table replaces the part of that file between `<!-- scale:begin -->` and
`<!-- scale:end -->`; rows of sizes not measured this time are kept.

With --first-pass only the first pass is timed, against pyarrow's plain `open_csv` read of the same
file, each in a fresh process (imports not timed): MB/s of both (issue 25).

With --phases each streamed `fit` runs under a probe in its own process that samples VmRSS every
10 ms and prints the peak of each phase (the first pass, the model's build, each epoch's training,
each `evaluate` (the validation after each epoch, then the final evaluation of each split), the
plots' held-out rows and predictions, the final files), and the shared-library part of it (RssFile):
where a stream's memory goes. The probe's thread adds nothing measurable.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from launch import timed_process  # bench/launch.py, beside this script

FEATURES = 20
BLOCK = 250_000
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"

CONFIG = """data:
  source: data.csv
  target: y
  split: {validation: 0.1, test: 0.1}
model:
  layers:
    - {type: Dense, units: 64, activation: relu}
    - {type: Dense, units: 64, activation: relu}
training: {loss: mean_squared_error, batch_size: 256}
"""

def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """`rows` rows of 20 standard-normal features and y = x @ w + noise, written block by block."""
    import pyarrow as pa
    import pyarrow.csv as pc

    rng = np.random.default_rng(seed)
    w = rng.normal(size=FEATURES)
    names = [f"f{i}" for i in range(FEATURES)] + ["y"]
    with pc.CSVWriter(str(path), pa.schema([(n, pa.float32()) for n in names])) as out:
        done = 0
        while done < rows:
            n = min(BLOCK, rows - done)
            x = rng.normal(size=(n, FEATURES)).astype("float32")
            y = (x @ w + rng.normal(scale=0.1, size=n)).astype("float32")
            out.write_table(pa.table([*x.T, y], names=names))
            done += n


PHASES = r"""
import os, sys, threading, time
out, argv = sys.argv[1], sys.argv[2:]
phase, peaks, order, stop = ["start"], {}, [], threading.Event()

def sample():
    while not stop.is_set():
        with open("/proc/self/status") as f:
            now = {k: int(v.split()[0]) // 1024 for k, _, v in (line.partition(":") for line in f)
                   if k in ("VmRSS", "RssFile")}
        if phase[0] not in peaks:
            order.append(phase[0])
        best = peaks.setdefault(phase[0], now)
        peaks[phase[0]] = {k: max(best[k], now[k]) for k in now}
        time.sleep(0.01)

def marked(owner, attr, name):
    real = getattr(owner, attr)
    def wrapper(*a, **k):
        now = phase[0] = name(*a, **k) if callable(name) else name
        try:
            return real(*a, **k)
        finally:
            phase[0] = f"after {now}"
    setattr(owner, attr, wrapper)

threading.Thread(target=sample, daemon=True).start()
import keras
import nettrain.data.stream as S
import nettrain.training.fit as F
from nettrain.training import engine as E
phase[0] = "imported"
calls = [0]
def evaluation(*a, **k):
    calls[0] += 1
    return f"evaluate {calls[0]}"
marked(S, "load_stream", "first pass")
marked(F, "new_model", "model built")
marked(E.Loop, "_epoch", lambda self, epoch, calls: f"training, epoch {epoch}")
marked(keras.Model, "evaluate", evaluation)
marked(F, "_plots", "plots: held-out rows, predictions")
marked(F, "_finish", "final files and evaluation")
from nettrain.__main__ import main
sys.argv = ["nettrain", *argv]
try:
    main()
finally:
    stop.set()
    with open(out, "w") as f:
        for name in order:
            f.write(f"{name}\t{peaks[name]['VmRSS']}\t{peaks[name].get('RssFile', 0)}\n")
"""


def run_fit(folder: Path, stream: bool, epochs: int, phases: bool = False) -> dict:
    run = folder / f"run-{'stream' if stream else 'memory'}"
    args = ["fit", "scale.yaml", "--run-dir", str(run), "--set", f"training.epochs={epochs}",
            "--set", f"data.stream={str(stream).lower()}"]
    argv = [str(Path(sys.executable).parent / "nettrain"), *args]
    if phases:
        argv = [sys.executable, "-c", PHASES, str(folder / "phases.tsv"), *args]
    wall, rss = timed_process(argv, folder)
    if phases:
        print(f"{'':>12} peak RSS of each phase (MB; of it shared libraries):", flush=True)
        for line in (folder / "phases.tsv").read_text().splitlines():
            name, vm, shared = line.split("\t")
            print(f"{'':>12}   {name:<42} {int(vm):>6,} ({int(shared):,})", flush=True)
    record = json.loads((run / "run.json").read_text())
    with open(run / "metrics.csv", newline="") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    timed = seconds[1:] or seconds  # the first epoch also traces the training step
    train_rows = record["data"]["rows"]["train"]
    shutil.rmtree(run)
    return {"wall": wall, "rate": train_rows * len(timed) / sum(timed), "rss": rss}


def table(results: dict[tuple[int, str], dict]) -> str:
    lines = ["| rows | data | wall (s) | samples/s | peak RSS (MB) |", "|---:|---|---:|---:|---:|"]
    for (rows, path), r in sorted(results.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        lines.append(f"| {rows:,} | {path} | {r['wall']:.1f} | {r['rate']:,.0f} | {r['rss']:,.0f} |")
    return "\n".join(lines)


def parse_table(text: str) -> dict[tuple[int, str], dict]:
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].replace(",", "").isdigit():
            out[(int(cells[0].replace(",", "")), cells[1])] = {
                "wall": float(cells[2]), "rate": float(cells[3].replace(",", "")),
                "rss": float(cells[4].replace(",", ""))}
    return out


def write_results(path: Path, results: dict[tuple[int, str], dict], note: str) -> None:
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    old, tail = rest.split(END, 1)
    merged = {**parse_table(old), **results}
    tmp = path.with_suffix(".tmp")
    note = textwrap.fill(note, width=100, break_on_hyphens=False)
    tmp.write_text(f"{head}{BEGIN}\n{note}\n\n{table(merged)}\n{END}{tail}")
    tmp.replace(path)


FIRST_PASS = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
which, folder = sys.argv[1], sys.argv[2]
if which == "arrow":  # pyarrow's plain streaming read of the file: every block parsed, nothing kept
    import pyarrow.csv as pc
    t = time.perf_counter()
    rows = sum(b.num_rows for b in pc.open_csv(folder + "/data.csv"))
else:  # nettrain's first pass (`load_stream`): parse, typing, statistics, split, sha256
    from nettrain.config.loader import load_config
    from nettrain.data.stream import load_stream
    cfg = load_config(folder + "/scale.yaml", ["data.stream=true"])
    t = time.perf_counter()
    rows = load_stream(cfg).n_rows
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t}))
"""


def first_pass(folder: Path) -> dict:
    """MB/s of nettrain's first pass and of pyarrow's `open_csv` over the same file, each in a fresh process
    (the module imports not timed), the better of two runs each."""
    import subprocess

    size = (folder / "data.csv").stat().st_size
    out = {"mb": round(size / 1e6)}
    for which in ("arrow", "nettrain", "arrow", "nettrain"):
        done = subprocess.run([sys.executable, "-c", FIRST_PASS, which, str(folder)], capture_output=True, text=True,
                              env={**__import__("os").environ, "NETTRAIN_PROGRESS": "off"}, check=True)
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        out[which] = min(out.get(which, float("inf")), seconds)
    out["arrow_mb_s"] = round(size / 1e6 / out["arrow"], 1)
    out["nettrain_mb_s"] = round(size / 1e6 / out["nettrain"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="*", default=[250_000, 1_000_000, 4_000_000])
    ap.add_argument("--streamed-only", type=int, nargs="*", default=[])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--streamed-epochs", type=int, default=None, help="epochs of the --streamed-only sizes "
                    "(default: --epochs)")
    ap.add_argument("--dir", type=Path, default=None, help="where the files are generated (default: a temp folder)")
    ap.add_argument("--write", type=Path, default=None, help="put the table into this markdown file")
    ap.add_argument("--phases", action="store_true", help="print the peak RSS of each phase of the streamed runs")
    ap.add_argument("--first-pass", action="store_true", help="only time the first pass against pyarrow's "
                    "open_csv on each --rows file (MB/s; issue 25)")
    args = ap.parse_args()
    if args.first_pass:
        root = Path(tempfile.mkdtemp(prefix="nettrain-scale-", dir=args.dir))
        try:
            (root / "scale.yaml").write_text(CONFIG)
            for rows in args.rows:
                write_csv(root / "data.csv", rows)
                print(json.dumps({"rows": rows, **first_pass(root)}), flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return

    root = Path(tempfile.mkdtemp(prefix="nettrain-scale-", dir=args.dir))
    results: dict[tuple[int, str], dict] = {}
    try:
        (root / "scale.yaml").write_text(CONFIG)
        big_epochs = args.epochs if args.streamed_epochs is None else args.streamed_epochs
        cases = [(n, (False, True), args.epochs) for n in args.rows] + \
            [(n, (True,), big_epochs) for n in args.streamed_only]
        print(f"{'rows':>12} {'data':<10} {'wall s':>8} {'samples/s':>11} {'peak RSS MB':>12}", flush=True)
        for rows, paths, epochs in cases:
            data = root / "data.csv"
            write_csv(data, rows)
            size = data.stat().st_size
            for stream in paths:
                r = run_fit(root, stream, epochs, phases=args.phases and stream)
                name = "streamed" if stream else "in memory"
                results[(rows, name)] = r
                print(f"{rows:>12,} {name:<10} {r['wall']:8.1f} {r['rate']:11,.0f} {r['rss']:12,.0f}"
                      f"   ({size / 1e6:,.0f} MB CSV)", flush=True)
            data.unlink()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.write is not None:
        sizes = ", ".join(f"{n:,}" for n in args.rows)
        note = f"`bench/scale.py`: {sizes} rows in memory and streamed, {args.epochs} epochs" if args.rows else ""
        if args.streamed_only:
            big = ", ".join(f"{n:,}" for n in args.streamed_only)
            epochs = args.epochs if args.streamed_epochs is None else args.streamed_epochs
            note += ("; " if note else "`bench/scale.py`: ") + (
                f"{big} rows streamed, {epochs} epoch{'s' if epochs > 1 else ''}"
                + (" (its samples/s include the first epoch's parsing, caching and tracing)" if epochs == 1 else ""))
        note += (f". MLP 64-64, batch 256, 20 features, validation and test 10% each; measured "
                 f"{time.strftime('%Y-%m-%d')}.")
        write_results(args.write, results, note)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
