"""Numbers written for people, at init's defaults: a generated table whose label depends on a price
("$2,984.63"), a rate ("6.5%"), a count ("16,881") and a score with "?" for unknown values.

    python bench/written.py [--tree DIR]

`init train.csv --target y --test test.csv` then `fit` and `evaluate` (test accuracy and exact AUC),
through the CLI of the nettrain package found in DIR (default: this checkout), so an older tree
(`git archive REV nettrain | tar -x -C DIR`) runs the same table for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def make_table(folder: Path, n: int = 6000, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    price = rng.lognormal(8, 1, n).round(2)
    rate = rng.uniform(0, 30, n).round(1)
    count = rng.integers(1000, 90_000, n)
    score = rng.normal(size=n).round(2)
    unknown = rng.random(n) < 0.1
    z = (np.log(price) - 8 + (rate - 15) / 8 + np.log(count) - np.log(30000) + np.where(unknown, 0, score)
         + 0.5 * rng.normal(size=n))
    table = pd.DataFrame({"price": [f"${v:,.2f}" for v in price], "rate": [f"{v}%" for v in rate],
                          "count": [f"{v:,}" for v in count], "score": np.where(unknown, "?", score.astype(str)),
                          "region": rng.choice(list("ABCD"), n), "y": np.where(z > 0, "yes", "no")})
    cut = int(0.8 * n)
    table.iloc[:cut].to_csv(folder / "train.csv", index=False)
    table.iloc[cut:].to_csv(folder / "test.csv", index=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(ROOT), help="folder holding the nettrain package to run")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(args.tree).resolve())}

    def cli(*words: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "nettrain", *words], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"nettrain {' '.join(words)} failed:\n{done.stderr[-2000:]}")
        return done

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_table(folder)
        os.chdir(folder)
        said = cli("init", "train.csv", "--target", "y", "--test", "test.csv", "-o", "c.yaml", "--force")
        print((said.stdout + said.stderr).splitlines()[0])
        cli("fit", "c.yaml", "--run-dir", "run", "--quiet")
        metrics = json.loads(cli("evaluate", "run", "--json").stdout)["metrics"]
        print(f"test accuracy {metrics['accuracy']:.4f}, exact AUC {metrics.get('auc_exact', float('nan')):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
