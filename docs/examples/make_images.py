"""Regenerate the images of docs/reading-your-network.md (about a minute on 2 CPU cores):

    .venv/bin/python docs/examples/make_images.py

inspect on the two example stacks, a 30-epoch run of each with callbacks.gradient_stats (their
plots/gradients.png), and lr-find on configs/iris.yaml. Runs go to a temporary folder.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
IMG = ROOT / "docs" / "img"
sys.path.insert(0, str(ROOT))


def nettrain(*args) -> None:
    subprocess.run([sys.executable, "-m", "nettrain", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from nettrain import api

    IMG.mkdir(exist_ok=True)
    reports = {}
    for name in ("sigmoid", "relu"):
        with contextlib.redirect_stdout(io.StringIO()):
            reports[name] = api.inspect_model(HERE / f"deep-{name}.yaml")
    fig = Figure(figsize=(8.0, 4.4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for name, color, label in (("sigmoid", "tab:red", "8 x Dense sigmoid, Glorot"),
                               ("relu", "tab:blue", "8 x Dense relu, He")):
        layers = [x for x in reports[name].layers if x.grad_per_weight is not None]
        ax.plot(range(1, len(layers) + 1), [x.grad_per_weight for x in layers], marker="o", color=color, label=label)
    ax.set_yscale("log")
    ax.set_xticks(range(1, 10), [f"{i}" for i in range(1, 9)] + ["out"])
    ax.set_xlabel("layer (1 = first after the inputs)")
    ax.set_ylabel("gradient per weight (log scale)")
    ax.set_title("nettrain inspect: gradients at initialization, one batch of 256 rows")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(IMG / "inspect-sigmoid-vs-relu.png")

    with tempfile.TemporaryDirectory() as tmp:  # fresh processes: Keras names the layers dense, dense_1, ...
        for name in ("sigmoid", "relu"):
            run = Path(tmp) / name
            nettrain("fit", HERE / f"deep-{name}.yaml", "--run-dir", run, "--quiet")
            shutil.copyfile(run / "plots" / "gradients.png", IMG / f"gradients-deep-{name}.png")
        nettrain("lr-find", ROOT / "configs" / "iris.yaml", "--output", Path(tmp) / "lr")
        shutil.copyfile(Path(tmp) / "lr" / "lr_find.png", IMG / "lr-find-iris.png")
    print(f"wrote {', '.join(sorted(p.name for p in IMG.glob('*.png')))} in {IMG}")


if __name__ == "__main__":
    main()
