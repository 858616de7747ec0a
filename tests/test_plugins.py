"""Plugins: custom Keras layers, losses and metrics from files the config lists (`plugins:`).

`validate` reads the names a plugin declares without importing it (no TensorFlow); `fit` imports it
and keeps a copy with its sha256 in the run; evaluate / predict / retrain load the run's copy and
refuse a copy that is missing or changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.config.plugins import declared, digest, read
from nettrain.errors import ConfigError
from nettrain.store import rundir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "configs" / "plugins" / "iris_objects.py"
runner = CliRunner()

SPEC = {
    "plugins": ["code/iris_objects.py"],
    "data": {"source": "iris.csv", "target": "species"},
    "preprocessing": {"labels": "one_hot"},
    "model": {"layers": [{"type": "GatedDense", "units": 8, "activation": "relu"}]},
    "training": {"loss": {"name": "SmoothedCrossentropy", "smoothing": 0.05}, "metrics": ["accuracy", "confidence"],
                 "epochs": 2, "batch_size": 32},
    "callbacks": {"checkpoint": False},
    "output": {"dir": "runs", "plots": False},
}


def _project(tmp: Path, spec: dict | None = None) -> Path:
    """A folder with iris.csv, the example plugin under code/ and a config listing it."""
    (tmp / "code").mkdir(exist_ok=True)
    shutil.copy(EXAMPLE, tmp / "code" / "iris_objects.py")
    shutil.copy(ROOT / "data" / "iris.csv", tmp / "iris.csv")
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(spec or SPEC))
    return path


def test_a_static_read_finds_names_kinds_and_arguments(tmp_path):
    plugin = tmp_path / "objs.py"
    plugin.write_text(
        "import keras\nfrom keras import layers\nfrom keras.saving import register_keras_serializable\n"
        "@keras.saving.register_keras_serializable(package='p')\nclass Gate(layers.Layer):\n"
        "    def __init__(self, units, scale=1.0, **kwargs):\n        super().__init__(**kwargs)\n"
        "@keras.saving.register_keras_serializable('p')\nclass Gate2(Gate):\n    pass\n"
        "@register_keras_serializable(name='Smooth')\nclass SmoothLoss(keras.losses.Loss):\n    pass\n"
        "@keras.utils.register_keras_serializable()\nclass Hits(keras.metrics.Metric):\n    pass\n"
        "@keras.saving.register_keras_serializable('p')\ndef margin(y_true, y_pred):\n    return y_pred\n"
        "@keras.saving.register_keras_serializable('p')\nclass Tiny(keras.initializers.Initializer):\n    pass\n"
        "class NotRegistered(keras.layers.Layer):\n    pass\n")
    found = {d.name: d for d in read(str(plugin))}
    assert set(found) == {"Gate", "Gate2", "Smooth", "Hits", "margin", "Tiny"}
    assert found["Gate"].kind == "layer" and found["Gate"].registered == "p>Gate"
    assert found["Gate"].params == ("units", "scale") and found["Gate"].required == ("units",)
    assert found["Gate2"].kind == "layer"  # derived from a class of the same file
    assert found["Smooth"].kind == "loss" and found["Smooth"].registered == "Custom>Smooth"
    assert found["Hits"].kind == "metric" and found["margin"].kind == "function"
    assert found["margin"].fits("loss") and found["margin"].fits("metric") and not found["margin"].fits("layer")
    assert found["Tiny"].kind == "initializer"


def test_a_name_declared_twice_and_a_plugin_with_a_syntax_error_are_refused(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    body = "import keras\n@keras.saving.register_keras_serializable('x')\ndef f(y, p):\n    return p\n"
    a.write_text(body)
    b.write_text(body)
    with pytest.raises(ConfigError, match="f is declared twice"):
        declared([str(a), str(b)])
    a.write_text("def broken(:\n")
    with pytest.raises(ConfigError, match=r"a.py:1 is not valid Python"):
        read(str(a))


def test_validate_names_the_plugin_of_each_name_without_tensorflow_quickly(tmp_path):
    config = _project(tmp_path)
    code = ("import sys, time\nfrom nettrain import api\napi.validate(sys.argv[1])\nt = time.perf_counter()\n"
            "out = api.validate(sys.argv[1])\nprint(time.perf_counter() - t)\nprint(out)\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    seconds, *lines = proc.stdout.splitlines()
    assert float(seconds) < 0.3
    assert "plugin: GatedDense (layer, iris_objects>GatedDense) from iris_objects.py" in lines
    assert "plugin: SmoothedCrossentropy (loss, iris_objects>SmoothedCrossentropy) from iris_objects.py" in lines
    assert "plugin: confidence (loss or metric, iris_objects>confidence) from iris_objects.py" in lines
    cfg = load_config(config)
    assert cfg.plugins == [str(tmp_path / "code" / "iris_objects.py")]  # relative to the config


def test_an_unknown_name_lists_the_plugins_names(tmp_path):
    spec = json.loads(json.dumps(SPEC))
    spec["model"]["layers"][0]["type"] = "GatedDens"
    result = runner.invoke(app, ["validate", str(_project(tmp_path, spec))])
    assert result.exit_code == 2
    assert "Keras has no layer 'GatedDens'" in result.output and "did you mean 'GatedDense'?" in result.output
    assert "the plugins declare: GatedDense, SmoothedCrossentropy, confidence" in result.output
    spec["model"]["layers"][0] = {"type": "GatedDense", "activation": "relu"}  # its __init__ read statically
    result = runner.invoke(app, ["validate", str(_project(tmp_path, spec))])
    assert result.exit_code == 2 and "GatedDense needs the argument 'units'" in result.output


@pytest.mark.parametrize("plugins, message", [
    (["code/nothere.py"], "plugin {tmp}/code/nothere.py does not exist"),
    (["code/objects.txt"], "a plugin is a Python file (.py)"),
])
def test_a_missing_or_wrong_plugin_file_is_one_line(tmp_path, plugins, message):
    spec = {**SPEC, "plugins": plugins}
    result = runner.invoke(app, ["validate", str(_project(tmp_path, spec))])
    assert result.exit_code == 2
    assert message.format(tmp=tmp_path) in result.output and "Traceback" not in result.output


def test_a_plugin_that_fails_to_import_is_named_without_a_traceback(tmp_path):
    config = _project(tmp_path)
    plugin = tmp_path / "code" / "iris_objects.py"
    plugin.write_text(plugin.read_text() + "\nraise RuntimeError('no GPU driver here')\n")
    result = runner.invoke(app, ["fit", str(config)])
    assert result.exit_code == 2, result.output
    assert f"plugin {plugin} failed to import: RuntimeError: no GPU driver here" in result.output
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run with a plugin layer, loss and metric."""
    tmp = tmp_path_factory.mktemp("plugins")
    config = _project(tmp)
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(tmp / "run")])
    assert result.exit_code == 0, result.output
    return tmp / "run"


def test_a_run_keeps_a_copy_of_each_plugin_with_its_hash(trained):
    copy = trained / "plugins" / "iris_objects.py"
    assert copy.read_bytes() == EXAMPLE.read_bytes()
    record = json.loads((trained / rundir.RUN).read_text())
    assert record["plugins"] == {"iris_objects.py": digest(EXAMPLE.read_bytes())}
    assert rundir.foreign_entries(trained) == []  # plugins/ is the run's own folder
    metrics = json.loads((trained / rundir.METRICS_JSON).read_text())
    assert "confidence" in json.dumps(metrics)


@pytest.mark.slow
def test_evaluate_in_a_fresh_process_imports_the_runs_copy_and_says_so(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (trained.parent / "code" / "iris_objects.py").write_text("raise RuntimeError('the original is never read')\n")
    try:
        proc = subprocess.run([sys.executable, "-m", "nettrain", "evaluate", str(run)], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        shutil.copy(EXAMPLE, trained.parent / "code" / "iris_objects.py")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"imported the run's copy {run / 'plugins' / 'iris_objects.py'}" in proc.stderr
    assert "confidence" in proc.stdout


def test_predict_and_retrain_use_the_runs_copy(trained, tmp_path):
    result = runner.invoke(app, ["predict", str(trained), str(trained.parent / "iris.csv")])
    assert result.exit_code == 0, result.output
    assert "setosa" in result.output
    result = runner.invoke(app, ["retrain", str(trained), "--epochs", "1", "--run-dir", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "again" / rundir.RUN).read_text())
    assert record["plugins"] == {"iris_objects.py": digest(EXAMPLE.read_bytes())}
    assert (tmp_path / "again" / "plugins" / "iris_objects.py").read_bytes() == EXAMPLE.read_bytes()


def test_a_changed_or_missing_copy_is_refused(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    copy = run / "plugins" / "iris_objects.py"
    copy.write_text(copy.read_text() + "\n# edited\n")
    for command in (["evaluate", str(run)], ["retrain", str(run), "--epochs", "1"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "refused: the run's copy of plugin iris_objects.py" in result.output
        assert "has changed since the run was trained" in result.output and "Traceback" not in result.output
    copy.unlink()
    result = runner.invoke(app, ["predict", str(run), str(trained.parent / "iris.csv")])
    assert result.exit_code == 2 and "is missing" in result.output


@pytest.mark.parametrize("refit", ["ensemble", True])
def test_a_k_fold_run_keeps_the_copies_its_refit_or_ensemble_model_loads(tmp_path, refit):
    """The parent of a k-fold run holds model.h5 (the refit or the folds' ensemble), which needs the
    plugins' objects: it keeps their copies as every run does. It kept none, so `evaluate RUN`,
    `predict` and `export` of the run refused it ("the run's copy of plugin ... is missing")."""
    spec = {**SPEC, "data": {**SPEC["data"], "split": {"folds": 2, "refit": refit}}}
    config = _project(tmp_path, spec)
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    assert (run / "plugins" / "iris_objects.py").read_bytes() == EXAMPLE.read_bytes()
    assert json.loads((run / rundir.RUN).read_text())["plugins"] == {"iris_objects.py": digest(EXAMPLE.read_bytes())}
    assert rundir.foreign_entries(run) == []
    for command in (["evaluate", str(run), "--json"], ["predict", str(run), str(tmp_path / "iris.csv")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_keras_export_keeps_the_plugins_and_predicts_in_a_fresh_process(trained, tmp_path):
    """A model.keras of a plugin's layer loads only once the plugin is imported: predict through a
    keras export in a fresh process failed with an internal error ("could not be deserialized"). The
    export keeps the run's copies in its plugins/, their sha256 in export.json, and imports them."""
    out = tmp_path / "x"
    result = runner.invoke(app, ["export", str(trained), "--format", "keras", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "plugins" / "iris_objects.py").read_bytes() == EXAMPLE.read_bytes()
    info = json.loads((out / "export.json").read_text())
    assert info["plugins"] == {"iris_objects.py": digest(EXAMPLE.read_bytes())}
    data = trained.parent / "iris.csv"
    proc = subprocess.run([sys.executable, "-m", "nettrain", "predict", str(out), str(data)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0] == "prediction" and len(proc.stdout.splitlines()) == 151
    copy = out / "plugins" / "iris_objects.py"
    copy.write_text(copy.read_text() + "\n# edited\n")
    proc = subprocess.run([sys.executable, "-m", "nettrain", "predict", str(out), str(data)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "has changed since the export" in proc.stderr
