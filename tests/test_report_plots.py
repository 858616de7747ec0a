"""PNG plots (nettrain.report.plots): files written atomically, light imports, no figure leaks."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrain.report import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path, min_bytes: int = 5000) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is suspiciously small ({len(data)} bytes)"
    width, height = struct.unpack(">II", data[16:24])  # IHDR follows the signature
    return width, height


def history(epochs: int = 8, lr=None) -> pd.DataFrame:
    e = np.arange(1, epochs + 1)
    return pd.DataFrame({
        "epoch": e,
        "loss": 1.0 / e,
        "accuracy": 1 - 0.5 / e,
        "val_loss": 1.2 / e,
        "val_accuracy": 1 - 0.6 / e,
        "learning_rate": lr if lr is not None else [0.001] * epochs,
        "seconds": [0.5] * epochs,
    })


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


def test_learning_curves_from_dataframe(tmp_path):
    out = tmp_path / "plots" / "learning_curves.png"  # parent does not exist yet
    result = plots.learning_curves(history(), out)
    assert Path(result) == out
    png_size(out)
    assert no_temp_files(out.parent)


def test_learning_curves_from_keras_history_dict(tmp_path):
    out = tmp_path / "lc.png"
    plots.learning_curves({"loss": [0.9, 0.5, 0.4], "val_loss": [1.0, 0.7, 0.6], "mae": [3.0, 2.0, 1.5]}, out)
    png_size(out)


def test_learning_curves_single_epoch_and_empty(tmp_path):
    png_size(plots.learning_curves({"loss": [0.5], "val_loss": [0.6]}, tmp_path / "one.png"))
    # nothing to draw: still a valid image (a "no metrics recorded" note), never a crash
    png_size(plots.learning_curves({"epoch": [1, 2], "seconds": [1.0, 1.0]}, tmp_path / "none.png"), 1000)


def test_curve_panels_pairs_train_and_validation():
    panels = plots.curve_panels(history())
    assert panels == [("loss", "loss", "val_loss"), ("accuracy", "accuracy", "val_accuracy")]
    # loss first even when logged later; a validation-only quantity gets its own panel
    panels = plots.curve_panels({"mae": [1.0], "loss": [2.0], "val_auc": [0.5]})
    assert panels == [("loss", "loss", None), ("mae", "mae", None), ("auc", None, "val_auc")]


def test_learning_rate_panel_only_when_it_varies(tmp_path):
    varying = history(lr=[0.001] * 4 + [0.0005] * 4)
    assert plots.curve_panels(varying)[-1] == ("learning rate", "learning_rate", None)
    assert all(p[0] != "learning rate" for p in plots.curve_panels(history()))
    # one more subplot makes a wider figure (panels are laid out side by side up to 3)
    w_const, _ = png_size(plots.learning_curves(history(), tmp_path / "const.png"))
    w_vary, _ = png_size(plots.learning_curves(varying, tmp_path / "vary.png"))
    assert w_vary > w_const


def test_learning_curves_rejects_other_types(tmp_path):
    with pytest.raises(TypeError):
        plots.learning_curves([1, 2, 3], tmp_path / "x.png")


def test_confusion_matrix_plot_small_and_large(tmp_path):
    small = plots.confusion_matrix_plot([[5, 1, 0], [0, 4, 2], [1, 0, 7]], ["setosa", "versicolor", "virginica"],
                                        tmp_path / "cm3.png")
    png_size(small)
    rng = np.random.default_rng(0)
    large = plots.confusion_matrix_plot(rng.integers(0, 30, (40, 40)), [f"class {i}" for i in range(40)],
                                        tmp_path / "cm40.png")
    w_small, _ = png_size(small)
    w_large, _ = png_size(large)
    assert w_large > w_small  # the figure grows with the number of classes


def test_confusion_matrix_plot_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="square"):
        plots.confusion_matrix_plot([[1, 2, 3], [4, 5, 6]], ["a", "b"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="class names"):
        plots.confusion_matrix_plot([[1, 0], [0, 1]], ["a"], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_predicted_vs_actual(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    out = plots.predicted_vs_actual(y.reshape(-1, 1), y + rng.normal(scale=0.2, size=300), tmp_path / "pva.png")
    png_size(out)
    with pytest.raises(ValueError):
        plots.predicted_vs_actual([1, 2, 3], [1, 2], tmp_path / "bad.png")


def test_r2_score():
    assert plots.r2_score([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert plots.r2_score([1, 2, 3, 4], [2.5, 2.5, 2.5, 2.5]) == pytest.approx(0.0)
    assert plots.r2_score([1, 2, 3], [1, 2, 4]) == pytest.approx(1 - 1 / 2)
    assert math.isnan(plots.r2_score([2, 2, 2], [1, 2, 3]))


def test_plots_overwrite_in_place(tmp_path):
    out = tmp_path / "lc.png"
    out.write_bytes(b"old")
    plots.learning_curves(history(), out)
    png_size(out)
    assert no_temp_files(tmp_path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    plots.atomic_write_bytes(target, b"first")
    assert target.read_bytes() == b"first"

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(plots.os, "replace", broken_replace)
    from nettrain.errors import WriteFailed

    with pytest.raises(WriteFailed, match=r"cannot write .*f\.bin: disk full"):  # names the file and the cause
        plots.atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"first"
    assert no_temp_files(tmp_path)


def test_no_figures_left_behind(tmp_path):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    for i in range(3):
        plots.learning_curves(history(), tmp_path / f"lc{i}.png")
        plots.confusion_matrix_plot([[1, 0], [0, 1]], ["a", "b"], tmp_path / f"cm{i}.png")
        plots.predicted_vs_actual([1, 2, 3], [1, 2, 3.5], tmp_path / f"p{i}.png")
    assert set(plt.get_fignums()) == before


def test_import_is_light_and_plotting_needs_no_tensorflow(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import nettrain.report
        heavy = [m for m in ("matplotlib", "pandas", "tensorflow", "keras") if m in sys.modules]
        assert not heavy, f"importing nettrain.report loaded {{heavy}}"
        from nettrain.report import learning_curves
        learning_curves({{"loss": [1.0, 0.5]}}, {str(tmp_path / "x.png")!r})
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        assert "matplotlib.pyplot" not in sys.modules
        import matplotlib
        assert matplotlib.get_backend().lower() == "agg"
    """)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    png_size(tmp_path / "x.png")
