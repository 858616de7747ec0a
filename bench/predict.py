"""Wall time and peak memory of `nettrain predict` on a large CSV against a plain script.

    .venv/bin/python bench/predict.py [--rows 2000000 4000000] [--features 20] [--batch 1024] [--dir DIR]
                                      [--throughput]

With --throughput: rows/s of `nettrain predict` and `nettrain evaluate --data` against plain pyarrow +
Keras scripts doing the same (`ARROW_PREDICT`, `ARROW_EVALUATE`), measured in one run (issue 25).

Workload: a generated CSV of N rows (an integer `id`, F numeric features `x0`..., a 3-class label
`y`), and a small model (Dense 32 relu, softmax head) trained with `nettrain fit` on a 20k-row
sample of it first, at batch size B (predict uses the run's batch size).

Contenders, each in a fresh process, timed from its start to its end (Python, TensorFlow and the
model loading included in both), with the process's peak RSS (getrusage of the child):
- plain script     pandas.read_csv of the whole file, keras.models.load_model, model.predict
                   (batch_size=B), the class names, DataFrame(id, prediction).to_csv
- nettrain predict `nettrain predict RUN big.csv --output preds.csv`: the file read in chunks,
                   the predictions written chunk by chunk into one temporary file, renamed at the end

Each contender runs --repeat times (alternating with the other); the fastest wall and the largest
peak RSS are kept. Printed per size: both walls, their ratio (target: nettrain <= 1.25x the plain script) and both
peak RSS (nettrain's should not grow with the file). The two outputs are compared row by row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent

PLAIN = textwrap.dedent("""
    import json, sys
    import numpy as np, pandas as pd, keras
    run, source, out, batch = sys.argv[1:]
    df = pd.read_csv(source)
    model = keras.models.load_model(f"{run}/model.h5")
    x = df[[c for c in df.columns if c.startswith("x")]].to_numpy(dtype="float32")
    p = model.predict({"numeric": x}, batch_size=int(batch), verbose=0)
    classes = np.array(json.load(open(f"{run}/features.json"))["class_names"], dtype=object)
    pd.DataFrame({"id": df["id"], "prediction": classes[p.argmax(axis=1)]}).to_csv(out, index=False)
""")


def make_csv(path: Path, rows: int, features: int, seed: int = 0, block: int = 500_000) -> None:
    """`rows` rows written block by block (pyarrow's CSV writer; 6 decimals per value)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pc

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(features, 3))
    schema = pa.schema([("id", pa.int64())] + [(f"x{j}", pa.float64()) for j in range(features)] + [("y", pa.string())])
    with pc.CSVWriter(str(path), schema) as writer:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            x = np.round(rng.normal(size=(n, features)), 6)
            y = np.array(["a", "b", "c"], dtype=object)[(x @ weights).argmax(axis=1)]
            columns = [pa.array(np.arange(start, start + n))] + [pa.array(x[:, j]) for j in range(features)] \
                + [pa.array(y, type=pa.string())]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def timed(cmd: list[str], log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def same_predictions(a: Path, b: Path) -> int:
    """The number of rows whose id or prediction differ (the files must have as many rows)."""
    import pyarrow.csv as pc

    ta, tb = pc.read_csv(a).to_pandas(), pc.read_csv(b).to_pandas()
    if len(ta) != len(tb) or list(ta.columns) != list(tb.columns):
        sys.exit(f"{a} and {b} differ in shape: {ta.shape} {tb.shape}")
    return int(((ta["id"] != tb["id"]) | (ta["prediction"] != tb["prediction"])).sum())

# --throughput (issue 25): what nettrain's predict and evaluate --data do, written plainly with pyarrow and
# Keras: the whole file read by pyarrow, the model's own preprocessing, large batches, pyarrow's writer.
ARROW_PREDICT = textwrap.dedent("""
    import json, sys
    import numpy as np, pyarrow as pa, pyarrow.csv as pc, keras
    run, source, out, batch = sys.argv[1:]
    table = pc.read_csv(source)
    model = keras.models.load_model(f"{run}/model.h5")
    x = np.column_stack([table[c].to_numpy() for c in table.column_names if c.startswith("x")]).astype("float32")
    p = model.predict({"numeric": x}, batch_size=int(batch), verbose=0)
    classes = np.array(json.load(open(f"{run}/features.json"))["class_names"], dtype=object)
    pc.write_csv(pa.table({"id": table["id"], "prediction": pa.array(classes[p.argmax(axis=1)], pa.string())}), out)
""")
ARROW_EVALUATE = textwrap.dedent("""
    import json, sys
    import numpy as np, pyarrow.csv as pc, keras
    run, source, batch = sys.argv[1:3] + sys.argv[4:]
    table = pc.read_csv(source)
    model = keras.models.load_model(f"{run}/model.h5")
    x = np.column_stack([table[c].to_numpy() for c in table.column_names if c.startswith("x")]).astype("float32")
    classes = json.load(open(f"{run}/features.json"))["class_names"]
    y = np.searchsorted(np.array(classes), table["y"].to_numpy(zero_copy_only=False))
    print(json.dumps(model.evaluate({"numeric": x}, y, batch_size=int(batch), verbose=0, return_dict=True)))
""")


def throughput(python: str, run: Path, source: Path, rows: int, batch: int, repeat: int, work: Path) -> dict:
    """rows/s of `nettrain predict` and `nettrain evaluate --data` against the pyarrow + Keras scripts (the
    fastest of `repeat` alternating runs of each, from process start to end: TensorFlow's import included)."""
    runs = {"arrow_predict": [python, "-c", ARROW_PREDICT, str(run), str(source), str(work / "arrow.csv"),
                              str(batch)],
            "nettrain_predict": [python, "-m", "nettrain", "predict", str(run), str(source), "--output",
                                 str(work / "nettrain.csv")],
            "arrow_evaluate": [python, "-c", ARROW_EVALUATE, str(run), str(source), "-", str(batch)],
            "nettrain_evaluate": [python, "-m", "nettrain", "evaluate", str(run), "--data", str(source), "--json"]}
    best = {name: float("inf") for name in runs}
    for _ in range(repeat):
        for name, cmd in runs.items():
            best[name] = min(best[name], timed(cmd, work / f"{name}.log")[0])
    out = {"rows": rows, "file_mib": round(source.stat().st_size / 2**20)}
    for name, wall in best.items():
        out[f"{name}_s"] = round(wall, 2)
        out[f"{name}_rows_s"] = round(rows / wall)
    out["predict_ratio"] = round(best["arrow_predict"] / best["nettrain_predict"], 3)     # >= 0.8: the goal
    out["evaluate_ratio"] = round(best["arrow_evaluate"] / best["nettrain_evaluate"], 3)
    out["rows_differing"] = same_predictions(work / "arrow.csv", work / "nettrain.csv")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 4_000_000])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender; the fastest is kept")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--throughput", action="store_true", help="rows/s of nettrain predict and evaluate --data "
                        "against a plain pyarrow + Keras script (issue 25) instead of the pandas comparison")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        work = args.dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        make_csv(work / "sample.csv", 20_000, args.features, seed=1)
        (work / "config.yaml").write_text(textwrap.dedent(f"""
            name: bench-predict
            data: {{source: sample.csv, target: y, id: id}}
            model: {{layers: [{{type: Dense, units: 32, activation: relu}}]}}
            training: {{epochs: 3, batch_size: {args.batch}}}
            output: {{plots: false}}
        """))
        run = work / "run"
        if not (run / "model.h5").is_file():
            timed([python, "-m", "nettrain", "fit", str(work / "config.yaml"), "--run-dir", str(run), "--quiet",
                   "--force"], work / "fit.log")
        results = []
        for rows in args.rows:
            source = work / f"big-{rows}.csv"
            if not source.is_file():
                print(f"generating {source.name} ...", flush=True)
                make_csv(source, rows, args.features)
            size = source.stat().st_size / 2**20
            if args.throughput:
                row = throughput(python, run, source, rows, args.batch, args.repeat, work)
                results.append(row)
                print(json.dumps(row), flush=True)
                continue
            plain, nettrain = [], []
            for _ in range(args.repeat):  # alternately, so that a busy spell of the machine hits both
                plain.append(timed([python, "-c", PLAIN, str(run), str(source), str(work / "plain.csv"),
                                    str(args.batch)], work / "plain.log"))
                nettrain.append(timed([python, "-m", "nettrain", "predict", str(run), str(source), "--output",
                                       str(work / "nettrain.csv")], work / "nettrain.log"))
            plain_wall, plain_rss = min(w for w, _ in plain), max(r for _, r in plain)
            nt_wall, nt_rss = min(w for w, _ in nettrain), max(r for _, r in nettrain)
            differ = same_predictions(work / "plain.csv", work / "nettrain.csv")
            results.append({"rows": rows, "file_mib": round(size), "plain_s": round(plain_wall, 2),
                            "nettrain_s": round(nt_wall, 2), "ratio": round(nt_wall / plain_wall, 3),
                            "plain_rss_mib": round(plain_rss), "nettrain_rss_mib": round(nt_rss),
                            "rows_differing": differ})
            print(f"{rows:>9,} rows ({size:,.0f} MiB): plain {plain_wall:6.2f} s, {plain_rss:6.0f} MiB peak RSS | "
                  f"nettrain predict {nt_wall:6.2f} s, {nt_rss:6.0f} MiB peak RSS | ratio {nt_wall / plain_wall:.3f}"
                  f" | rows differing: {differ}", flush=True)
            for name in (source, work / "plain.csv", work / "nettrain.csv"):
                if args.dir is None:
                    name.unlink(missing_ok=True)
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
