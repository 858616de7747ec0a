"""An exported model (`nettrain export`) run with its own runtime: the export's check, and
`nettrain predict` on an exported SavedModel folder or `.onnx` file.

An export folder holds `export.json` (format, inputs, outputs, classes) and `features.json` (the
run's feature schema) beside the model: `predict` reads a data file with that schema, feeds the
raw columns by name (an .npz run's rows in their own shape, as input `x`) and turns the outputs
into the same prediction columns as for the `.h5` model. Runtimes are imported only here and only
when a model of their format is loaded: TensorFlow (SavedModel, LiteRT, .keras), onnxruntime
(the optional extra `onnx`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nettrain.data.types import NUMERIC_INPUT, FeatureSchema
from nettrain.errors import UsageError
from nettrain.store.meta import IMAGE_INPUT
from nettrain.words import first_line

INFO = "export.json"
CHUNK = 4096   # rows per call into the runtime


@dataclass
class Loaded:
    format: str
    runner: Any
    info: dict[str, Any]


# ------------------------------------------------------------------------------ rows in, outputs out

def feed_of(split, plan_or_info, limit: int | None = None) -> dict[str, np.ndarray]:
    """A Split's prepared inputs as the exported model's raw named inputs."""
    inputs = _inputs_of(plan_or_info)
    n = len(split) if limit is None else min(limit, len(split))
    feed: dict[str, np.ndarray] = {}
    numeric_names: list[str] = []  # the numeric matrix's columns, in the inputs' order
    for i in inputs:
        if i.get("kind") == "date":
            numeric_names += list(i["parts"])
        elif i["dtype"] == "float32" or i.get("kind") == "yes/no":
            numeric_names.append(i.get("numeric") or i.get("column", i["name"]))
    matrix = split.inputs.get(NUMERIC_INPUT)
    position = {c: j for j, c in reversed(list(enumerate(numeric_names)))}  # (the first, as list.index)
    for spec in inputs:
        name, column = spec["name"], spec.get("column", spec["name"])  # (exports before `column`: the same)
        if spec.get("kind") == "image":  # an image folder's decoded images, pixels 0..255
            feed[name] = np.ascontiguousarray(split.inputs[IMAGE_INPUT][:n], dtype=np.float32)
        elif spec.get("kind") == "date":  # the dates again, written in their format from the parts the reader made
            parts = {part: matrix[:n, position[c]] for c, part in spec["parts"].items()}
            feed[name] = _dates_written(parts, spec["format"], n)
        elif spec.get("kind") == "yes/no":  # the words again, from the 1/0 the reader made of them ("": missing)
            values = matrix[:n, position[spec["numeric"]]]
            yes, no = spec["words"]
            feed[name] = np.where(values == 1.0, yes, np.where(values == 0.0, no, "")).astype(object)
        elif spec["dtype"] == "float32":
            if len(spec["shape"]) > 1:  # an .npz run's x in its own row shape
                feed[name] = np.ascontiguousarray(matrix[:n].reshape(n, *spec["shape"][1:]), dtype=np.float32)
            else:
                feed[name] = np.ascontiguousarray(matrix[:n, position[column]], dtype=np.float32)
        else:
            values = np.asarray(split.inputs[column][:n]).reshape(n)
            feed[name] = np.asarray(["" if v is None else str(v) for v in values], dtype=object)
    return feed


def _dates_written(parts: dict[str, np.ndarray], fmt: str, n: int) -> np.ndarray:
    """Date strings in `fmt` from their year, month, day (and hour) parts; "" (missing) where a part is
    missing, or where the parts are no one date (a missing date's parts filled with each part's own
    fill value: its weekday is not that of its year, month and day), as the model then fills them."""
    from datetime import datetime

    out = np.full(n, "", dtype=object)
    hours = parts.get("hour", np.zeros(n))
    weekdays = parts.get("weekday")
    for i in range(n):
        values = (parts["year"][i], parts["month"][i], parts["day"][i], hours[i])
        if not all(v == v and float(v).is_integer() for v in values):  # NaN, or a filled value between days
            continue
        try:
            when = datetime(*(int(v) for v in values))
        except ValueError:  # parts that make no date
            continue
        if weekdays is None or weekdays[i] == when.weekday():
            out[i] = when.strftime(fmt)
    return out


def _inputs_of(plan_or_info) -> list[dict[str, Any]]:
    if isinstance(plan_or_info, dict):
        return plan_or_info["inputs"]
    return plan_or_info.inputs()


def reference_outputs(target, model, split, plan) -> dict[str, np.ndarray]:
    """The run's own model on `split` (the `.h5` path of predict), as the export's named outputs."""
    from nettrain.lifecycle.predict import probabilities
    from nettrain.lifecycle.target import batch_size, model_outputs

    raw = model_outputs(model, split, batch_size(target), "the held-out rows")
    if plan.mode == "regression":
        return {"value": raw}
    return {"probabilities": probabilities(target, raw)}


# ------------------------------------------------------------------------------ loading

def load(folder: Path, info: dict[str, Any]) -> Loaded:
    """The model of an export folder, loaded with its format's own runtime."""
    fmt = info["format"]
    path = folder / info["model"]
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError("an ONNX model needs the optional extra 'onnx': pip install 'nettrain[onnx]' "
                             "(onnxruntime)") from None
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - an op onnxruntime lacks
            raise UsageError(f"onnxruntime cannot load {path}: {first_line(e)[-300:]}; formats that carry every "
                             "Keras layer: savedmodel, keras") from None
        return Loaded(fmt, session, info)
    from nettrain.training import runtime

    with runtime.quiet_native_stderr():
        if fmt == "savedmodel":
            import tensorflow as tf

            loaded = tf.saved_model.load(str(path))
            return Loaded(fmt, (loaded, loaded.signatures["serving_default"]), info)
        if fmt == "litert":
            import tensorflow as tf

            import warnings

            with warnings.catch_warnings():  # tf.lite.Interpreter's notice about ai_edge_litert
                warnings.simplefilter("ignore", UserWarning)
                interpreter = tf.lite.Interpreter(model_path=str(path))
            return Loaded(fmt, interpreter.get_signature_runner(), info)
        import warnings

        import keras

        if info.get("plugins"):  # the custom objects of a plugin, from the export's own copies
            from nettrain.store import plugins

            plugins.load_kept(folder, info["plugins"])
        with warnings.catch_warnings():  # the inner model's optimizer state is not needed to predict
            warnings.simplefilter("ignore", UserWarning)
            return Loaded(fmt, keras.saving.load_model(str(path), compile=False, safe_mode=True), info)


def run(loaded: Loaded, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The named outputs for `feed`, CHUNK rows per call."""
    n = len(next(iter(feed.values())))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, max(n, 1), CHUNK):
        piece = {k: v[start:start + CHUNK] for k, v in feed.items()}
        for name, value in _call(loaded, piece).items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {k: np.concatenate(v) for k, v in parts.items()}


def _call(loaded: Loaded, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fmt = loaded.format
    if fmt == "onnx":
        session = loaded.runner
        names = [o.name for o in session.get_outputs()]
        feeds = {k: (v.astype(str) if v.dtype == object else v) for k, v in feed.items()}
        return dict(zip(names, session.run(names, feeds)))
    if fmt == "savedmodel":
        import tensorflow as tf

        out = loaded.runner[1](**{k: tf.constant(v.astype(str) if v.dtype == object else v)
                                  for k, v in feed.items()})
        return {k: v.numpy() for k, v in out.items()}
    if fmt == "litert":
        try:
            return {k: np.asarray(v) for k, v in loaded.runner(**feed).items()}
        except RuntimeError as e:
            if "Flex" not in str(e) and "Select TensorFlow op" not in str(e):
                raise
            # (the converter kept TensorFlow ops it has no LiteRT kernel for: a GRU's or LSTM's loop)
            raise UsageError("the litert model holds TensorFlow ops that only TensorFlow's Flex delegate runs "
                             "(not the LiteRT interpreter): this model's layers need them; formats that carry "
                             "every Keras layer: savedmodel, keras") from None
    import tensorflow as tf

    out = loaded.runner({k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in feed.items()},
                        training=False)
    return {k: np.asarray(v) for k, v in out.items()}


# ------------------------------------------------------------------------------ predict with an export

def export_folder(path: Path) -> Path | None:
    """The export folder of a TARGET that is one (the folder, its SavedModel version folder, or the
    model file inside it), else None."""
    for candidate in (path, path.parent, path.parent.parent):
        try:
            if (candidate / INFO).is_file() and (candidate / "features.json").is_file():
                return candidate
        except OSError:
            return None
    return None


def read_export(folder: Path) -> tuple[dict[str, Any], FeatureSchema, dict[str, Any]]:
    """export.json, the feature schema and the features dict of an export folder."""
    try:
        info = json.loads((folder / INFO).read_text(encoding="utf-8"))
        features = json.loads((folder / "features.json").read_text(encoding="utf-8"))
        schema = FeatureSchema.from_dict({k: v for k, v in features.items()
                                          if k in FeatureSchema.__dataclass_fields__})
        info["inputs"], info["format"], info["model"]  # noqa: B018 - the keys predict needs
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{folder}: not a readable nettrain export ({INFO}, features.json): "
                         f"{first_line(e)[:200]}") from None
    return info, schema, features


def is_export(path: str | Path) -> bool:
    return export_folder(Path(path)) is not None


@dataclass
class ServedTarget:
    """What `lifecycle.predict.prediction_frame` reads of a target, for an exported model."""

    model_path: Path
    schema: FeatureSchema
    features: dict[str, Any]
    info: dict[str, Any]

    @property
    def label_mode(self) -> str:
        return self.features.get("label_mode") or "regression"

    @property
    def threshold(self) -> float:
        return 0.5  # the export gives probabilities, a tanh head's score already mapped to [0, 1]

    @property
    def config(self) -> dict[str, Any]:
        """What predict reads of a run's config: an image model's `data.images` (its input's size and color)."""
        image = next((i for i in self.info["inputs"] if i.get("kind") == "image"), None)
        return {"data": {"images": {"size": image["size"], "color": image["color"]}}} if image else {}


def served_target(path: str | Path) -> ServedTarget:
    folder = export_folder(Path(path))
    if folder is None:
        raise UsageError(f"{path} is not a nettrain export (no {INFO} beside it)")
    info, schema, features = read_export(folder)
    if info["format"] not in ("savedmodel", "onnx", "litert", "keras"):
        raise UsageError(f"{folder / INFO}: unknown format {info['format']!r}")
    return ServedTarget(model_path=folder / info["model"], schema=schema, features=features, info=info)


def raw_outputs(target: ServedTarget, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The exported model's outputs in the `.h5` model's shape (what `prediction_frame` takes)."""
    if target.label_mode == "regression":
        value = np.asarray(outputs["value"], dtype=np.float32)
        return value.reshape(len(value), -1)
    probs = np.asarray(outputs["probabilities"], dtype=np.float32)
    if target.label_mode == "binary":  # the second class's probability, compared with 0.5
        return probs[:, 1:2]
    return probs


def prediction_frames(target: ServedTarget, rows, *, proba: bool):
    """`lifecycle.predict.prediction_frames` for an exported model: the export loaded with its own
    runtime now, then one frame of predictions per chunk of `rows` (the same columns as the `.h5`'s)."""
    from nettrain.lifecycle import predict as P

    loaded = load(target.model_path.parent, target.info)  # the export folder

    def frames():
        for part in rows:
            raw = raw_outputs(target, run(loaded, feed_of(part, target.info)))
            yield P.prediction_frame(target, raw, part.ids, proba=proba)

    return frames()
