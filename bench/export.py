"""Predict throughput of a run's `.h5` against its SavedModel and ONNX exports, on the same rows.

    .venv/bin/python bench/export.py [--rows 200000] [--features 20] [--repeat 3] [--dir DIR]

Workload: a generated CSV of N rows (an integer `id`, F numeric features `x0`..., a 3-class label
`y`; numeric only, so that ONNX can carry it), a small model (Dense 32 relu, softmax head, batch
1024) trained with `nettrain fit` on a 20k-row sample, then `nettrain export` to savedmodel and onnx
(each verified by export itself; its max difference is printed).

Two measures, in one process, each the fastest of --repeat runs after one warm-up:
- predict:  `nettrain.api.predict(TARGET, big.csv, output=preds.csv)`, TARGET the run (.h5 path),
            the SavedModel folder or the .onnx file: the whole command path (chunked CSV read, the
            model, the prediction columns, the CSV written); rows per second.
- runtime:  the model alone on the same prepared float32 rows: Keras `model.predict` of the .h5
            (batch 1024), the SavedModel's `serving_default` and an onnxruntime session (chunks of
            4096 rows, `nettrain.lifecycle.served.run`); rows per second.
The predictions of the three predict runs are compared (same classes on every row).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_csv(path: Path, rows: int, features: int, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype("float32")
    score = x[:, : min(3, features)].sum(axis=1)
    y = np.where(score > 0.7, "high", np.where(score < -0.7, "low", "mid"))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(features)])
    frame.insert(0, "id", np.arange(rows))
    frame["y"] = y
    frame.to_csv(path, index=False, float_format="%.6f")


def best_of(repeat: int, step) -> float:
    step()  # warm-up: tracing, thread pools
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="nettrain-bench-export-"))
    work.mkdir(parents=True, exist_ok=True)

    import numpy as np
    import pandas as pd

    from nettrain import api
    from nettrain.data.rows import file_rows
    from nettrain.lifecycle import served
    from nettrain.lifecycle.target import load_model, resolve_target

    big, small = work / "big.csv", work / "train.csv"
    if not big.exists():
        make_csv(big, args.rows, args.features)
    make_csv(small, 20_000, args.features, seed=1)
    (work / "bench.yaml").write_text(textwrap.dedent(f"""
        data: {{source: {small}, target: y, id: id}}
        model: {{layers: [{{type: Dense, units: 32, activation: relu}}]}}
        training: {{epochs: 2, batch_size: 1024}}
        output: {{plots: false}}
    """).lstrip())
    run = work / "run"
    if not (run / "model.h5").exists():
        api.fit(work / "bench.yaml", run_dir=run, quiet=True)
    targets = {"h5": run}
    for fmt in ("savedmodel", "onnx"):
        result = api.export(run, format=fmt, force=True)
        print(f"export {fmt}: max_abs_diff {result.max_abs_diff:.3g} on {result.rows_compared} rows, "
              f"{result.seconds:.1f} s", file=sys.stderr)
        targets[fmt] = result.path if fmt == "savedmodel" else result.model_path

    out = {}
    preds = {}
    for name, target in targets.items():
        dest = work / f"preds-{name}.csv"
        seconds = best_of(args.repeat, lambda: api.predict(target, big, output=dest))
        preds[name] = pd.read_csv(dest)["prediction"].to_numpy()
        out[f"predict_{name}_rows_per_s"] = round(args.rows / seconds)
        print(f"predict {name}: {seconds:.2f} s, {args.rows / seconds:,.0f} rows/s", file=sys.stderr)
    out["same_predictions"] = bool(all((p == preds["h5"]).all() for p in preds.values()))

    target = resolve_target(run)
    rows = next(iter(file_rows(big, target.schema, require_target=False)))  # the first chunk, prepared
    n = len(rows)
    model = load_model(target)
    x = {"numeric": rows.inputs["numeric"]}
    runtime = {"h5": lambda: model.predict(x, batch_size=1024, verbose=0)}
    for fmt in ("savedmodel", "onnx"):
        folder = served.export_folder(Path(targets[fmt]))
        info, _, _ = served.read_export(folder)
        loaded = served.load(folder, info)
        feed = served.feed_of(rows, info)
        runtime[fmt] = lambda loaded=loaded, feed=feed: served.run(loaded, feed)
    for name, step in runtime.items():
        seconds = best_of(args.repeat, step)
        out[f"runtime_{name}_rows_per_s"] = round(n / seconds)
        print(f"runtime {name}: {n} rows in {seconds:.3f} s, {n / seconds:,.0f} rows/s", file=sys.stderr)
    out.update(rows=args.rows, runtime_rows=n, features=args.features)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
