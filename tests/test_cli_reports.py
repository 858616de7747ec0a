"""The reporting commands end to end: `runs` (--json, --sort, --filter, --last), `plot`, `compare`,
plus the help texts' metavars and shell completion. Run directories are written by hand (run.json,
metrics.csv, config.yaml): no training, no TensorFlow."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

BASE_CONFIG = {
    "name": "iris", "seed": 42,
    "data": {"source": "data/iris.csv", "target": "species", "split": {"test": 0.2, "validation": 0.2}},
    "model": {"layers": [{"type": "Dense", "units": 16, "activation": "relu"}], "output": "auto"},
    "training": {"loss": "auto", "optimizer": "adam", "epochs": 20, "batch_size": 32},
}


def history(epochs: int, loss0: float = 1.0, decay: float = 0.7, acc: bool = True) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "loss": loss0 * decay ** e, "val_loss": loss0 * 1.1 * decay ** e}
        if acc:
            row.update(accuracy=1 - 0.5 * decay ** e, val_accuracy=1 - 0.6 * decay ** e)
        row.update(learning_rate=0.001, seconds=0.1)
        rows.append(row)
    return rows


def make_run(root: Path, rel: str, *, config: dict | None = None, rows: list[dict] | None = None, **run) -> Path:
    """A run directory as `fit` leaves it, as far as the reporting commands read it."""
    folder = root / rel
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run))
    if rows is not None:
        columns = list(rows[0])
        lines = [",".join(columns)] + [",".join(repr(float(r[c])) if c != "epoch" else str(r[c]) for c in columns)
                                       for r in rows]
        (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    if config is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def config_with(**changes) -> dict:
    cfg = json.loads(json.dumps(BASE_CONFIG))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = cfg
        for part in path:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    return cfg


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Four runs (two iris, one regression, one interrupted) and one unreadable run.json."""
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "iris/20240101-100000", name="iris", status="completed", task="multiclass",
             started="2024-01-01T10:00:00", ended="2024-01-01T10:01:00", epochs=5, epochs_done=5, best_epoch=4,
             monitor="val_loss", data={"rows": {"train": 90, "validation": 30, "test": 30}},
             final_metrics={"train": {"loss": 0.1, "accuracy": 0.97},
                            "validation": {"loss": 0.2, "accuracy": 0.95},
                            "test": {"loss": 0.25, "accuracy": 0.9333}},
             rows=history(5), config=config_with(training__epochs=5))
    make_run(root, "iris/20240201-080000", name="iris", status="completed", task="multiclass",
             started="2024-02-01T08:00:00", epochs=8, epochs_done=8, best_epoch=6, stopped_epoch=8,
             monitor="val_loss", data={"rows": {"train": 90, "validation": 30, "test": 30}},
             final_metrics={"train": {"loss": 0.05, "accuracy": 0.99},
                            "validation": {"loss": 0.3, "accuracy": 0.9},
                            "test": {"loss": 0.1, "accuracy": 0.9667}},
             rows=history(8, loss0=100.0, decay=0.3),
             config=config_with(training__epochs=8, model__layers__0__units=32, training__optimizer="sgd"))
    make_run(root, "housing/20240301-090000", name="housing", status="failed", task="regression",
             started="2024-03-01T09:00:00+00:00", epochs=10, epochs_done=3, monitor="val_loss",
             final_metrics={"train": {"loss": 12.0, "mae": 2.5}, "validation": {"loss": 15.5, "mae": 3.25}},
             rows=history(3, loss0=20.0, acc=False), config=config_with(name="housing"))
    make_run(root, "wine/20240401-000000", name="wine", status="interrupted", task="multiclass",
             started="2024-04-01T00:00:00", epochs=10, epochs_done=2, final_metrics=None)
    (root / "broken" / "r1").mkdir(parents=True)
    (root / "broken" / "r1" / "run.json").write_text("{not json")
    return root


IRIS_JAN, IRIS_FEB = "iris/20240101-100000", "iris/20240201-080000"
HOUSING, WINE = "housing/20240301-090000", "wine/20240401-000000"


def listed(result, root: Path) -> list[str]:
    """Run paths of a `runs --json` answer, relative to the root."""
    assert result.exit_code == 0, result.output
    return [Path(r["path"]).relative_to(root).as_posix() for r in json.loads(result.stdout)]


def strict_json(text: str):
    def no_constant(name):
        raise AssertionError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=no_constant)


# ================================================================================ runs

def test_runs_json_is_one_array_on_stdout_and_notes_go_to_stderr(root):
    result = runner.invoke(app, ["runs", str(root), "--json"])
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)  # the whole of stdout is the array
    assert isinstance(data, list) and len(data) == 4
    assert [Path(r["path"]).relative_to(root).as_posix() for r in data] == [WINE, HOUSING, IRIS_FEB, IRIS_JAN]
    jan = data[3]
    for key in ("path", "name", "status", "started", "ended", "epochs_done", "best_epoch", "metrics",
                "metrics_split", "final_metrics"):
        assert key in jan, key
    assert jan["name"] == "iris" and jan["status"] == "completed" and jan["best_epoch"] == 4
    assert jan["metrics_split"] == "test" and jan["metrics"] == {"loss": 0.25, "accuracy": 0.9333}
    assert jan["final_metrics"]["validation"]["loss"] == 0.2
    assert data[1]["metrics_split"] == "validation" and data[1]["metrics"]["mae"] == 3.25
    assert data[0]["final_metrics"] is None and data[0]["metrics"] == {}
    assert "1 unreadable run.json file skipped" in result.stderr and "broken/r1/run.json" in result.stderr
    assert "skipped" not in result.stdout


def test_the_library_returns_the_listing_and_the_comparison_and_prints_nothing(root, capfd):
    """api returns, cli renders: `list_runs` and `compare_runs` hand back what `runs` and
    `compare` show, and write nothing to stdout or stderr themselves."""
    from nettrain import api

    listing = api.list_runs(root, sort="loss", filters=["name=iris"])
    comparison = api.compare_runs(root / IRIS_JAN, root / HOUSING)
    assert capfd.readouterr() == ("", "")
    assert [Path(r["path"]).relative_to(root).as_posix() for r in listing.to_json()] == [IRIS_FEB, IRIS_JAN]
    assert len(listing.found) == 4 and "broken/r1/run.json" in listing.note
    assert comparison["runs"][1]["status"] == "failed"
    shown = runner.invoke(app, ["runs", str(root), "--json", "--sort", "loss", "--filter", "name=iris"])
    assert strict_json(shown.stdout) == listing.to_json()


def test_runs_json_writes_nan_as_null(tmp_path):
    make_run(tmp_path, "a", name="a", status="failed", final_metrics={"validation": {"loss": math.nan, "mae": 1.0}})
    result = runner.invoke(app, ["runs", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    (run,) = strict_json(result.stdout)
    assert run["final_metrics"]["validation"]["loss"] is None


def test_runs_json_empty_root_is_an_empty_array(tmp_path):
    result = runner.invoke(app, ["runs", str(tmp_path), "--json"])
    assert result.exit_code == 0 and strict_json(result.stdout) == []


def test_runs_sort_by_loss_lowest_first_runs_without_it_last(root):
    order = listed(runner.invoke(app, ["runs", str(root), "--json", "--sort", "val_loss"]), root)
    assert order == [IRIS_JAN, IRIS_FEB, HOUSING, WINE]


def test_runs_sort_by_accuracy_highest_first(root):
    order = listed(runner.invoke(app, ["runs", str(root), "--json", "--sort", "accuracy"]), root)
    assert order == [IRIS_FEB, IRIS_JAN, WINE, HOUSING]  # no accuracy: last, newest first
    order = listed(runner.invoke(app, ["runs", str(root), "--json", "--sort", "train.accuracy"]), root)
    assert order[:2] == [IRIS_FEB, IRIS_JAN]
    order = listed(runner.invoke(app, ["runs", str(root), "--json", "--sort", "test.loss"]), root)
    assert order[:2] == [IRIS_FEB, IRIS_JAN]


def test_runs_sort_table_shows_the_sort_metric(root):
    result = runner.invoke(app, ["runs", str(root), "--sort", "test.accuracy"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(ln for ln in lines if ln.strip().startswith("run "))
    assert "test.accuracy" in header
    feb = next(i for i, ln in enumerate(lines) if IRIS_FEB in ln)
    jan = next(i for i, ln in enumerate(lines) if IRIS_JAN in ln)
    assert feb < jan
    assert "sorted by test.accuracy (highest first)" in result.stdout


def test_runs_sort_unknown_metric_exits_2_listing_the_names(root):
    result = runner.invoke(app, ["runs", str(root), "--sort", "val_acuracy"])
    assert result.exit_code == 2
    assert result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    for word in ("val_acuracy", "available", "accuracy", "val_loss", "mae", "test.accuracy"):
        assert word in message, message


def test_runs_filter(root):
    assert listed(runner.invoke(app, ["runs", str(root), "--json", "--filter", "status=completed"]), root) == [
        IRIS_FEB, IRIS_JAN]
    assert listed(runner.invoke(app, ["runs", str(root), "--json", "--filter", "task=regression"]), root) == [HOUSING]
    both = ["--filter", "name=iris", "--filter", "stopped_epoch=8"]
    assert listed(runner.invoke(app, ["runs", str(root), "--json", *both]), root) == [IRIS_FEB]
    dotted = ["--filter", "data.rows.test=30", "--filter", "best_epoch=4"]  # nested keys, numbers as text
    assert listed(runner.invoke(app, ["runs", str(root), "--json", *dotted]), root) == [IRIS_JAN]
    assert listed(runner.invoke(app, ["runs", str(root), "--json", "--filter", "final_metrics=null"]), root) == [WINE]


def test_runs_filter_matching_nothing(root):
    result = runner.invoke(app, ["runs", str(root), "--filter", "name=zzz"])
    assert result.exit_code == 0
    assert f"no runs match name=zzz under {root} (4 runs there)" in result.stdout


@pytest.mark.parametrize("spec, words", [
    ("status", ["--filter 'status'", "KEY=VALUE"]),
    ("=completed", ["KEY=VALUE"]),
    ("data..rows=3", ["KEY=VALUE"]),
    ("stauts=completed", ["'stauts'", "status", "name"]),
])
def test_runs_bad_filter_exits_2(root, spec, words):
    result = runner.invoke(app, ["runs", str(root), "--filter", spec])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in result.stderr, result.stderr


def test_runs_last_takes_the_newest_after_filter_then_sorts(root):
    assert listed(runner.invoke(app, ["runs", str(root), "--json", "--last", "2"]), root) == [WINE, HOUSING]
    # the newest iris run only, although the older one has the lower val_loss
    args = ["--filter", "name=iris", "--last", "1", "--sort", "val_loss"]
    assert listed(runner.invoke(app, ["runs", str(root), "--json", *args]), root) == [IRIS_FEB]
    # the three newest, best first
    order = listed(runner.invoke(app, ["runs", str(root), "--json", "--last", "3", "--sort", "val_loss"]), root)
    assert order == [IRIS_FEB, HOUSING, WINE]
    result = runner.invoke(app, ["runs", str(root), "--last", "3"])
    assert "3 of 4 runs: --last 3" in result.stdout


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_runs_bad_last_exits_2(root, value):
    result = runner.invoke(app, ["runs", str(root), "--last", value])
    assert result.exit_code == 2
    assert "--last" in result.output


def test_runs_table_uses_four_significant_digits(root):
    result = runner.invoke(app, ["runs", str(root)])
    housing = next(ln for ln in result.stdout.splitlines() if HOUSING in ln)
    assert "15.50" in housing and "3.250" in housing and "15.5000" not in housing
    jan = next(ln for ln in result.stdout.splitlines() if IRIS_JAN in ln)
    assert "0.9333" in jan and "0.2500" in jan


def test_piped_runs_keep_each_row_on_one_line(root):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-m", "nettrain", "runs", str(root), "--sort", "test.accuracy"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    jan = [ln for ln in lines if IRIS_JAN in ln]
    assert len(jan) == 1
    assert "2024-01-01 10:00:00" in jan[0] and "5 (best 4)" in jan[0] and jan[0].rstrip().endswith("0.9333")
    assert max(len(ln.rstrip()) for ln in lines) > 80  # wider than a default terminal, and not folded
    assert sum(1 for ln in lines if "/2024" in ln) == 4


# ================================================================================ plot

class Captured:
    """What overlay_curves drew: per line its label, style and colour; the y scale."""

    def __init__(self, monkeypatch):
        from nettrain.report import plots

        self.figures = []
        original = plots.atomic_savefig

        def spy(fig, path, **kwargs):
            ax = fig.axes[0]
            self.figures.append({
                "yscale": ax.get_yscale(),
                "lines": [(ln.get_label(), ln.get_linestyle(), ln.get_color(), ln.get_marker(),
                           list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()],
                "legend": [t.get_text() for t in ax.get_legend().get_texts()],
            })
            return original(fig, path, **kwargs)

        monkeypatch.setattr(plots, "atomic_savefig", spy)


def test_plot_several_runs_default_output_in_the_current_folder(root, tmp_path, monkeypatch):
    captured = Captured(monkeypatch)
    monkeypatch.chdir(tmp_path)
    jan, feb = root / IRIS_JAN, root / IRIS_FEB
    result = runner.invoke(app, ["plot", str(jan), str(feb)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "learning-curves.png"
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert "wrote learning-curves.png" in result.stdout
    (fig,) = captured.figures
    curves = {label: (style, color) for label, style, color, marker, _, _ in fig["lines"] if marker != "*"}
    assert curves[f"{jan} train"][0] == "-" and curves[f"{jan} validation"][0] == "--"
    assert curves[f"{jan} train"][1] == curves[f"{jan} validation"][1]  # one colour per run
    assert curves[f"{jan} train"][1] != curves[f"{feb} train"][1]
    stars = [line for line in fig["lines"] if line[3] == "*"]
    assert [(s[0], s[4], s[5]) for s in stars] == [
        (f"{jan} best epoch 4 (val_loss)", [4], [pytest.approx(1.1 * 0.7 ** 4)]),
        (f"{feb} best epoch 6 (val_loss)", [6], [pytest.approx(110 * 0.3 ** 6)])]
    assert f"{jan} best epoch 4 (val_loss)" in fig["legend"]
    assert fig["yscale"] == "log"  # feb's loss falls from 30 to 0.007: more than two decades
    assert not list((root / IRIS_JAN).glob("*.png")) and not (root / IRIS_JAN / "plots").exists()


def test_plot_metric_and_output(root, tmp_path, monkeypatch):
    captured = Captured(monkeypatch)
    out = tmp_path / "figs" / "acc.png"
    result = runner.invoke(app, ["plot", str(root / IRIS_JAN), "--metric", "accuracy", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    (fig,) = captured.figures
    labels = [line[0] for line in fig["lines"]]
    assert f"{root / IRIS_JAN} train" in labels and f"{root / IRIS_JAN} validation" in labels
    assert fig["yscale"] == "linear"
    # the monitor (val_loss) is not on an accuracy chart: a dotted line marks the best epoch
    assert any(line[1] == ":" and line[4] == [4, 4] for line in fig["lines"])


def test_plot_validation_only_and_regression_run(root, tmp_path, monkeypatch):
    captured = Captured(monkeypatch)
    result = runner.invoke(app, ["plot", str(root / HOUSING), "-m", "val_mae", "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2  # housing has no mae column in metrics.csv
    assert "val_mae" in result.stderr and "loss, val_loss" in result.stderr
    result = runner.invoke(app, ["plot", str(root / HOUSING), "-m", "val_loss", "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 0, result.output
    assert [line[0] for line in captured.figures[-1]["lines"]] == [f"{root / HOUSING} validation"]


@pytest.mark.parametrize("case, words", [
    ("not a run", ["RUN", "is not a run directory (no run.json)", "nettrain runs"]),
    ("missing", ["RUN", "no such folder"]),
    ("no metrics.csv", ["has no metrics.csv"]),
    ("unknown metric", ["no metric 'auc'", "it has: loss, val_loss, accuracy, val_accuracy, learning_rate"]),
    ("inside a run", ["--output", "inside the run directory"]),
    ("not png", ["--output", ".png"]),
])
def test_plot_mistakes_exit_2(root, tmp_path, monkeypatch, case, words):
    monkeypatch.chdir(tmp_path)
    args = ["plot", str(root / IRIS_JAN)]
    if case == "not a run":
        args = ["plot", str(root)]
    elif case == "missing":
        args = ["plot", str(tmp_path / "nope")]
    elif case == "no metrics.csv":
        args = ["plot", str(root / WINE)]
    elif case == "unknown metric":
        args += ["--metric", "auc"]
    elif case == "inside a run":
        args += ["--output", str(root / IRIS_FEB / "plots" / "mine.png")]
    else:
        args += ["--output", "curves.jpg"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    for w in words:
        assert w in result.stderr, result.stderr
    assert not list(tmp_path.glob("*.png")) and not (root / IRIS_FEB / "plots").exists()


# ============================================================================= compare

def test_compare_tables(root):
    result = runner.invoke(app, ["compare", str(root / IRIS_JAN), str(root / IRIS_FEB)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"A = {root / IRIS_JAN} (iris)" in out and f"B = {root / IRIS_FEB} (iris)" in out

    def cells(first: str, after: str) -> list[str]:
        start = out.index(after)
        line = next(ln for ln in out[start:].splitlines() if ln.strip().startswith(first + " "))
        return [c.strip() for c in line.strip().split("  ") if c.strip()]

    assert "Config differences (3)" in out
    assert cells("training.epochs", "Config differences") == ["training.epochs", "5", "8"]
    assert cells("training.optimizer", "Config differences") == ["training.optimizer", "adam", "sgd"]
    assert cells("model.layers.0.units", "Config differences") == ["model.layers.0.units", "16", "32"]
    assert "data.source" not in out  # equal keys are left out
    assert cells("accuracy", "test metrics") == ["accuracy", "0.9333", "0.9667", "+0.03340", "B"]
    assert cells("loss", "test metrics") == ["loss", "0.2500", "0.1000", "-0.1500", "B"]
    assert cells("loss", "validation metrics") == ["loss", "0.2000", "0.3000", "+0.1000", "A"]
    assert cells("epochs", "Runs") == ["epochs", "5/5", "8/8 (stopped early at 8)"]
    assert cells("best epoch", "Runs") == ["best epoch", "4 by val_loss", "6 by val_loss"]
    assert cells("data", "Runs")[1] == "150 rows (train 90, 60.0%, validation 30, 20.0%, test 30, 20.0%)"


def test_compare_json(root):
    result = runner.invoke(app, ["compare", str(root / IRIS_JAN), str(root / HOUSING), "--json"])
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert [r["path"] for r in data["runs"]] == [str(root / IRIS_JAN), str(root / HOUSING)]
    assert data["runs"][1]["status"] == "failed" and data["runs"][0]["best_epoch"] == 4
    diffs = {d["key"]: d for d in data["config_differences"]}
    assert diffs["name"] == {"key": "name", "a": "iris", "b": "housing"}
    assert diffs["training.epochs"] == {"key": "training.epochs", "a": 5, "b": 20}
    assert list(data["metrics"]) == ["train", "validation", "test"]
    val = {m["metric"]: m for m in data["metrics"]["validation"]}
    assert val["loss"]["a"] == 0.2 and val["loss"]["b"] == 15.5 and val["loss"]["better"] == "a"
    assert val["loss"]["delta"] == pytest.approx(15.3)
    assert val["accuracy"]["b"] is None and val["accuracy"]["better"] is None
    assert val["mae"]["a"] is None
    test = {m["metric"]: m for m in data["metrics"]["test"]}
    assert test["accuracy"]["b"] is None and test["accuracy"]["delta"] is None


def test_compare_a_layer_only_one_run_has(tmp_path):
    two = config_with()
    two["model"]["layers"].append({"type": "Dropout", "rate": 0.2})
    a = make_run(tmp_path, "a", name="a", status="completed", config=config_with())
    b = make_run(tmp_path, "b", name="b", status="completed", config=two)
    result = runner.invoke(app, ["compare", str(a), str(b), "--json"])
    diffs = {d["key"]: d for d in strict_json(result.stdout)["config_differences"]}
    assert diffs["model.layers.1.type"] == {"key": "model.layers.1.type", "b": "Dropout"}
    text = runner.invoke(app, ["compare", str(a), str(b)]).stdout
    line = next(ln for ln in text.splitlines() if "model.layers.1.rate" in ln)
    assert "(absent)" in line and "0.2" in line
    assert "neither run has any" in text


def test_compare_same_config_says_so(root):
    result = runner.invoke(app, ["compare", str(root / IRIS_JAN), str(root / IRIS_JAN)])
    assert result.exit_code == 0
    assert "Config: no differences" in result.stdout


@pytest.mark.parametrize("case, words", [
    ("not a run", ["is not a run directory"]),
    ("no config", ["config.yaml is missing"]),
    ("one run", ["Missing argument 'RUN'"]),
])
def test_compare_mistakes_exit_2(root, tmp_path, case, words):
    if case == "not a run":
        args = ["compare", str(root / IRIS_JAN), str(tmp_path)]
    elif case == "no config":
        args = ["compare", str(root / IRIS_JAN), str(root / WINE)]
    else:
        args = ["compare", str(root / IRIS_JAN)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in result.output, result.output


# =================================================================== light commands

PROBE = textwrap.dedent("""
    import sys
    from nettrain.cli import app
    try:
        app(prog_name="nettrain", args=sys.argv[1:])
    except SystemExit as e:
        code = e.code
    heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
    sys.exit(code)
""")


@pytest.mark.slow
def test_reporting_commands_import_no_tensorflow(root, tmp_path):
    for args in (["runs", str(root), "--sort", "val_loss"], ["plot", str(root / IRIS_JAN), "-o", str(tmp_path / "p.png")],
                 ["compare", str(root / IRIS_JAN), str(root / IRIS_FEB)]):
        proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip().endswith("HEAVY="), (args, proc.stderr)


# ======================================================================= help texts

PLACEHOLDERS = [r"\bTEXT\b", r"\bPATH\b", r"\bINTEGER\b", r"\bFLOAT\b", r"<list", r"\{",
                r"<(?:path|str|int|float|bool|text|file|dir)>"]


def commands() -> dict:
    import typer.main

    return typer.main.get_command(app).commands


@pytest.mark.parametrize("name", ["(app)"] + sorted(commands()))
def test_help_shows_real_metavars(name):
    args = ["--help"] if name == "(app)" else [name, "--help"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for pattern in PLACEHOLDERS:
        assert not re.search(pattern, result.stdout), f"nettrain {name} --help shows {pattern}:\n{result.stdout}"


def test_every_value_option_and_argument_has_an_uppercase_metavar():
    for name, command in commands().items():
        for param in command.params:
            takes_value = param.param_type_name == "argument" or not (getattr(param, "is_flag", False)
                                                                       or getattr(param, "count", False))
            if takes_value:
                assert param.metavar and param.metavar == param.metavar.upper(), (name, param.name)


@pytest.mark.parametrize("args, usage, shown", [
    (["fit"], "Usage: nettrain fit [OPTIONS] CONFIG", ["--set KEY=VALUE", "--run-dir DIR", "--resume RUN_DIR"]),
    (["evaluate"], "Usage: nettrain evaluate [OPTIONS] TARGET", ["--fail-under METRIC=VALUE", "--data FILE"]),
    (["predict"], "Usage: nettrain predict [OPTIONS] TARGET INPUT", ["--output FILE"]),
    (["retrain"], "Usage: nettrain retrain [OPTIONS] CHECKPOINT_OR_RUN", ["--epochs N", "--set KEY=VALUE"]),
    (["init"], "Usage: nettrain init [OPTIONS] DATA", ["--target COLUMN"]),
    (["runs"], "Usage: nettrain runs [OPTIONS] [DIR]", ["--sort METRIC", "--filter KEY=VALUE", "--last N"]),
    (["plot"], "Usage: nettrain plot [OPTIONS] RUN...", ["--metric METRIC", "--output FILE"]),
    (["compare"], "Usage: nettrain compare [OPTIONS] RUN RUN", ["--json"]),
])
def test_help_usage_lines(args, usage, shown):
    result = runner.invoke(app, [*args, "--help"], prog_name="nettrain", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == usage
    for text in shown:
        assert text in result.stdout


# ==================================================================== shell completion

@pytest.mark.slow
def test_shell_completion_script_and_answers():
    show = subprocess.run([sys.executable, "-m", "nettrain", "--show-completion", "bash"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert show.returncode == 0, show.stderr
    assert "_NETTRAIN_COMPLETE=complete_bash" in show.stdout and "complete -o default -F" in show.stdout

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_NETTRAIN_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}
        done = subprocess.run([sys.executable, "-m", "nettrain"], capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("nettrain ru") == ["runs"]
    assert "--metric" in complete("nettrain plot --m")
    assert set(complete("nettrain co")) == {"compare"}
