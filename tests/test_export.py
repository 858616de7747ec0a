"""`nettrain export`: every format a run can go to, reloaded with its own runtime and compared with
the run's model; what a format cannot carry is refused before anything is written."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from tests.helpers import copy_run, regression_csv, slow_fixture

runner = CliRunner()


def _fit(root: Path, config: str) -> Path:
    (root / "config.yaml").write_text(textwrap.dedent(config).lstrip("\n"))
    result = runner.invoke(app, ["fit", str(root / "config.yaml"), "--run-dir", str(root / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return root / "run"


def _fit_frame(root: Path, frame: pd.DataFrame) -> Path:
    """A run of one epoch of Dense(4) on `frame` (its target `y`), written as root/d.csv."""
    frame.to_csv(root / "d.csv", index=False)
    return _fit(root, f"""
        data: {{source: {root / 'd.csv'}, target: y}}
        model: {{layers: [{{type: Dense, units: 4, activation: relu}}]}}
        training: {{epochs: 1}}
        output: {{plots: false}}
    """)


def _mixed_text_csv(path: Path, n: int = 120) -> Path:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=n), rng.normal(size=n) * 3 + 10
    color = rng.choice(["red", "green", "blue"], size=n)
    note = rng.choice(["good fast", "bad slow", "very good", "slow and bad", "fast car"], size=n)
    score = x1 + (x2 - 10) / 3 + np.where(color == "red", 1.5, 0.0)
    label = np.where(score > 1, "high", np.where(score < -1, "low", "mid"))
    pd.DataFrame({"id": [f"r{i}" for i in range(n)], "x1": x1, "x2": x2, "color": color, "note": note,
                  "label": label}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
@slow_fixture
def text_run(tmp_path_factory) -> Path:
    """numeric + categorical + text columns, 3 classes, 1 epoch."""
    root = tmp_path_factory.mktemp("text")
    _mixed_text_csv(root / "mixed.csv")
    return _fit(root, f"""
        data: {{source: {root / 'mixed.csv'}, target: label, id: id, columns: {{note: {{type: text}}}}}}
        model: {{layers: [{{type: Dense, units: 4, activation: relu}}]}}
        training: {{epochs: 1, batch_size: 16}}
        output: {{plots: false}}
    """)


@pytest.fixture(scope="module")
@slow_fixture
def image_run(tmp_path_factory) -> Path:
    """A binary model on 4 x 4 x 1 images from an .npz archive."""
    root = tmp_path_factory.mktemp("image")
    rng = np.random.default_rng(1)
    x = rng.random((80, 4, 4, 1)).astype("float32")
    np.savez(root / "img.npz", x=x, y=(x.mean(axis=(1, 2, 3)) > 0.5).astype("int64"))
    return _fit(root, f"""
        data: {{source: {root / 'img.npz'}}}
        model: {{layers: [{{type: Dense, units: 4, activation: relu}}]}}
        training: {{epochs: 1, batch_size: 16}}
        output: {{plots: false}}
    """)


@pytest.fixture(scope="module")
@slow_fixture
def reg_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reg")
    regression_csv(root / "reg.csv", n=120)
    return _fit(root, f"""
        data: {{source: {root / 'reg.csv'}, target: y}}
        training: {{epochs: 2, optimizer: {{name: adam, learning_rate: 0.05}}}}
        output: {{plots: false}}
    """)


def _export(*args) -> dict:
    from tests.test_cli_commands import breaks, shape

    result = runner.invoke(app, ["export", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert breaks(shown, shape("export")) == [], breaks(shown, shape("export"))  # the published schema
    return shown


def _predict(target, data: Path, *extra) -> pd.DataFrame:
    result = runner.invoke(app, ["predict", str(target), str(data), *extra])
    assert result.exit_code == 0, result.output
    from io import StringIO

    return pd.read_csv(StringIO(result.stdout))


def _no_leftovers(folder: Path) -> None:
    if folder.exists():
        assert not [p.name for p in folder.iterdir() if ".tmp-" in p.name]


# ------------------------------------------------------------------------------ strings: savedmodel, keras

def test_savedmodel_takes_raw_columns_by_name_and_serving_default(text_run):
    out = _export(text_run)
    folder = Path(out["path"])
    assert folder == text_run / "export" / "savedmodel" and (folder / "1" / "saved_model.pb").is_file()
    assert [i["name"] for i in out["inputs"]] == ["x1", "x2", "color", "note"]
    assert out["outputs"] == ["probabilities", "class"] and out["max_abs_diff"] <= 1e-5
    assert out["rows_compared"] > 0 and out["split"] == "test"
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "show", "--dir", str(folder / "1"), "--tag_set", "serve",
                            "--signature_def", "serving_default"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    for name in ("inputs['x1']", "inputs['color']", "inputs['note']", "outputs['class']", "outputs['probabilities']"):
        assert name in shown.stdout
    # reloaded with TensorFlow alone, on raw CSV rows, it agrees with `nettrain predict RUN`
    import tensorflow as tf

    rows = pd.read_csv(text_run.parent / "mixed.csv").head(20)
    serve = tf.saved_model.load(str(folder / "1")).signatures["serving_default"]
    got = serve(x1=tf.constant(rows.x1.to_numpy("float32")), x2=tf.constant(rows.x2.to_numpy("float32")),
                color=tf.constant(rows.color.to_numpy(str)), note=tf.constant(rows.note.to_numpy(str)))
    want = _predict(text_run, text_run.parent / "mixed.csv", "--proba").head(20)
    np.testing.assert_allclose(got["probabilities"].numpy(), want[["proba_high", "proba_low", "proba_mid"]],
                               atol=1e-5)
    assert [c.decode() for c in got["class"].numpy()] == list(want.prediction)
    # predict takes the export folder too, with the same columns
    served = _predict(folder, text_run.parent / "mixed.csv", "--proba").head(20)
    assert list(served.columns) == list(want.columns) and list(served.prediction) == list(want.prediction)
    records = json.loads((text_run / "exports.json").read_text())
    assert records[-1]["format"] == "savedmodel" and records[-1]["path"] == "export/savedmodel"


def test_keras_format_reloads_with_keras_saving(text_run):
    out = _export(text_run, "--format", "keras")
    import keras

    model = keras.saving.load_model(out["model_path"], compile=False)
    rows = pd.read_csv(text_run.parent / "mixed.csv").head(10)
    got = model.predict({"x1": rows.x1.to_numpy("float32"), "x2": rows.x2.to_numpy("float32"),
                         "color": rows.color.to_numpy(object), "note": rows.note.to_numpy(object)}, verbose=0)
    want = _predict(text_run, text_run.parent / "mixed.csv", "--proba").head(10)
    np.testing.assert_allclose(got["probabilities"], want[["proba_high", "proba_low", "proba_mid"]], atol=1e-5)


@pytest.mark.parametrize("fmt, column", [("onnx", "color"), ("litert", "color")])
def test_string_columns_are_refused_up_front(text_run, fmt, column):
    result = runner.invoke(app, ["export", str(text_run), "--format", fmt])
    assert result.exit_code == 2
    assert f"column '{column}'" in result.stderr and "savedmodel, keras" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (text_run / "export" / fmt).exists()
    _no_leftovers(text_run / "export")


def test_existing_output_needs_force_and_is_replaced_after_the_check(text_run, tmp_path):
    out = tmp_path / "served"
    out.mkdir()
    (out / "old.txt").write_text("x")
    (out / "export.json").write_text("{}")  # an earlier export
    result = runner.invoke(app, ["export", str(text_run), "--output", str(out)])
    assert result.exit_code == 2 and "--force" in result.stderr
    assert (out / "old.txt").exists()
    done = _export(text_run, "--output", out, "--force")
    assert not (out / "old.txt").exists() and (out / "1" / "saved_model.pb").is_file()
    assert done["max_abs_diff"] <= 1e-5
    _no_leftovers(tmp_path)


def test_force_replaces_only_an_earlier_export_never_the_run_or_other_files(text_run, tmp_path):
    """`export RUN --output RUN --force` replaced the run directory itself by the export (model.h5,
    checkpoints, metrics: gone), and --output RUN/checkpoints --force the checkpoints: a path inside the
    target's own run skipped the checks. --force now replaces an earlier export only (export.json)."""
    run = copy_run(text_run, tmp_path / "run")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    for out, said in ((run, "is a run directory"), (run / "checkpoints", "not a nettrain export"),
                      (mine, "not a nettrain export")):
        before = sorted(p.name for p in out.iterdir())
        result = runner.invoke(app, ["export", str(run), "--output", str(out), "--force"])
        assert result.exit_code == 2 and said in result.stderr, result.output
        assert "--force replaces only an earlier export" in result.stderr
        assert sorted(p.name for p in out.iterdir()) == before
    assert (run / "model.h5").is_file() and (mine / "notes.txt").read_text() == "precious"
    _no_leftovers(tmp_path)


# ------------------------------------------------------------------------------ arrays: every format

@pytest.mark.parametrize("fmt", ["savedmodel", "onnx", "litert", "keras"])
def test_npz_run_keeps_the_image_shape_in_every_format(image_run, fmt):
    if fmt == "onnx":
        pytest.importorskip("tf2onnx")
        pytest.importorskip("onnxruntime")
    out = _export(image_run, "--format", fmt)
    assert out["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 4, 4, 1]}]
    assert out["max_abs_diff"] <= (1e-3 if fmt == "litert" else 1e-5)
    x = np.random.default_rng(5).random((6, 4, 4, 1)).astype("float32")
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(out["model_path"])
        assert [i.name for i in session.get_inputs()] == ["x"]
        probs = session.run(["probabilities"], {"x": x})[0]
    elif fmt == "litert":
        import tensorflow as tf

        probs = tf.lite.Interpreter(model_path=out["model_path"]).get_signature_runner()(x=x)["probabilities"]
    elif fmt == "savedmodel":
        import keras

        layer = keras.layers.TFSMLayer(out["model_path"], call_endpoint="serving_default")
        probs = np.asarray(layer(x)["probabilities"])
    else:
        import keras

        probs = keras.saving.load_model(out["model_path"], compile=False).predict({"x": x}, verbose=0)["probabilities"]
    assert probs.shape == (6, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_predict_with_an_onnx_file_matches_the_h5(reg_run, tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    run = copy_run(reg_run, tmp_path / "run")
    out = _export(run, "--format", "onnx")
    assert out["outputs"] == ["value"] and out["max_abs_diff"] <= 1e-4
    data = reg_run.parent / "reg.csv"
    want = _predict(run, data)
    got = _predict(Path(out["model_path"]), data)
    np.testing.assert_allclose(got.prediction, want.prediction, rtol=1e-5, atol=1e-4)



def test_predict_through_an_onnx_file_never_imports_tensorflow(tmp_path):
    """onnxruntime runs the model and the classes are read from its probabilities: TensorFlow's import
    (~5 s, and its native start-up lines on stderr) is not needed, and was made by the classes' module."""
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 2))
    run = _fit_frame(tmp_path, pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.where(x.sum(1) > 0, "up", "down")}))
    model = Path(_export(run, "--format", "onnx")["model_path"])
    want = _predict(run, tmp_path / "d.csv")
    code = textwrap.dedent(f"""
        import json, sys
        from nettrain.api import predict
        predict({str(model)!r}, {str(tmp_path / 'd.csv')!r}, output={str(tmp_path / 'p.csv')!r})
        print(json.dumps(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert list(pd.read_csv(tmp_path / "p.csv").prediction) == list(want.prediction)

@pytest.mark.parametrize("activation", ["gelu", "celu"])
def test_an_onnx_export_carries_gelu_and_celu(tmp_path, activation):
    """Keras's `gelu` (exact: TensorFlow's Erfc) and `celu` (Expm1) went into the onnx file as ops
    onnxruntime does not know, and the export was refused ("No Op registered for Erfc"); they are
    written as 1 - Erf(x) and Exp(x) - 1."""
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    regression_csv(tmp_path / "reg.csv", n=120)
    run = _fit(tmp_path, f"""
        data: {{source: {tmp_path / 'reg.csv'}, target: y}}
        model: {{layers: [{{type: Dense, units: 8, activation: {activation}}}]}}
        training: {{epochs: 1}}
        output: {{plots: false}}
    """)
    out = _export(run, "--format", "onnx")
    assert out["max_abs_diff"] <= 1e-4
    want = _predict(run, tmp_path / "reg.csv")
    got = _predict(Path(out["model_path"]), tmp_path / "reg.csv")
    np.testing.assert_allclose(got.prediction, want.prediction, rtol=1e-5, atol=1e-4)


def test_a_litert_export_that_needs_flex_ops_is_refused_naming_the_formats_that_can(tmp_path):
    """A GRU over .npz sequences converts to a LiteRT file holding TensorFlow ops (Flex) that the LiteRT
    interpreter cannot run: the check failed with an internal error (exit 1). It is refused (exit 2),
    naming the formats that carry the model, and nothing is written."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5, 2)).astype("float32")
    np.savez(tmp_path / "seq.npz", x=x, y=(x[:, :, 0].mean(axis=1) > 0).astype("int64"))
    run = _fit(tmp_path, f"""
        data: {{source: {tmp_path / 'seq.npz'}}}
        model: {{layers: [{{type: GRU, units: 3}}]}}
        training: {{epochs: 1, batch_size: 16}}
        output: {{plots: false}}
    """)
    result = runner.invoke(app, ["export", str(run), "--format", "litert", "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "Flex delegate" in result.output
    assert "formats that carry every Keras layer: savedmodel, keras" in result.output
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)
    assert _export(run, "--format", "savedmodel")["max_abs_diff"] <= 1e-4


def test_the_check_scales_the_difference_by_the_size_of_large_values():
    """A regression value of 2e6 in float32 is held to about 0.1 (7 digits): the savedmodel export of
    a 5-model ensemble on such a target was refused for a difference of 0.0625, one rounding apart
    (`make smoke`, a table of prices). The check holds |a - b| / max(1, |a|) to the tolerance; the
    absolute difference is still reported."""
    from nettrain.lifecycle.export import Plan, compare

    plan = Plan(format="savedmodel", numeric=["a"], strings=[], image=None, imputation={}, mode="regression",
                threshold=0.5, classes=None)
    reference = {"value": np.array([[2_000_000.0], [3.0], [0.5]])}
    assert compare(reference, {"value": np.array([[2_000_000.0625], [3.0], [0.5]])}, plan) == \
        pytest.approx((0.0625, 0.0625 / 2_000_000))
    assert compare(reference, {"value": np.array([[2_000_000.0], [3.0003], [0.5]])}, plan) == \
        pytest.approx((3e-4, 1e-4))   # above 1: scaled by the value
    assert compare(reference, {"value": np.array([[2_000_000.0], [3.0], [0.5002]])}, plan) == \
        pytest.approx((2e-4, 2e-4))   # at most 1: absolute, as a probability's


def test_an_export_carries_the_input_contract_that_predict_checks(reg_run, tmp_path):
    """signature.json travels with the export; predict on the exported model reports drift as on the
    run, and --strict exits 2 before writing anything."""
    run = copy_run(reg_run, tmp_path / "run")
    out = _export(run, "--format", "savedmodel")
    folder = Path(out["path"])
    assert (folder / "signature.json").read_bytes() == (run / "signature.json").read_bytes()
    data = pd.read_csv(reg_run.parent / "reg.csv")
    column = next(c for c in data.columns if c != "y" and pd.api.types.is_numeric_dtype(data[c]))
    drifted = data.assign(**{column: data[column].abs().max() * 50 + 1000})  # far beyond the training range
    drifted.to_csv(tmp_path / "drifted.csv", index=False)
    result = runner.invoke(app, ["predict", str(folder), str(tmp_path / "drifted.csv")])
    assert result.exit_code == 0, result.output
    assert f"  {column}: {len(data)} above the training range" in result.stderr, result.stderr
    strict = runner.invoke(app, ["predict", str(folder), str(tmp_path / "drifted.csv"), "--strict",
                                 "--output", str(tmp_path / "p.csv")])
    assert strict.exit_code == 2, strict.output
    assert not (tmp_path / "p.csv").exists()
    data.assign(**{column: data[column].median()}).to_csv(tmp_path / "inside.csv", index=False)
    inside = runner.invoke(app, ["predict", str(folder), str(tmp_path / "inside.csv")])
    assert inside.exit_code == 0 and f"  {column}:" not in inside.stderr, inside.stderr


def test_litert_regression_and_exports_record(reg_run, tmp_path):
    run = copy_run(reg_run, tmp_path / "run")
    out = _export(run, "--format", "litert")
    assert Path(out["model_path"]).name == "model.tflite"
    records = json.loads((run / "exports.json").read_text())
    assert [r["format"] for r in records] == ["litert"]
    assert set(records[0]) == {"format", "path", "max_abs_diff", "rows_compared", "written_at"}


# ------------------------------------------------------------------------------ fast refusals

def test_unknown_format_is_one_line(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path), "--format", "pickle"])
    assert result.exit_code == 2
    assert "--format 'pickle'" in result.stderr and "savedmodel, onnx, litert, keras" in result.stderr


def test_not_a_run_is_refused(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no such run directory" in result.stderr


def test_an_export_given_where_a_run_is_needed_is_named_as_an_export(reg_run, tmp_path):
    """evaluate, inspect, export and retrain take a run's model: an export folder (or the model file inside
    it) is named as one, with the command that takes it, instead of 'not a run directory' or, for inspect
    of an .onnx file, 'not UTF-8 text' (the file read as a config)."""
    run = copy_run(reg_run, tmp_path / "run")
    folder = Path(_export(run, "--format", "keras", "--output", tmp_path / "exp")["model_path"]).parent
    model = next(p for p in folder.iterdir() if p.suffix == ".keras")
    data = reg_run.parent / "reg.csv"
    for args in (["evaluate", folder], ["evaluate", model, "--data", data], ["inspect", folder], ["inspect", model],
                 ["export", folder], ["retrain", folder, "--run-dir", tmp_path / "r2"]):
        result = runner.invoke(app, list(map(str, args)))
        assert result.exit_code == 2, (args, result.output)
        assert "is an export of" in result.stderr and "format keras" in result.stderr, (args, result.stderr)
        assert "only `nettrain predict` takes an export" in result.stderr, \
            (args, result.stderr)
    assert not (tmp_path / "r2").exists()


@pytest.mark.slow
def test_a_missing_number_gets_the_training_fill_value_inside(tmp_path):
    """preprocessing.missing: mean: a NaN sent to the export is the run's fill value, as predict fills it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": x @ [1.5, -2.0] + 3})
    frame.loc[::7, "b"] = np.nan
    frame.to_csv(tmp_path / "miss.csv", index=False)
    run = _fit(tmp_path, f"""
        data: {{source: {tmp_path / 'miss.csv'}, target: y}}
        preprocessing: {{missing: mean}}
        training: {{epochs: 1}}
        output: {{plots: false}}
    """)
    out = _export(run, "--format", "keras")
    fill = json.loads((run / "features.json").read_text())["imputation"]["b"]
    import keras

    model = keras.saving.load_model(out["model_path"], compile=False)
    a = np.array([0.1, 0.1], "float32")
    got = model.predict({"a": a, "b": np.array([np.nan, fill], "float32")}, verbose=0)["value"]
    assert np.isfinite(got).all() and abs(float(got[0, 0]) - float(got[1, 0])) < 1e-5


# ------------------------------------------------------------------------------ column names

ODD_NUMERIC = ["None", "my col", "a-b", "1st", "größe", "_x", "km/h", "self", "inputs"]
ODD_STRINGS = ["class", "prix (€)", "w/o", "Straße"]


def test_a_serving_name_is_the_column_or_a_unique_identifier_made_of_it():
    from nettrain.lifecycle.export import serving_name

    assert [serving_name(c) for c in ("x1", "Sale_Price", "color")] == ["x1", "Sale_Price", "color"]
    names = [serving_name(c) for c in ODD_NUMERIC + ODD_STRINGS + ["my_col", "a_b", "km_h", "c__x"]]
    assert len(set(names)) == len(names) and names == [serving_name(c) for c in ODD_NUMERIC + ODD_STRINGS +
                                                       ["my_col", "a_b", "km_h", "c__x"]]
    import keyword
    import re

    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n) and not keyword.iskeyword(n) for n in names)
    assert serving_name("km/h").startswith("km_h_") and serving_name("1st").startswith("c_1st_")
    assert serving_name("self") != "self" and serving_name("inputs") != "inputs"  # the exporters' own names


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["savedmodel", "keras", "onnx"])
def test_columns_named_as_no_runtime_names_an_input_train_and_export(tmp_path, fmt):
    """Column names with `/`, spaces, letters beyond ASCII, a leading digit or a Python keyword: fit,
    predict and evaluate take them (Keras refuses `/` in an input name, TensorFlow anything but ASCII in
    a layer's), and the export names each input by `serving_name`, its column in export.json."""
    if fmt == "onnx":
        pytest.importorskip("tf2onnx")
        pytest.importorskip("onnxruntime")
    strings = ODD_STRINGS if fmt != "onnx" else []  # (onnx carries numbers only)
    rng = np.random.default_rng(2)
    n = 200
    df = pd.DataFrame({c: rng.normal(size=n) for c in ODD_NUMERIC})
    for c in strings:
        df[c] = rng.choice(["u", "v", "w"], n)
    df["y"] = np.where(df["km/h"] + (df["w/o"] == "u" if strings else 0) > 0.5, "yes", "no")
    run = _fit_frame(tmp_path, df)
    want = _predict(run, tmp_path / "d.csv", "--proba")
    done = runner.invoke(app, ["evaluate", str(run), "--data", str(tmp_path / "d.csv")])
    assert done.exit_code == 0, done.output
    streamed = runner.invoke(app, ["fit", str(tmp_path / "config.yaml"), "--run-dir", str(tmp_path / "streamed"),
                                   "--quiet", "--set", "data.stream=true"])
    assert streamed.exit_code == 0, streamed.output
    assert len(_predict(tmp_path / "streamed", tmp_path / "d.csv")) == n
    out = _export(run, "--format", fmt)
    assert out["max_abs_diff"] <= 1e-5
    from nettrain.lifecycle.export import serving_name

    assert [(i["name"], i["column"]) for i in out["inputs"]] == \
        [(serving_name(c), c) for c in ODD_NUMERIC + strings]
    got = _predict(Path(out["path"]), tmp_path / "d.csv", "--proba")
    np.testing.assert_allclose(got[["proba_no", "proba_yes"]], want[["proba_no", "proba_yes"]], atol=1e-5)


def test_input_names_that_differ_only_in_case_are_made_unique():
    """A SavedModel signature takes its argument names in lower case: columns `x` and `X` made two
    arguments named `x`, and the savedmodel export failed. The lower-case one keeps its name."""
    from nettrain.lifecycle.export import case_safe, serving_name

    names = case_safe(["x", "X", "Price", "price", "km/h", "KM/H", "solo"])
    assert set(names) == {"X", "Price"}  # (km/h and KM/H: names of their own hashes already)
    assert names["X"].startswith("X_") and names["Price"].startswith("Price_")
    every = [names.get(c) or serving_name(c) for c in ["x", "X", "Price", "price", "km/h", "KM/H", "solo"]]
    assert len({n.lower() for n in every}) == len(every)
    assert case_safe(["X", "Y"]) == {} and case_safe(["Sale_Price"]) == {}


@pytest.mark.parametrize("fmt", ["savedmodel", "keras", "onnx", "litert"])
def test_columns_named_as_keras_names_its_ops_or_as_the_run_export(tmp_path, fmt):
    """A column named as an op Keras names itself in the served model (`stack`, `where`, `concatenate`,
    `is_nan`) or as the run's model (the config's name): every export failed with Keras's internal error
    'The name "stack" is used 2 times in the model'."""
    if fmt == "onnx":
        pytest.importorskip("tf2onnx")
        pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(5)
    n = 120
    df = pd.DataFrame({c: rng.normal(size=n) for c in ("stack", "where", "concatenate", "is_nan", "clip", "runname")})
    df.loc[3, "where"] = np.nan  # a gap: the fill step (ops.where) is in the served model
    df["y"] = np.where(df["stack"] + df["where"].fillna(0) > 0, "yes", "no")
    df.to_csv(tmp_path / "d.csv", index=False)
    run = _fit(tmp_path, f"""
        name: runname
        data: {{source: {tmp_path / 'd.csv'}, target: y}}
        preprocessing: {{missing: mean}}
        model: {{layers: [{{type: Dense, units: 4, activation: relu}}]}}
        training: {{epochs: 1}}
        output: {{plots: false}}
    """)
    out = _export(run, "--format", fmt)
    assert out["max_abs_diff"] <= 1e-5
    assert [i["name"] for i in out["inputs"]] == ["stack", "where", "concatenate", "is_nan", "clip", "runname"]
    want = _predict(run, tmp_path / "d.csv", "--proba")
    got = _predict(Path(out["path"]), tmp_path / "d.csv", "--proba")
    np.testing.assert_allclose(got[["proba_no", "proba_yes"]], want[["proba_no", "proba_yes"]], atol=1e-5)


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_columns_named_alike_but_for_case_export(tmp_path, fmt):
    rng = np.random.default_rng(4)
    n = 120
    df = pd.DataFrame({"x": rng.normal(size=n), "X": rng.normal(size=n), "Color": rng.choice(["u", "v"], n),
                       "color": rng.choice(["u", "w"], n)})
    df["y"] = np.where(df["x"] - df["X"] > 0, "a", "b")
    run = _fit_frame(tmp_path, df)
    out = _export(run, "--format", fmt)
    assert [i["column"] for i in out["inputs"]] == ["x", "X", "Color", "color"]
    assert len({i["name"].lower() for i in out["inputs"]}) == 4
    want = _predict(run, tmp_path / "d.csv", "--proba")
    got = _predict(Path(out["path"]), tmp_path / "d.csv", "--proba")
    np.testing.assert_allclose(got[["proba_a", "proba_b"]], want[["proba_a", "proba_b"]], atol=1e-5)


@pytest.mark.slow
def test_a_yes_no_column_is_read_inside_the_exported_model_in_any_case(tmp_path):
    """A yes/no column reaches the network as 1/0 (`data.typing`); savedmodel and keras exports take its
    words as they are written, in any case ("" or another word: the fill value), onnx refuses it."""
    rng = np.random.default_rng(3)
    n = 200
    df = pd.DataFrame({"x": rng.normal(size=n), "smoker": rng.choice(["yes", "no", "Yes"], n),
                       "ok/not": rng.choice(["Y", "n"], n)})
    df.loc[::17, "smoker"] = None
    df["y"] = np.where(df.x + (df.smoker.str.lower() == "yes") > 0.5, "p", "q")
    df.to_csv(tmp_path / "d.csv", index=False)
    run = _fit(tmp_path, f"""
        data: {{source: {tmp_path / 'd.csv'}, target: y}}
        preprocessing: {{missing: median}}
        model: {{layers: [{{type: Dense, units: 4, activation: relu}}]}}
        training: {{epochs: 2}}
        output: {{plots: false}}
    """)
    features = json.loads((run / "features.json").read_text())
    assert set(features["derived"]) == {"smoker.yes", "ok/not.y"}
    out = _export(run)
    assert [(i["name"], i.get("kind"), i.get("words")) for i in out["inputs"]][:3] == \
        [("x", None, None), ("smoker", "yes/no", ["yes", "no"]), (out["inputs"][2]["name"], "yes/no", ["y", "n"])]
    want = _predict(run, tmp_path / "d.csv", "--proba")
    got = _predict(Path(out["path"]), tmp_path / "d.csv", "--proba")
    np.testing.assert_allclose(got[["proba_p", "proba_q"]], want[["proba_p", "proba_q"]], atol=1e-5)
    import tensorflow as tf

    serve = tf.saved_model.load(out["model_path"]).signatures["serving_default"]
    rows = pd.read_csv(tmp_path / "d.csv").head(40)
    written = rows.smoker.map(lambda v: "" if not isinstance(v, str) else v.upper() if v == "yes" else
                              "nO" if v == "no" else v)
    raw = serve(x=tf.constant(rows.x.to_numpy("float32")), smoker=tf.constant(written.to_numpy(str)),
                **{out["inputs"][2]["name"]: tf.constant(rows["ok/not"].to_numpy(str))})
    np.testing.assert_allclose(raw["probabilities"].numpy(), want[["proba_p", "proba_q"]].head(40), atol=1e-5)
    refused = runner.invoke(app, ["export", str(run), "--format", "onnx"])
    assert refused.exit_code == 2 and "yes/no words" in refused.output and "savedmodel, keras" in refused.output


@pytest.mark.parametrize("fmt", ["savedmodel", "keras", "onnx", "litert"])
def test_a_date_column_is_carried_by_savedmodel_alone_and_yes_no_words_by_the_formats_with_strings(fmt):
    from types import SimpleNamespace

    from nettrain.data.types import ColumnInfo, FeatureSchema
    from nettrain.errors import UsageError
    from nettrain.lifecycle.export import plan_for

    def target(*columns):
        schema = FeatureSchema(task="binary", target="y", class_names=["a", "b"],
                               columns=[ColumnInfo("x", "numeric"), *columns])
        return SimpleNamespace(schema=schema, config={}, label_mode="binary", threshold=0.5)

    when = ColumnInfo("when.year", "numeric", origin={"column": "when", "type": "date", "part": "year"})
    with pytest.raises(UsageError, match="column 'when' is a date that nettrain turns into numbers"):
        plan_for(target(when), fmt)  # no format recorded: no format can parse it
    offset = {"column": "when", "type": "date", "format": "%Y-%m-%dT%H:%M:%S%z"}   # pandas moves it to UTC
    with pytest.raises(UsageError, match="formats that can: none"):
        plan_for(target(*[ColumnInfo(f"when.{p}", "numeric", origin={**offset, "part": p})
                          for p in ("year", "month", "day")]), fmt)
    dated = [ColumnInfo(f"when.{p}", "numeric", origin={"column": "when", "type": "date", "format": "%d.%m.%Y",
                                                        "part": p}) for p in ("year", "month", "day", "weekday")]
    if fmt == "savedmodel":  # its serving function parses the dates: one string input for the four parts
        inputs = plan_for(target(*dated), fmt).inputs()
        assert [(i["name"], i.get("kind")) for i in inputs] == [("x", None), ("when", "date")]
        assert inputs[1]["format"] == "%d.%m.%Y" and list(inputs[1]["parts"].values()) == \
            ["year", "month", "day", "weekday"]
    else:
        with pytest.raises(UsageError, match=f"{fmt} cannot carry that step .formats that can: savedmodel"):
            plan_for(target(*dated), fmt)
    smoker = ColumnInfo("smoker.yes", "numeric", origin={"column": "smoker", "type": "boolean", "true": "yes",
                                                         "false": "no"})
    if fmt in ("savedmodel", "keras"):
        plan = plan_for(target(smoker), fmt)
        assert plan.words == {"smoker.yes": ("smoker", "yes", "no")} and plan.inputs()[1]["kind"] == "yes/no"
    else:
        with pytest.raises(UsageError, match=f"column 'smoker' holds yes/no words .* {fmt} cannot carry"):
            plan_for(target(smoker), fmt)


def test_the_serving_date_parts_are_the_readers_for_every_format_without_an_offset():
    """export.date_parts (TensorFlow string ops, inside a SavedModel) gives the parts
    `data.typing.derived_values` (pandas) gives, for every date format init recognizes but those with
    a UTC offset: valid dates, two-digit years, and NaN for what is no date of the format."""
    from nettrain.data import typing as T
    from nettrain.lifecycle.export import date_parts, servable_date

    rng = np.random.default_rng(0)
    stamps = pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 110 * 365 * 24 * 60, 400), unit="min")
    bad = ["", "2016-02-30", "13/45/2016", "31.02.2019", "2019-1-2-3", "x", "2016-06-15 25:00", "  ",
           "2016/06/15", "16-06-15", "02016-06-15", "2016-06-15x", "15.06.16 10:00", "6/5/2016 7:5"]
    formats = [f for f in T.DATE_FORMATS if "%z" not in f]
    assert all(servable_date(f) for f in formats) and not servable_date("%Y-%m-%dT%H:%M:%S%z")
    for fmt in formats:
        text = pd.Series(list(stamps.strftime(fmt)) + bad)
        parts = ["year", "month", "day", "weekday"] + (["hour"] if "%H" in fmt else [])
        want, _ = T.derived_values(text, {p: {"column": "c", "type": "date", "format": fmt, "part": p} for p in parts})
        got = date_parts(text.to_numpy(str), fmt)
        for p in parts:
            np.testing.assert_array_equal(got[p].numpy(), want[p].astype("float32"), err_msg=f"{fmt} {p}")


@pytest.mark.slow
def test_a_savedmodel_parses_its_date_columns_itself(tmp_path):
    """Date columns (one with an hour, some values missing) exported as savedmodel: string inputs whose
    parts the serving function makes; predict with the export gives the run's predictions, and the raw
    serving call takes dates as a user writes them; keras refuses them."""
    rng = np.random.default_rng(0)
    n = 400
    when = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 24, n), unit="h")
    x = rng.normal(size=n)
    y = x + np.where(when.month.isin([6, 7, 8]), 2.0, 0.0) + np.where(when.day_of_week >= 5, 1.0, 0.0)
    frame = pd.DataFrame({"seen": when.strftime("%m/%d/%Y %H:%M"), "day": when.strftime("%Y-%m-%d"), "x": x, "y": y})
    frame.loc[::9, "day"] = ""
    frame.to_csv(tmp_path / "d.csv", index=False)
    run = _fit(tmp_path, f"""
        data: {{source: {tmp_path / 'd.csv'}, target: y, columns: {{seen: {{type: date}}, day: {{type: date}}}}}}
        preprocessing: {{missing: median}}
        model: {{layers: [{{type: Dense, units: 8, activation: relu}}]}}
        training: {{epochs: 2}}
        output: {{plots: false}}
    """)
    out = _export(run)
    dates = [i for i in out["inputs"] if i.get("kind") == "date"]
    assert [(i["name"], i["format"]) for i in dates] == [("seen", "%m/%d/%Y %H:%M"), ("day", "%Y-%m-%d")]
    assert list(dates[0]["parts"].values()) == ["year", "month", "day", "weekday", "hour"]
    want = _predict(run, tmp_path / "d.csv")
    got = _predict(Path(out["path"]), tmp_path / "d.csv")
    np.testing.assert_allclose(got["prediction"], want["prediction"], atol=1e-5)
    import tensorflow as tf

    serve = tf.saved_model.load(out["model_path"]).signatures["serving_default"]
    rows = frame.head(30)
    raw = serve(seen=tf.constant(rows.seen.to_numpy(str)), day=tf.constant(rows.day.to_numpy(str)),
                x=tf.constant(rows.x.to_numpy("float32")))
    np.testing.assert_allclose(raw["value"].numpy()[:, 0], want["prediction"].head(30), atol=1e-5)
    refused = runner.invoke(app, ["export", str(run), "--format", "keras"])
    assert refused.exit_code == 2 and "column 'seen' is a date" in refused.output


def test_a_mixed_precision_model_is_held_to_its_precision(tmp_path):
    """runtime.mixed_precision computes in 16 bits: the keras export reloaded and the run's model round
    its products differently (here by more than float32's 1e-4), within bfloat16's precision."""
    from tests.helpers import mixed_csv

    mixed_csv(tmp_path / "m.csv", n=200)
    run = _fit(tmp_path, f"""
        data: {{source: {tmp_path / 'm.csv'}, target: label, drop: [id]}}
        model: {{layers: [{{type: Dense, units: 8, activation: relu}}, {{type: BatchNormalization}}]}}
        training: {{epochs: 2}}
        runtime: {{mixed_precision: mixed_bfloat16}}
        output: {{plots: false}}
    """)
    out = _export(run, "--format", "keras", "-o", tmp_path / "k")
    info = json.loads((tmp_path / "k" / "export.json").read_text())
    assert info["tolerance"] == 2e-2 and out["max_abs_diff"] <= 2e-2


def test_a_streamed_run_of_separate_files_is_checked_on_its_test_file(tmp_path):
    """The held-out rows of a stream's own test file carry no row positions: the check counted them by
    those and crashed (TypeError)."""
    regression_csv(tmp_path / "all.csv", n=160)
    rows = pd.read_csv(tmp_path / "all.csv")
    rows.iloc[:120].to_csv(tmp_path / "train.csv", index=False)
    rows.iloc[120:].to_csv(tmp_path / "test.csv", index=False)
    run = _fit(tmp_path, f"""
        data: {{train: {tmp_path / 'train.csv'}, test: {tmp_path / 'test.csv'}, target: y, stream: true}}
        training: {{epochs: 1}}
        output: {{plots: false}}
    """)
    out = _export(run, "--format", "keras", "-o", tmp_path / "k")
    assert out["rows_compared"] == 40 and out["split"] == "test"
