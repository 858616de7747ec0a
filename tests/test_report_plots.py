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
    from nettrain.report.metrics import r2_score

    assert r2_score([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert r2_score([1, 2, 3, 4], [2.5, 2.5, 2.5, 2.5]) == pytest.approx(0.0)
    assert r2_score([1, 2, 3], [1, 2, 4]) == pytest.approx(1 - 1 / 2)
    # a constant target: scikit-learn's rule (issue 21), 0 when missed, 1 when predicted exactly
    assert r2_score([2, 2, 2], [1, 2, 3]) == 0.0 and r2_score([2, 2, 2], [2, 2, 2]) == 1.0


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


# ------------------------------------------------------ best epoch, log scale, several runs

def spy_figures(monkeypatch) -> list[list[dict]]:
    """Per saved figure, per axes: title, y scale, and its lines (label, style, colour, marker, x, y)."""
    saved: list[list[dict]] = []
    original = plots.atomic_savefig

    def spy(fig, path, **kwargs):
        saved.append([{"title": ax.get_title(), "yscale": ax.get_yscale(),
                       "lines": [(ln.get_label(), ln.get_linestyle(), ln.get_color(), ln.get_marker(),
                                  list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()]}
                      for ax in fig.axes if ax.get_visible() and ax.axison])
        return original(fig, path, **kwargs)

    monkeypatch.setattr(plots, "atomic_savefig", spy)
    return saved


def test_learning_curves_marks_the_best_epoch(tmp_path, monkeypatch):
    saved = spy_figures(monkeypatch)
    plain = plots.learning_curves(history(), tmp_path / "plain.png")
    marked = plots.learning_curves(history(), tmp_path / "marked.png", best_epoch=5, monitor="val_loss")
    png_size(marked)
    assert Path(plain).read_bytes() != Path(marked).read_bytes()
    loss, accuracy = saved[1]
    stars = [ln for ln in loss["lines"] if ln[3] == "*"]
    assert [(s[0], s[4], s[5]) for s in stars] == [("best epoch 5 (val_loss)", [5], [pytest.approx(1.2 / 5)])]
    # the other panels get a dotted line at the same epoch
    assert [(ln[1], ln[4]) for ln in accuracy["lines"] if ln[0].startswith("best epoch")] == [(":", [5, 5])]
    assert not any(ln[0].startswith("best") for ln in saved[0][0]["lines"])  # no marker unless asked


def test_learning_curves_best_epoch_without_monitor_or_outside_the_curve(tmp_path):
    png_size(plots.learning_curves(history(), tmp_path / "a.png", best_epoch=3))
    png_size(plots.learning_curves(history(), tmp_path / "b.png", best_epoch=99, monitor="val_loss"))
    png_size(plots.learning_curves({"loss": [0.5, 0.4]}, tmp_path / "c.png", best_epoch=2, monitor="val_auc"))


def test_loss_axis_turns_logarithmic_beyond_two_decades(tmp_path, monkeypatch):
    saved = spy_figures(monkeypatch)
    e = np.arange(1, 21)
    plots.learning_curves({"epoch": e, "loss": 100.0 * 0.6 ** e, "accuracy": 1 - 0.9 ** e}, tmp_path / "a.png")
    plots.learning_curves(history(), tmp_path / "b.png")
    assert [p["yscale"] for p in saved[0]] == ["log", "linear"]
    assert [p["yscale"] for p in saved[1]] == ["linear", "linear"]


@pytest.mark.parametrize("values, expected", [
    ([[100.0, 10.0, 0.5]], True), ([[1.0, 0.5], [0.005]], True), ([[1.0, 0.011]], False),
    ([[1.0, -0.5, 1e-5]], False), ([[math.nan, 1.0, 0.001]], True), ([[5.0]], False), ([], False),
])
def test_wants_log_scale(values, expected):
    assert plots.wants_log_scale(*values) is expected


def test_metric_columns():
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "mae"]
    assert plots.metric_columns(cols, "loss") == ("loss", "val_loss")
    assert plots.metric_columns(cols, "mae") == ("mae", None)
    assert plots.metric_columns(cols, "val_accuracy") == (None, "val_accuracy")
    assert plots.metric_columns(cols, "auc") == (None, None)
    assert plots.metric_columns(cols, "epoch") == (None, None)


def test_overlay_curves(tmp_path, monkeypatch):
    saved = spy_figures(monkeypatch)
    runs = [plots.Curves(f"run {i}", history(4 + i), best_epoch=2 + i, monitor="val_loss") for i in range(5)]
    runs.append(plots.Curves("no validation", {"loss": [0.9, 0.8]}))
    out = plots.overlay_curves(runs, "loss", tmp_path / "all.png")
    width, _ = png_size(out)
    (axes,) = saved[0]
    assert axes["title"].startswith("loss: 6 runs")
    by_label = {ln[0]: ln for ln in axes["lines"]}
    assert by_label["run 0 train"][1] == "-" and by_label["run 0 validation"][1] == "--"
    colours = {by_label[f"run {i} train"][2] for i in range(5)}
    assert len(colours) == 5
    assert by_label["run 3 best epoch 5 (val_loss)"][3] == "*"
    assert by_label["run 3 best epoch 5 (val_loss)"][4] == [5]
    assert "no validation validation" not in by_label
    few, _ = png_size(plots.overlay_curves(runs[:2], "loss", tmp_path / "two.png"))
    assert width > few  # with many runs the legend moves beside the chart


def test_overlay_curves_needs_no_pyplot(tmp_path):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    plots.overlay_curves([plots.Curves("a", history())], "accuracy", tmp_path / "a.png")
    assert set(plt.get_fignums()) == before
