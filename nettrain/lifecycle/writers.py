"""The exported model and its files, for `lifecycle.export`: `served_model` (a Keras model around the
run's, raw named inputs in and named outputs out) and `write` (that model as each format's files:
Keras's own exporters, tf2onnx for onnx). TensorFlow and the converters are imported only here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nettrain.data.types import NUMERIC_INPUT, input_name
from nettrain.errors import UsageError
from nettrain.lifecycle.rawinputs import date_parts, yes_no_values
from nettrain.store.meta import IMAGE_INPUT
from nettrain.words import ascii_name, first_line

if TYPE_CHECKING:
    from nettrain.lifecycle.export import Plan

STRINGS = ("savedmodel", "keras")          # the formats that carry string inputs and outputs
VERSION = "1"                              # the SavedModel version folder TF Serving loads
FILES = {"onnx": "model.onnx", "litert": "model.tflite", "keras": "model.keras"}
# Input names the exporters take for their own: the SavedModel signature's function has `self`, the
# ONNX conversion's function its argument `inputs` (`serving_name` renames such columns)
RESERVED = ("self", "inputs")


def serving_name(column: str) -> str:
    """The exported model's input name of a column: the column's name where it is an ASCII letter
    followed by ASCII letters, digits and `_`, and no Python keyword or RESERVED name (a SavedModel
    signature's arguments are Python parameters, and TensorFlow renames any other, which can make two
    alike), else such a name made of it and ending in a hash of it (`km/h` -> `km_h_<6 hex digits>`,
    `None` -> `None_<...>`, `größe` -> `gr__e_<...>`, `_x` -> `c__x_<...>`): unique, and the same at
    every export. `export.json` names each input's column."""
    import keyword
    import re

    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", column) and not keyword.iskeyword(column) and column not in RESERVED:
        return column
    plain, tag = ascii_name(column)
    return f"{plain if re.match(r'[A-Za-z]', plain) else f'c_{plain}'}_{tag}"


def served_model(model, plan: Plan):
    """A Keras model around the run's: raw named inputs in, named outputs out (built-in layers and ops
    only, so that every exporter and `keras.saving` carry it).

    Its inputs (the serving names) feed one nested model, `served.body`, that holds every step: a
    model's operations need names of their own, and an input named like an op Keras names itself
    (a column `stack`, `where`, `concatenate`) or like the run's model (a config `c.yaml`, a column
    `c`) failed every export. Names with a dot are never serving names."""
    import keras
    from keras import ops

    inputs: dict[str, Any] = {}   # serving name -> the served model's input
    inner: dict[str, Any] = {}    # serving name -> the body's input

    def given(name: str, shape, dtype: str):
        inputs[name] = keras.Input(shape=shape, name=name, dtype=dtype)
        inner[name] = keras.Input(shape=shape, name=f"served.in.{len(inner)}", dtype=dtype)
        return inner[name]

    feed: dict[str, Any] = {}
    if plan.pixels is not None:  # an image folder's model takes the pixels as they are
        feed[IMAGE_INPUT] = given("x", plan.image, "float32")
    elif plan.image is not None:
        x = given("x", plan.image, "float32")
        feed[NUMERIC_INPUT] = keras.layers.Reshape((len(plan.numeric),), name="flatten_x")(x)
    elif plan.numeric:
        columns = []
        for name in plan.numeric:
            if name in plan.words:  # the words as a string input, their 1/0 looked up inside the model
                raw, yes, no = plan.words[name]
                x = yes_no_values(given(plan.serving(raw), (), "string"), yes, no, plan.serving(name))
            else:
                x = given(plan.serving(name), (), "float32")
            if name in plan.imputation:  # a missing number (NaN) gets the training rows' fill value
                x = ops.where(ops.isnan(x), plan.imputation[name], x)
            columns.append(x)
        feed[NUMERIC_INPUT] = ops.stack(columns, axis=-1)
    for name, kind in plan.strings:
        x = given(plan.serving(name), (), "string")
        feed[input_name(name)] = ops.expand_dims(x, -1) if kind == "categorical" else x
    model.name = "served.run"  # (its own name, the config's, may be an op's: `stack.yaml`)
    raw = model(feed, training=False)  # (augmentation layers, RandomFlip..., augment unless told not to)
    if plan.mode == "regression":
        outputs = {"value": raw}
    else:
        if plan.mode == "binary":
            p = raw
            if plan.threshold == 0.0:  # a tanh head: a score in [-1, 1]
                p = ops.clip((p + 1.0) / 2.0, 0.0, 1.0)
            probabilities = ops.concatenate([1.0 - p, p], axis=-1)
        else:
            probabilities = raw
        outputs = {"probabilities": probabilities}
        if "class" in plan.outputs:
            index = ops.argmax(probabilities, axis=-1)
            outputs["class"] = keras.layers.StringLookup(vocabulary=plan.classes, invert=True, num_oov_indices=0,
                                                         name="class_name")(index)
    body = keras.Model(inner, outputs, name="served.body")
    return keras.Model(inputs, body(inputs), name="served")


def write(wrapper, plan: Plan, folder: Path, sample: dict[str, np.ndarray]) -> None:
    """The format's files in `folder`; a converter's failure is a UsageError naming the format."""
    import contextlib
    import io

    from nettrain.training import runtime

    if not plan.dates:  # (a dated model runs first on the parts its serving function makes of them)
        wrapper(sample)  # a model that has run once: what the exporters trace
    try:
        with runtime.quiet_native_stderr(), contextlib.redirect_stdout(io.StringIO()):
            if plan.format == "savedmodel" and plan.dates:
                _dated_savedmodel(wrapper, plan, folder / VERSION, sample)
            elif plan.format == "savedmodel":
                wrapper.export(str(folder / VERSION), format="tf_saved_model", verbose=False)
            elif plan.format == "keras":
                wrapper.save(str(folder / FILES["keras"]))
            elif plan.format == "onnx":
                _onnx(wrapper, plan, folder / FILES["onnx"])
            else:
                wrapper.export(str(folder / FILES["litert"]), format="litert", verbose=False)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - a converter that cannot carry a layer
        raise UsageError(f"{plan.format} export failed: {first_line(e)[:300]}; nothing was written; formats that "
                         f"carry every Keras layer: {', '.join(STRINGS)}") from None


def _dated_savedmodel(wrapper, plan: Plan, path: Path, sample: dict[str, np.ndarray]) -> None:
    """A SavedModel whose serving function takes each date column as strings and makes its parts
    (`date_parts`) before the model (`wrapper`, which takes the parts as numbers): Keras's
    `ExportArchive` with that function as the `serve` endpoint (also `serving_default`)."""
    import keras
    import tensorflow as tf

    specs = {i["name"]: tf.TensorSpec((None,), tf.string if i["dtype"] == "string" else tf.float32, name=i["name"])
             for i in plan.inputs()}  # (named: the signature's arguments are the columns' serving names)
    dated = [i for i in plan.inputs() if i.get("kind") == "date"]

    def serve(inputs):
        feed = {k: v for k, v in inputs.items() if k not in {i["name"] for i in dated}}
        for spec in dated:
            parts = date_parts(inputs[spec["name"]], spec["format"])
            feed.update({plan.serving(column): parts[part] for column, part in spec["parts"].items()})
        return wrapper(feed)

    serve({k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in sample.items()})
    archive = keras.export.ExportArchive()
    archive.track(wrapper)
    archive.add_endpoint("serve", serve, input_signature=[specs])
    archive.write_out(str(path), verbose=False)


def _onnx(wrapper, plan: Plan, path: Path) -> None:
    """tf2onnx on the frozen serving function. Its graph inputs are the model's named inputs only:
    tensors a layer holds as constants (a Normalization's mean) are folded in, not made inputs."""
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader

    specs = {i["name"]: tf.TensorSpec(i["shape"], tf.float32, name=i["name"]) for i in plan.inputs()}
    function = tf.function(lambda inputs: wrapper(inputs, training=False))
    concrete = function.get_concrete_function(specs)
    n = len(tf.nest.flatten(concrete.structured_input_signature))
    input_names = [t.name for t in concrete.inputs[:n]]
    output_names = [t.name for t in concrete.outputs]
    rename = dict(zip(input_names, [s.name for s in tf.nest.flatten(concrete.structured_input_signature)]))
    rename.update({t.name: k for k, t in concrete.structured_outputs.items()})
    with tf.device("/cpu:0"):
        frozen = tf_loader.from_function(concrete, input_names, output_names)
        tf2onnx.convert.from_graph_def(frozen, input_names=input_names, output_names=output_names,
                                       tensors_to_rename=rename, output_path=str(path),
                                       custom_op_handlers=ONNX_HANDLERS)


def _one_apart(onnx_op: str, one_first: bool):
    """A tf2onnx handler (its public `custom_op_handlers`) for a TensorFlow op that tf2onnx 1.17 does not
    convert and that is an ONNX op and 1 apart: Erfc(x) = 1 - Erf(x) (in Keras's default `gelu`, the
    exact one), Expm1(x) = Exp(x) - 1 (in `celu`). Without it the file held an op onnxruntime refuses
    ("No Op registered for Erfc"), and the export of such a model was refused."""

    def handler(ctx, node, name, args):
        from tf2onnx import utils

        dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
        node.type = onnx_op
        one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype)).output[0]
        apart = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{name}_apart"))
        ctx.replace_inputs(apart, [one, node.output[0]] if one_first else [node.output[0], one])
        return apart

    return handler


ONNX_HANDLERS = {"Erfc": (_one_apart("Erf", one_first=True), []), "Expm1": (_one_apart("Exp", one_first=False), [])}
