"""Every place nettrain leans on a private or version-specific Keras (or TensorFlow) API, in one module.

Each function says why it is needed, the public API that would replace it (if any) and the Keras
versions it was checked against. `tests/test_keras_compat.py` exercises every function against
the installed Keras; when an internal moves, the test (and the function) fails with a message
that names the Keras version and this module. Nothing outside this module may reach into
`keras.src`, an underscore attribute of a Keras object or the legacy `.h5` layout, nor call a
TensorFlow `experimental` API (`tf.*.experimental.*`, `experimental_*` methods and options): those
are the functions at the end of this module, each saying why no stable API does the job.

Checked against Keras 3.15.1 (the version pyproject.toml allows and the test suite runs on). The
notes on 3.5.0 and 3.10.0 come from throwaway environments used only to learn what breaks: with
3.10.0 every function here passed its test; with 3.5.0 `registry_aliases` and
`resume_early_stopping` fail (and so do 9 of nettrain's training tests).

No TensorFlow or Keras import at module level: config/ (the catalog generator) and store/ (the
`.h5` layout, read without TensorFlow) import this module too. Functions that need Keras import
it when called.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any

# The Keras versions this module was checked against (tests/test_keras_compat.py runs on the installed one).
CHECKED_KERAS = ("3.15.1",)


class KerasInternalsChanged(RuntimeError):
    """A Keras internal nettrain relies on is missing or changed shape in the installed version."""

    def __init__(self, what: str, detail: str):
        super().__init__(f"Keras {keras_version() or '(not installed)'}: {what} {detail}; nettrain/keras_compat.py "
                         f"was checked against Keras {', '.join(CHECKED_KERAS)} and needs updating for this version")


def keras_version() -> str | None:
    """The installed Keras version, from the package metadata (importing Keras is not needed), or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("keras")
    except PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- name catalog

def registry_aliases(module) -> list[str]:
    """The short names `module.get` resolves besides the module's public attributes ("mse", "bce", "kld").

    Why: `nettrain validate` checks loss, metric, optimizer and initializer names against a
    snapshot (config/catalog.py). Keras keeps its aliases only in the private table
    `keras.src.<kind>.ALL_OBJECTS_DICT`; without it the snapshot would refuse `loss: mse`.
    Public replacement: none lists them (`keras.losses.get(name)` resolves one name at a time).
    Checked: Keras 3.15.1 and 3.10.0. In 3.5.0 `keras.losses` is `keras.api.losses`, and the
    table is not found. Used only when the snapshot is generated (`make catalog`), so a moved
    table fails loudly there instead of leaving the aliases out of the snapshot.
    """
    src_name = module.__name__.replace("keras.", "keras.src.", 1)
    try:
        src = importlib.import_module(src_name)
    except ImportError as e:
        raise KerasInternalsChanged(f"module {src_name}", f"cannot be imported ({e})") from None
    table = getattr(src, "ALL_OBJECTS_DICT", None)
    if not isinstance(table, dict):
        raise KerasInternalsChanged(f"{src_name}.ALL_OBJECTS_DICT", "is missing or not a dict")
    return [name for name in table if isinstance(name, str)]


# --------------------------------------------------------------------------- preprocessing

def adapted_idf_weights(layer) -> Any:
    """The inverse document frequencies an adapted `TextVectorization(output_mode="tf_idf")` learned,
    one per vocabulary token after the OOV token (what its `idf_weights` argument takes).

    Why: the model is built with the statistics as constructor arguments, so a saved `.h5` reloads
    with plain `keras.models.load_model`; `adapt()` computes the weights, but no public method
    returns them (`get_config()["idf_weights"]` is the constructor argument: None after `adapt`;
    the weights live in the private `layer._lookup_layer.idf_weights`).
    Public path used here: the layer is called on one document holding every vocabulary token
    once; tf-idf output is count x idf, so each token's slot holds its weight. This relies on the
    default standardize/split (nettrain sets no other): a token read back gives the same token.
    Checked: Keras 3.15.1 (and 3.10.0, 3.5.0): the test rebuilds the layer from the weights and
    compares it with the adapted one, and with log(1 + documents / (1 + document frequency)).
    """
    import numpy as np

    import keras

    config = layer.get_config()
    if config.get("output_mode") != "tf_idf":
        raise ValueError(f"adapted_idf_weights needs a tf_idf TextVectorization, got output_mode "
                         f"{config.get('output_mode')!r}")
    if config.get("standardize") != "lower_and_strip_punctuation" or config.get("split") != "whitespace" \
            or config.get("ngrams") not in (None, 1):
        raise ValueError("adapted_idf_weights reads the weights back through the default standardize and split only")
    vocab = layer.get_vocabulary()
    tokens = vocab[1:]  # [OOV, tokens...]: tf_idf has no mask token
    if not tokens:
        return np.zeros((0,), dtype="float32")
    row = keras.ops.convert_to_numpy(layer(np.array([" ".join(tokens)])))[0]
    weights = np.asarray(row[1:len(vocab)], dtype="float32")
    if weights.shape != (len(tokens),) or not np.all(weights > 0):
        raise KerasInternalsChanged("TextVectorization tf_idf output",
                                    "no longer gives each token of a one-document vocabulary its idf weight")
    return weights


# ------------------------------------------------------------------------- early stopping

def resume_early_stopping(callback, history: list[dict], direction: str) -> None:
    """Set a `keras.callbacks.EarlyStopping`'s state (`best`, `best_epoch`, `wait`) from the epochs
    a resumed or retrained run already has, as if Keras had seen them. Call it at the end of
    `on_train_begin` (after Keras resets the state).

    Public attributes only (`monitor`, `start_from_epoch`, `baseline`, `min_delta`, `best`,
    `best_epoch`, `wait`); the comparison is Keras's own rule, written here: better by more than
    `min_delta` in `direction` ("min" or "max"; the caller passes the same mode to Keras, so
    Keras never guesses another one).
    Version-specific behaviour relied on: Keras chooses its comparison lazily at the first
    epoch's end (`_set_monitor_op`); in Keras 3.10.0 and 3.15.1 that leaves `best` alone, in Keras
    3.5.0 it set `best` to +-inf there (there was no `best` before it), which would drop the
    resumed value. The private `_set_monitor_op`/`_is_improvement` used before are no longer called.
    Checked: Keras 3.15.1 (and 3.10.0); the test also checks the rule against Keras's own run.
    """
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
    missing = [a for a in ("monitor", "start_from_epoch", "baseline", "min_delta", "best", "best_epoch", "wait")
               if not hasattr(callback, a)]
    if missing:
        raise KerasInternalsChanged("EarlyStopping", f"has no {', '.join(missing)} after on_train_begin")
    delta = abs(float(callback.min_delta))

    def improves(value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        return value + delta < reference if direction == "min" else value - delta > reference

    for row in history:
        current, epoch = row.get(callback.monitor), int(row["epoch"]) - 1
        if current is None or epoch < callback.start_from_epoch:
            continue
        callback.wait += 1
        if improves(current, callback.best):
            callback.best, callback.best_epoch = current, epoch
            if callback.baseline is None or improves(current, callback.baseline):
                callback.wait = 0


# ------------------------------------------------------------------- saving: native .keras

def restore_compiled_optimizer(model) -> None:
    """Put the live optimizer back into the model's compile config after a legacy `.h5` save.

    Why: the legacy `.h5` saver (`keras.src.legacy.saving.saving_utils.model_metadata`) pops
    "optimizer" from the model's live private `_compile_config.config`, so a native `.keras` file
    saved afterwards loads with a default optimizer and no state.
    Public replacement: none (`get_compile_config()` returns a serialized copy; `compile()` again
    would reset the metrics and cannot run inside `fit`). A Keras fix would make this a no-op.
    Checked: the same code in Keras 3.5.0, 3.10.0 and 3.15.1.
    """
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        return
    compile_config = getattr(model, "_compile_config", None)
    config = getattr(compile_config, "config", None)
    if not isinstance(config, dict):
        raise KerasInternalsChanged("Model._compile_config.config", "is missing or not a dict")
    config["optimizer"] = model.optimizer


# --------------------------------------------------------------------- saving: legacy .h5

# The legacy `.h5` layout (keras.src.legacy.saving.legacy_h5_format), read by nettrain without Keras.
H5_MODEL_CONFIG = "model_config"        # root attribute: the model's JSON config
H5_MODEL_WEIGHTS = "model_weights"      # group of layer weights
H5_TRAINING_CONFIG = "training_config"  # root attribute: compile arguments, optimizer config inside
H5_OPTIMIZER_WEIGHTS = "optimizer_weights"  # group: one dataset per optimizer variable ...
H5_WEIGHT_NAMES = "weight_names"        # ... in the order of this attribute (= optimizer.variables)


@dataclass
class H5TrainingState:
    """What a legacy `.h5` file says about training: compile arguments and the optimizer's values."""

    optimizer_config: dict | None      # {"class_name": ..., "config": ...}
    optimizer_values: list | None      # numpy arrays in `optimizer.variables` order; None when not saved
    metrics: list | None               # as compile() took them (strings, serialized metrics, per-output lists)
    steps_per_execution: int
    loss_weights: Any = None           # as compile() took them (a number for nettrain's one output), or None


def read_h5_training_state(h5file, *, optimizer_values: bool = True) -> H5TrainingState | None:
    """The training state of an open `h5py.File` in the legacy layout, None when the model was saved
    uncompiled. `optimizer_values` False leaves the optimizer's values unread (`optimizer_values` None).

    Why: Keras's legacy loader (`keras.models.load_model` on an `.h5`) means to restore the saved
    optimizer values but does not: in Keras 3.5.0, 3.10.0 and 3.15.1 an Adam saved with 10
    variables loads with 2 (the moments are lost) and `fit` then fails with "Unknown variable"
    (or "numpy() is only available when eager execution is enabled"). So nettrain reads the
    values and sets them itself (`restore_optimizer`).
    Public replacement: the native `.keras` format restores the optimizer, but run files are `.h5`.
    Checked: the layout written by Keras 3.15.1 (and 3.10.0, 3.5.0; it is Keras 2's HDF5 layout).
    Raises ValueError (or KeyError/TypeError) for a damaged attribute.
    """
    raw = h5file.attrs.get(H5_TRAINING_CONFIG)
    if raw is None:
        return None
    training = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    if not isinstance(training, dict):
        return None
    optimizer = training.get("optimizer_config")
    optimizer = optimizer if isinstance(optimizer, dict) else None
    values = None
    if optimizer_values and optimizer is not None and H5_OPTIMIZER_WEIGHTS in h5file:
        group = h5file[H5_OPTIMIZER_WEIGHTS]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs[H5_WEIGHT_NAMES]]
        values = [group[n][()] for n in names]
    metrics = training.get("metrics")
    return H5TrainingState(optimizer_config=optimizer,
                           optimizer_values=values,
                           metrics=metrics if isinstance(metrics, list) and metrics else None,
                           steps_per_execution=training.get("steps_per_execution", 1),
                           loss_weights=training.get("loss_weights"))


class OptimizerStateMismatch(ValueError):
    """The saved optimizer values do not fit the model's variables."""


def restore_optimizer(model, state: H5TrainingState):
    """A new optimizer from the saved config, built on the model's trainable variables, holding the saved values.

    Public API (`keras.optimizers.deserialize`, `Optimizer.build`, `Optimizer.variables`,
    `Variable.assign`); version-specific assumption: the saved values are in the order of
    `optimizer.variables` after `build(model.trainable_variables)` (the legacy saver writes them
    in that order). Checked: Keras 3.15.1 (and 3.10.0, 3.5.0). Raises OptimizerStateMismatch when
    count or shapes differ.
    """
    import keras

    optimizer = keras.optimizers.deserialize(state.optimizer_config)
    optimizer.build(model.trainable_variables)
    values = state.optimizer_values
    if values is None:
        return optimizer
    if len(optimizer.variables) != len(values):
        raise OptimizerStateMismatch(f"the optimizer state does not match the model ({len(values)} saved values, "
                                     f"{len(optimizer.variables)} expected)")
    for var, value in zip(optimizer.variables, values):
        if tuple(var.shape) != tuple(value.shape):
            raise OptimizerStateMismatch(f"optimizer value {var.path} has shape {value.shape}, expected {var.shape}")
        var.assign(value)
    return optimizer


def compiled_metrics(state: H5TrainingState) -> list | None:
    """The metrics to compile with, as fit logged them (the legacy loader turns "mae" into
    "mean_absolute_error"): serialized metrics deserialized, legacy per-output lists flattened.
    Checked: the training config written by Keras 3.15.1 (and 3.10.0, 3.5.0)."""
    import keras

    if not state.metrics:
        return None
    out: list = []
    for m in state.metrics:
        if isinstance(m, dict):
            out.append(keras.metrics.deserialize(m))
        elif isinstance(m, list):  # legacy nested per-output lists
            out.extend(m)
        else:
            out.append(m)
    return out


def build_training_state(model, batch) -> None:
    """Create what a first training step would create (the compiled metrics' and loss's state, the
    optimizer's slots) from one `batch` ((x, y) or (x, y, sample_weight) tensors), as `fit` does
    before its first step, through `Model._symbolic_build` (private; Keras 3.15). A `tf.function`
    whose first trace creates variables is traced a second time; with the state built first, nettrain's
    training loop is traced once (about a second less per model on 2 cores)."""
    model._symbolic_build(data_batch=batch)


def fixed_prefix_cut(model, fixed) -> list | None:
    """The tensors where a functional model's fixed front ends: the part computed from the inputs
    by nodes whose layer `fixed(layer)` accepts (and whose inputs are all computed so), cut where its
    tensors enter a node outside it. None when the model is not functional, when everything is fixed
    (an output would be in the front), or when an input enters a node outside the front as it is
    (nothing fixed, or a text column's input): `keras.Model` built on a cut that holds one of the
    model's own inputs leaves the model's `get_config` failing ("could not find node key"), so
    its checkpoints could not be saved.

    Why private: the nodes of a functional model (`Function._nodes_by_depth`, each `Node`'s
    `operation`, `input_tensors` and `outputs`, walked as `Function._run_through_graph` walks them:
    deepest first) are not public; `model.layers` gives the layers without how they are wired.
    Public replacement: none (`keras.Model(cut, model.outputs)`, which the caller builds from the
    result, is public). Checked: Keras 3.15.1."""
    by_depth = getattr(model, "_nodes_by_depth", None)
    inputs = list(getattr(model, "inputs", None) or [])
    if not by_depth or not inputs:
        return None
    given = {id(t) for t in inputs}
    front = set(given)
    outside = []
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if node.is_input:
                continue
            if fixed(node.operation) and all(id(t) in front for t in node.input_tensors):
                front.update(id(t) for t in node.outputs)
            else:
                outside.append(node)
    if any(id(t) in front for t in model.outputs):
        return None
    cut, seen = [], set()
    for node in outside:
        for t in node.input_tensors:
            if id(t) in front and id(t) not in seen:
                seen.add(id(t))
                cut.append(t)
    if any(id(t) in given for t in cut):
        return None  # an input past the front as it is: a model built on it breaks the model's get_config (3.15.1)
    return cut


class H5Rewriter:
    """The legacy `.h5` of one model written again, from the bytes of a file Keras's `model.save`
    wrote for it, with what changes from epoch to epoch written over them: the values of every weight
    and optimizer variable (at their datasets' offsets in the file) and the training config (the
    optimizer's config holds the current learning rate). The file equals what `model.save` would
    write then (tests/test_keras_compat.py compares the two, attribute for attribute and value for
    value), in a few milliseconds instead of ~30-140 ms a save (most of it `get_config` of the whole
    model and creating every dataset again).

    Why private: the pairing of datasets with variables is the legacy saver's
    (`keras.src.legacy.saving.legacy_h5_format`: `model_weights/<layer.name>/<variable.path>` for the
    layers' `_legacy_weights` in `model.layers` order, then `top_level_model_weights`,
    `optimizer_weights/<variable.path>` for `optimizer.variables`), and the training config is
    written in its option scope with its JSON encoder. `of` checks the file against that layout (the
    `weight_names` attributes, every shape and dtype, each dataset stored contiguously at a known
    offset: HDF5's default) and gives None where it differs: then the caller saves in full every
    time. Public replacement: none (`save_weights` writes no optimizer state or config). Checked:
    Keras 3.15.1.
    """

    def __init__(self, template: bytes, places: list[tuple[int, Any]], variables: list, training: dict | None):
        self.template, self.places, self.variables = template, places, variables  # not the model: a cache key
        self.training = training  # the file's training config (JSON), its optimizer's config replaced at each write
        self._read = None  # one graph call reading every variable

    @classmethod
    def of(cls, model, path) -> "H5Rewriter | None":
        """A rewriter from `path`, a file `model.save` has just written for `model`; None where its
        layout is not the one this rewrites."""
        import h5py

        try:
            groups = cls._groups(model)
            with open(path, "rb") as f:
                template = f.read()
            with h5py.File(path, "r") as f:
                places = cls._places(f, groups)
                raw = f.attrs.get(H5_TRAINING_CONFIG)
            training = None if raw is None else json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        except Exception:  # a layout or a model this does not know: the caller saves in full
            return None
        if places is None or (raw is not None and not (isinstance(training, dict) and "optimizer_config" in training)):
            return None
        return cls(template, places, [w for _, weights in groups for w in weights], training)

    @staticmethod
    def _groups(model) -> list[tuple[str, list]]:
        """(group, its variables in the saver's order) for every group the legacy saver writes."""
        from keras.src.legacy.saving.legacy_h5_format import _legacy_weights

        groups = [(f"{H5_MODEL_WEIGHTS}/{layer.name}", _legacy_weights(layer)) for layer in model.layers]
        top = [v for v in model._trainable_variables + model._non_trainable_variables if v in model.weights]
        groups.append((f"{H5_MODEL_WEIGHTS}/top_level_model_weights", top))
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and optimizer.variables:
            groups.append((H5_OPTIMIZER_WEIGHTS, list(optimizer.variables)))
        return groups

    @staticmethod
    def _places(f, groups: list[tuple[str, list]]) -> list[tuple[int, Any]] | None:
        """(offset in the file, dtype) of each variable's dataset (`groups`' order); None where the file
        is not laid out so."""
        if H5_OPTIMIZER_WEIGHTS in f and all(group != H5_OPTIMIZER_WEIGHTS for group, _ in groups):
            return None
        places = []
        for group, weights in groups:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f[group].attrs.get(H5_WEIGHT_NAMES, [])]
            if names != [str(w.path) for w in weights]:
                return None
            for var in weights:
                ds = f.get(f"{group}/{var.path}")
                if ds is None or tuple(ds.shape) != tuple(var.shape) or ds.dtype.name != str(var.dtype):
                    return None
                offset = ds.id.get_offset()
                if offset is None or ds.id.get_storage_size() != ds.dtype.itemsize * int(ds.size):
                    return None  # not contiguous (chunked, compact) or not written
                places.append((int(offset), ds.dtype))
        return places

    def current(self, model) -> bool:
        """Whether `model` has the variables the template was written with (an optimizer built
        again, a layer added, another model: no)."""
        variables = [w for _, weights in self._groups(model) for w in weights]
        return len(variables) == len(self.variables) and all(a is b for a, b in zip(variables, self.variables))

    def _values(self) -> list:
        """Every variable's value as numpy, read in one graph call (~40 eager reads cost ~3 ms)."""
        if self._read is None:
            import tensorflow as tf

            variables = self.variables
            self._read = tf.function(lambda: [tf.identity(v.value) for v in variables], autograph=False)
        return [t.numpy() for t in self._read()]

    def write(self, model, path, attrs: dict[str, Any] | None = None) -> None:
        """`model`'s file (`current(model)`) at `path`, written non-atomically, with `attrs` set on its root."""
        import h5py
        import numpy as np
        from keras.src.legacy.saving import json_utils, saving_options
        from keras.src.saving import object_registration

        data = bytearray(self.template)
        for (offset, dtype), value in zip(self.places, self._values()):
            raw = np.ascontiguousarray(value, dtype=dtype).tobytes()
            data[offset:offset + len(raw)] = raw
        with open(path, "wb") as f:
            f.write(data)
        with h5py.File(path, "r+") as f:
            if self.training is not None:
                optimizer = model.optimizer
                with saving_options.keras_option_scope(use_legacy_config=True):
                    self.training["optimizer_config"] = {
                        "class_name": object_registration.get_registered_name(optimizer.__class__),
                        "config": optimizer.get_config()}
                    f.attrs[H5_TRAINING_CONFIG] = json.dumps(self.training, default=json_utils.get_json_type).encode("utf8")
            for key, value in (attrs or {}).items():
                f.attrs[key] = value


# ----------------------------------------------------------------------------- TensorFlow

def enable_op_determinism() -> None:
    """Deterministic TensorFlow ops (`runtime.deterministic`).

    TensorFlow keeps this in `tf.config.experimental` (since 2.9, still there in 2.21); Keras has
    no public switch (`keras.utils.set_random_seed` seeds, it does not make kernels deterministic).
    """
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def assert_cardinality(dataset, steps: int):
    """`dataset` declaring `steps` elements, so Keras knows an epoch's length from a generated dataset.

    TensorFlow keeps this in `tf.data.experimental` (still there in 2.21); no `tf.data.Dataset`
    method does it.
    """
    import tensorflow as tf

    return dataset.apply(tf.data.experimental.assert_cardinality(steps))


# ------------------------------------------------------------------ TensorFlow: distribution

def collective_timeout(seconds: float):
    """The communication options of a `MultiWorkerMirroredStrategy` whose collectives give up after
    `seconds` (`runtime.worker_timeout`: a hung peer ends the run instead of blocking it forever).

    TensorFlow keeps `CommunicationOptions` in `tf.distribute.experimental` (since 2.4, still there
    in 2.21); it is the only way to pass a timeout to the strategy's collectives.
    """
    import tensorflow as tf

    return tf.distribute.experimental.CommunicationOptions(timeout_seconds=seconds)


def local_results(strategy, value) -> tuple:
    """The values of this process's replicas in a result of `strategy.run` (a per-replica or mirrored
    value; a plain tensor gives a tuple of itself), in replica order.

    TensorFlow names the method `experimental_local_results` (since 2.1, still in 2.21): no stable
    method unwraps a distributed value; `strategy.reduce` would add a collective across the workers.
    """
    return strategy.experimental_local_results(value)


def distribute_dataset(strategy, dataset):
    """`dataset` (of global batches) split over the strategy's replicas by data sharding: every
    worker reads the whole dataset and each replica keeps its share of every global batch (a
    multi-worker run's workers read the same file, so they see the same batches).

    TensorFlow keeps the sharding policy in `tf.data.experimental.AutoShardPolicy` and the options
    in `Options.experimental_distribute`, and the strategy's method is
    `experimental_distribute_dataset` (all since 2.2 at least, still in 2.21); the stable
    `distribute_datasets_from_function` would leave the splitting of each batch to nettrain.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))
