"""Image folders (`data.source: FOLDER/`, `data.images`): validate without TensorFlow, the first pass
(bad images, the seeded stratified split), init's CNN config, and an image run trained, evaluated,
predicted and exported through the CLI. The images are tiny (16x16) and made here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.data import load_dataset
from nettrain.data.images import ImageSpec, decode, listed_files
from nettrain.errors import ConfigError, DataError
from tests.helpers import slow_fixture

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _shapes_module():
    spec = importlib.util.spec_from_file_location("make_shapes", ROOT / "data" / "make_shapes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_shapes = _shapes_module()


def shapes(root: Path, per_class: int = 8, mode: str = "RGB", size: int = 16) -> Path:
    return make_shapes.make(root, per_class=per_class, size=size, mode=mode)


def truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:60])
    return path


def config(tmp_path: Path, images: dict | None = None, **data) -> Path:
    spec = {"name": "img", "seed": 3,
            "data": {"source": "shapes", **({"images": images} if images is not None else {}), **data},
            "model": {"layers": [{"type": "RandomFlip", "mode": "horizontal"},
                                 {"type": "RandomRotation", "factor": 0.1},
                                 {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
                                 {"type": "GlobalAveragePooling2D"}]},
            "training": {"epochs": 2, "batch_size": 8},
            "callbacks": {"checkpoint": False},
            "output": {"dir": "runs", "plots": False}}
    path = tmp_path / "img.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


# ------------------------------------------------------------------------------ validate (no TensorFlow)

@pytest.mark.parametrize("images, bad", [
    ({"size": [16]}, "[16]"), ({"size": [0, 16]}, "[0, 16]"), ({"size": "16x16"}, "'16x16'"),
    ({"size": [16, 5000]}, "[16, 5000]"), ({"color": "cmyk"}, "'cmyk'"), ({"bad": "ignore"}, "'ignore'"),
    ({"channels": 3}, "channels"),
])
def test_validate_refuses_bad_image_values(tmp_path, images, bad):
    shapes(tmp_path / "shapes", per_class=1)
    result = invoke("validate", config(tmp_path, images))
    assert result.exit_code == 2
    assert "data.images" in result.output and bad in result.output


def test_validate_accepts_an_image_folder_without_tensorflow(tmp_path):
    shapes(tmp_path / "shapes", per_class=1)
    result = invoke("validate", config(tmp_path, {"size": [16, 16], "color": "grayscale", "bad": "skip"}))
    assert result.exit_code == 0, result.output
    assert "an image folder" in result.output


def test_images_need_a_folder(tmp_path):
    (tmp_path / "rows.csv").write_text("a,y\n1,2\n")
    result = invoke("validate", config(tmp_path, {"size": [8, 8]}, source="rows.csv", target="y"))
    assert result.exit_code == 2
    assert "data.images" in result.output and "rows.csv, not a folder" in result.output


@pytest.mark.parametrize("sets, key", [(["data.target=label"], "data.target"), (["data.split.folds=3"], "data.split.folds"),
                                       (["runtime.distribute=mirrored"], "runtime.distribute")])
def test_what_an_image_folder_cannot_use_is_refused(tmp_path, sets, key):
    shapes(tmp_path / "shapes", per_class=2)
    cfg = load_config(config(tmp_path), sets)
    with pytest.raises(ConfigError) as e:
        load_dataset(cfg)
    assert key in str(e.value)


# ------------------------------------------------------------------------------ the first pass

def test_split_is_seeded_stratified_and_fingerprinted(tmp_path):
    shapes(tmp_path / "shapes", per_class=10)
    cfg = load_config(config(tmp_path))
    one, two = load_dataset(cfg), load_dataset(cfg)
    assert one.fingerprint == two.fingerprint
    assert list(one.test.ids) == list(two.test.ids)
    assert one.schema.class_names == ["circle", "square", "triangle"]
    for split in (one.train, one.validation, one.test):  # stratified: every class in every split
        assert sorted(set(split.y.tolist())) == [0, 1, 2]
    assert len(one.train) + len(one.validation) + len(one.test) == 30
    other = load_dataset(load_config(config(tmp_path), ["seed=4"]))
    assert list(other.test.ids) != list(one.test.ids)


def test_a_changed_image_changes_the_fingerprint(tmp_path):
    folder = shapes(tmp_path / "shapes", per_class=4)
    cfg = load_config(config(tmp_path))
    before = load_dataset(cfg).fingerprint
    make_shapes.draw("circle", np.random.default_rng(9)).save(folder / "circle" / "circle-000.png")
    assert load_dataset(cfg).fingerprint != before


def test_a_bad_image_is_refused_naming_it(tmp_path):
    folder = shapes(tmp_path / "shapes", per_class=4)
    broken = truncate(folder / "square" / "square-002.png")
    (folder / "circle" / "notes.png").write_text("not an image")
    with pytest.raises(DataError) as e:
        load_dataset(load_config(config(tmp_path)))
    assert str(broken) in e.value.message and "notes.png" in e.value.message
    assert "2 of 13" in e.value.message and "data.images.bad: skip" in e.value.message


def test_bad_images_are_skipped_with_a_count(tmp_path):
    folder = shapes(tmp_path / "shapes", per_class=4)
    truncate(folder / "square" / "square-002.png")
    with pytest.warns(UserWarning, match="1 of 12 image files cannot be read.*square-002.png"):
        dataset = load_dataset(load_config(config(tmp_path, {"bad": "skip"})))
    assert dataset.n_rows == 11
    assert any("left out" in note for note in dataset.notes)


def test_grayscale_and_rgb_shapes(tmp_path):
    folder = shapes(tmp_path / "shapes", per_class=1, size=20)
    one = folder / "circle" / "circle-000.png"
    assert decode(one, ImageSpec((16, 12), "rgb")).shape == (16, 12, 3)
    assert decode(one, ImageSpec((16, 12), "grayscale")).shape == (16, 12, 1)
    gray = shapes(tmp_path / "gray", per_class=1, mode="L")
    assert decode(gray / "square" / "square-000.png", ImageSpec((16, 16), "rgb")).shape == (16, 16, 3)


def test_folder_errors(tmp_path):
    (tmp_path / "shapes").mkdir()
    make_shapes.draw("circle", np.random.default_rng(0)).save(tmp_path / "shapes" / "loose.png")
    with pytest.raises(DataError, match="no class sub-folders.*1 images directly"):
        load_dataset(load_config(config(tmp_path)))
    (tmp_path / "shapes" / "empty").mkdir()
    (tmp_path / "shapes" / "full").mkdir()
    make_shapes.draw("circle", np.random.default_rng(0)).save(tmp_path / "shapes" / "full" / "a.png")
    with pytest.raises(DataError, match="'empty' holds no image files"):
        load_dataset(load_config(config(tmp_path)))


def test_predict_inputs(tmp_path):
    folder = shapes(tmp_path / "shapes", per_class=2)
    assert len(listed_files(folder)) == 6  # class sub-folders, at any depth
    (tmp_path / "list.txt").write_text("shapes/circle/circle-001.png\n\n# a comment\nshapes/square/square-000.png\n")
    assert [p.name for p in listed_files(tmp_path / "list.txt")] == ["circle-001.png", "square-000.png"]
    (tmp_path / "gone.txt").write_text("shapes/nothing.png\n")
    with pytest.raises(DataError, match="1 listed file not found"):
        listed_files(tmp_path / "gone.txt")
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match="not a .csv"):
        listed_files(tmp_path / "x.csv")


def test_hidden_folders_and_a_macos_zips_folder_are_no_data(tmp_path):
    """A zip made on macOS unpacks a `__MACOSX/` folder beside the classes (refused as a class "holding no
    image files"); a hidden folder inside a class (`.ipynb_checkpoints/`, `.thumbnails/`) had its images
    read as the class's. Neither is read, by fit or predict."""
    from nettrain.data.images import class_files

    folder = shapes(tmp_path / "shapes", per_class=2)
    rng = np.random.default_rng(0)
    for junk in ("__MACOSX/circle", "circle/.ipynb_checkpoints", "square/.thumbnails", ".cache"):
        (folder / junk).mkdir(parents=True)
        make_shapes.draw("circle", rng).save(folder / junk / "x.png")
    (folder / "__MACOSX" / "._circle-000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    files = class_files(folder)
    assert sorted(files) == ["circle", "square", "triangle"]
    assert {name: len(found) for name, found in files.items()} == {"circle": 2, "square": 2, "triangle": 2}
    assert len(listed_files(folder)) == 6


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "CMYK", "L", "1"])
def test_every_common_image_mode_decodes_to_its_pixels(tmp_path, mode):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = (rng.random((10, 12, 3)) * 255).astype(np.uint8)
    path = tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}"
    Image.fromarray(pixels).convert(mode).save(path)
    for color, channels in (("rgb", 3), ("grayscale", 1)):
        x = decode(path, ImageSpec((10, 12), color))
        assert x.shape == (10, 12, channels) and x.dtype == np.uint8
        if mode == "RGB":
            grey = np.asarray(Image.fromarray(pixels).convert("L"))[..., None]
            assert np.array_equal(x, pixels if color == "rgb" else grey)
        assert 30 < x.mean() < 220  # (not saturated)


def test_a_16_bit_grey_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    """Pillow opens a 16-bit grey PNG (medical and scientific images) in mode I;16, and its conversion
    to L or RGB clipped every value above 255: a ramp from black to white came out nearly all white.
    It is scaled to 8 bits (value / 257), as TensorFlow's decode_png does."""
    from PIL import Image

    ramp = np.linspace(0, 65535, 20 * 30).reshape(20, 30).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    want = np.round(ramp / 257).astype(np.uint8)
    for color in ("grayscale", "rgb"):
        x = decode(tmp_path / "ramp.png", ImageSpec((20, 30), color))
        assert np.array_equal(x[..., 0], want) and np.array_equal(x[..., -1], want)
    assert x.min() == 0 and x.max() == 255


def test_an_image_model_is_known_by_its_input_when_its_folder_is_gone(tmp_path):
    from types import SimpleNamespace

    from nettrain.data.images import is_image_model

    gone = {"data": {"source": str(tmp_path / "moved-away")}}
    assert is_image_model(SimpleNamespace(features={"inputs": ["image"]}, config=gone))
    assert not is_image_model(SimpleNamespace(features={"inputs": ["numeric"]}, config=gone))
    assert is_image_model(SimpleNamespace(features={}, config={"data": {"source": str(tmp_path)}}))


# ------------------------------------------------------------------------------ init

def test_init_on_an_image_folder_writes_a_small_cnn(tmp_path, monkeypatch):
    shapes(tmp_path / "shapes", per_class=3, mode="L", size=20)
    monkeypatch.chdir(tmp_path)
    out = Path("cfg") / "images.yaml"
    out.parent.mkdir()
    result = invoke("init", "shapes", "--output", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    spec = yaml.safe_load(text)
    assert spec["data"]["source"] == "../shapes"
    assert spec["data"]["images"] == {"size": [20, 20], "color": "grayscale", "bad": "error"}
    kinds = [layer["type"] for layer in spec["model"]["layers"]]
    assert "Conv2D" in kinds and "MaxPooling2D" in kinds and kinds[-3:] == ["GlobalAveragePooling2D", "Dropout",
                                                                             "Dense"]
    assert "median size of 9 sampled images (20x20)" in text  # the reason, in a comment
    assert invoke("validate", out).exit_code == 0
    refused = invoke("init", "shapes", "--target", "label")
    assert refused.exit_code == 2 and "takes no --target: leave it out" in refused.output


def test_init_caps_large_images(tmp_path):
    from nettrain.data.imagesuggest import MAX_SIDE, capped

    assert capped(480, 640) == (96, MAX_SIDE)
    assert capped(20, 30) == (20, 30)


# ------------------------------------------------------------------------------ a trained image run

@pytest.fixture(scope="module")
@slow_fixture
def image_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    shapes(root / "shapes", per_class=8)
    run = root / "run"
    result = invoke("fit", config(root, {"size": [16, 16]}), "--run-dir", run, "--quiet")
    assert result.exit_code == 0, result.output
    return run


def test_fit_records_rows_and_classes(image_run):
    record = json.loads((image_run / "run.json").read_text())
    rows = record["data"]["rows"]
    assert sum(rows.values()) == 24 and rows["test"] > 0
    assert set(record["data"]["class_counts"]["train"]) == {"circle", "square", "triangle"}
    assert "(None, 16, 16, 3)" in (image_run / "summary.txt").read_text()  # rgb: three channels
    assert "rescaling" in (image_run / "summary.txt").read_text()


def test_evaluate_an_image_run(image_run):
    result = invoke("evaluate", image_run, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads((image_run / "run.json").read_text())["data"]["rows"]["test"]
    assert json.loads((image_run / "eval-test.json").read_text())["rows"] == rows
    folder = image_run.parent / "shapes"
    on_folder = invoke("evaluate", image_run, "--data", folder)
    assert on_folder.exit_code == 0 and "24 rows" in on_folder.output


def test_predict_a_folder_and_a_list(image_run, tmp_path):
    folder = image_run.parent / "shapes"
    out = tmp_path / "pred.csv"
    result = invoke("predict", image_run, folder, "--proba", "--output", out)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["path", "prediction", "proba_circle", "proba_square", "proba_triangle"]
    assert len(frame) == 24 and frame["path"].str.endswith(".png").all()
    assert set(frame["prediction"]) <= {"circle", "square", "triangle"}
    listed = tmp_path / "two.txt"
    listed.write_text(f"{folder}/circle/circle-001.png\n{folder}/square/square-003.png\n")
    two = invoke("predict", image_run, listed)
    assert two.exit_code == 0
    assert [line.split(",")[0] for line in two.stdout.strip().splitlines()[1:]] == [
        f"{folder}/circle/circle-001.png", f"{folder}/square/square-003.png"]


def test_predict_is_deterministic_with_augmentation_layers(image_run):
    folder = image_run.parent / "shapes" / "triangle"
    first = invoke("predict", image_run, folder, "--proba")
    second = invoke("predict", image_run, folder, "--proba")
    assert first.exit_code == 0 and first.stdout == second.stdout
    assert "RandomFlip" in (image_run / "summary.txt").read_text()


def test_predict_a_bad_image_is_refused_naming_it(image_run, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes((image_run.parent / "shapes" / "circle" / "circle-000.png").read_bytes())
    truncate(broken)
    result = invoke("predict", image_run, broken)
    assert result.exit_code == 2
    assert str(broken) in result.output and "cannot be read" in result.output


@pytest.mark.parametrize("fmt", ["savedmodel", "keras", "onnx", "litert"])
def test_an_image_run_exports_to_every_format_with_its_pixels_as_the_input(image_run, tmp_path, fmt):
    """An image folder's model was refused by export. Its export takes one input `x`: the pixels
    (0..255) of images resized as data.images says (the rescaling is inside the model), named in
    export.json; checked against the run's model, and predict through it equals predict of the run."""
    if fmt == "onnx":
        pytest.importorskip("tf2onnx")
        pytest.importorskip("onnxruntime")
    result = invoke("export", image_run, "--format", fmt, "--output", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 16, 16, 3], "kind": "image",
                                "size": [16, 16], "color": "rgb"}]
    assert shown["max_abs_diff"] <= 1e-3 and shown["rows_compared"] > 0
    folder = image_run.parent / "shapes" / "circle"
    want = invoke("predict", image_run, folder, "--proba")
    got = invoke("predict", tmp_path / "out", folder, "--proba")
    assert want.exit_code == 0 and got.exit_code == 0, got.output
    a, b = (pd.read_csv(__import__("io").StringIO(r.stdout)) for r in (want, got))
    assert list(a.columns) == list(b.columns) and a["path"].tolist() == b["path"].tolist()
    numbers = [c for c in a.columns if c != "path" and pd.api.types.is_numeric_dtype(a[c])]
    np.testing.assert_allclose(b[numbers].to_numpy(), a[numbers].to_numpy(), atol=1e-3)
    if fmt == "savedmodel":  # what a server does: the pixels of a file, as they are, into the signature
        import tensorflow as tf

        pixels = decode(folder / "circle-000.png", ImageSpec((16, 16), "rgb"))[None].astype("float32")
        served = tf.saved_model.load(str(tmp_path / "out" / "1")).signatures["serving_default"]
        probabilities = served(x=tf.constant(pixels))["probabilities"].numpy()
        np.testing.assert_allclose(probabilities[0], a.loc[0, [c for c in numbers]].to_numpy(float), atol=1e-5)


def test_inspect_of_an_image_config_and_gradient_stats_decode_the_images(tmp_path):
    """`inspect CONFIG` and `callbacks.gradient_stats` measure on the first training rows: of an image
    folder those were the files' paths, and both failed inside the model ("Cast string to float")."""
    shapes(tmp_path / "shapes", per_class=4)
    cfg = config(tmp_path, {"size": [8, 8]})
    result = invoke("inspect", cfg, "--json", "--batch", "5")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "config" and report["rows"] == 5 and report["layers"]
    result = invoke("fit", cfg, "--run-dir", tmp_path / "run", "--quiet", "--set", "callbacks.gradient_stats.every=1")
    assert result.exit_code == 0, result.output
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert any(c.startswith("grad_norm") for c in header), header


@pytest.mark.slow
def test_fit_with_a_bad_image_stops_before_a_run(tmp_path):
    folder = shapes(tmp_path / "shapes", per_class=3)
    broken = truncate(folder / "triangle" / "triangle-001.png")
    result = invoke("fit", config(tmp_path), "--quiet")
    assert result.exit_code == 2
    assert str(broken) in result.output
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------ .npz rows in their shape

def test_npz_row_shape_reads_the_header(tmp_path):
    from nettrain.data.sources import npz_row_shape

    np.savez(tmp_path / "grid.npz", x=np.zeros((5, 8, 6), np.float32), y=np.zeros(5))
    np.savez(tmp_path / "flat.npz", x=np.zeros((5, 48), np.float32), y=np.zeros(5))
    assert npz_row_shape(tmp_path / "grid.npz") == (8, 6)
    assert npz_row_shape(tmp_path / "flat.npz") is None


@pytest.mark.slow
@pytest.mark.parametrize("first, shape", [({"type": "Conv2D", "filters": 4, "kernel_size": 3}, "(None, 8, 6, 1)"),
                                          ({"type": "Dense", "units": 4}, None)])
def test_npz_rows_keep_their_shape_for_a_conv_stack(tmp_path, first, shape):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    np.savez(tmp_path / "grid.npz", x=rng.normal(size=(60, 8, 6)).astype(np.float32), y=y)
    layers = [first] + ([{"type": "GlobalAveragePooling2D"}] if shape else [])
    spec = {"data": {"source": "grid.npz"}, "model": {"layers": layers}, "training": {"epochs": 1},
            "callbacks": {"checkpoint": False}, "output": {"dir": "runs", "plots": False}}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(spec))
    run = tmp_path / "run"
    result = invoke("fit", tmp_path / "grid.yaml", "--run-dir", run, "--quiet")
    assert result.exit_code == 0, result.output
    summary = (run / "summary.txt").read_text()
    notes = json.loads((run / "run.json").read_text())["notes"]
    if shape:
        assert "row_shape (Reshape)" in summary and shape in summary
        assert any("keep their shape [8, 6, 1]" in note for note in notes)
    else:  # a Dense stack takes the 48 columns as one vector, as before
        assert "row_shape" not in summary and not any("keep their shape" in note for note in notes)
    predicted = invoke("predict", run, tmp_path / "grid.npz")
    assert predicted.exit_code == 0 and len(predicted.stdout.strip().splitlines()) == 61
