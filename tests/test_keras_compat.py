"""Each function of nettrain/keras_compat.py against the installed Keras.

These are the places nettrain depends on Keras internals or version-specific behaviour: when a
Keras upgrade moves one, a test here fails and its message names the Keras version.
"""

from __future__ import annotations

import ast
import math
import re
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from nettrain import keras_compat as compat  # noqa: E402
from tests.helpers import slow_fixture

ROOT = Path(__file__).resolve().parent.parent
VERSION = keras.__version__


def on_keras(what: str) -> str:
    return f"Keras {VERSION}: {what} (nettrain/keras_compat.py was checked against {', '.join(compat.CHECKED_KERAS)})"


# ------------------------------------------------------------------------------ versions

def _keras_requirement():
    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(Requirement(d) for d in deps if Requirement(d).name == "keras")


def test_the_allowed_keras_range_is_the_checked_one():
    """pyproject.toml allows only Keras versions this module (and the catalog snapshot) were checked on."""
    from packaging.version import Version

    spec = _keras_requirement().specifier
    for checked in compat.CHECKED_KERAS:
        assert spec.contains(checked), f"pyproject.toml's keras{spec} leaves out checked Keras {checked}"
    lowest = min(Version(v) for v in compat.CHECKED_KERAS)
    bound = next((s for s in spec if s.operator == ">="), None)
    assert bound is not None and Version(bound.version) >= lowest, \
        f"pyproject.toml's keras{spec} allows versions older than any checked ({', '.join(compat.CHECKED_KERAS)})"
    assert any(s.operator == "<" for s in spec), f"pyproject.toml's keras{spec} needs an upper bound"


def test_the_installed_keras_is_an_allowed_one():
    spec = _keras_requirement().specifier
    assert spec.contains(VERSION), on_keras(f"not in pyproject.toml's range keras{spec}")
    assert compat.keras_version() == VERSION


def test_a_moved_internal_names_the_keras_version():
    fake = type("Module", (), {"__name__": "keras.no_such_module"})
    with pytest.raises(compat.KerasInternalsChanged) as info:
        compat.registry_aliases(fake)
    assert f"Keras {VERSION}" in str(info.value) and "keras_compat.py" in str(info.value)


# ---------------------------------------------------------------------------- catalog

@pytest.mark.parametrize("module, aliases", [
    ("losses", {"mse", "mae", "bce", "kld", "MSE"}),
    ("metrics", {"mse", "mae", "accuracy", "auc"}),
    ("optimizers", {"adam", "sgd", "rmsprop"}),
    ("initializers", {"zero", "one", "uniform", "normal"}),
])
def test_registry_aliases_lists_the_short_names_get_resolves(module, aliases):
    mod = getattr(keras, module)
    found = set(compat.registry_aliases(mod))
    assert aliases <= found, on_keras(f"keras.{module}'s alias table lacks {sorted(aliases - found)}")
    for name in aliases:
        assert mod.get(name) is not None, on_keras(f"keras.{module}.get({name!r}) no longer resolves")


# ---------------------------------------------------------------------- preprocessing

DOCS = np.array(["the cat sat", "the dog sat down", "a cat, a dog!", "The end.", "dog dog dog"])


def _adapted(docs=DOCS, **kwargs):
    layer = keras.layers.TextVectorization(output_mode="tf_idf", **kwargs)
    layer.adapt(docs)
    return layer


def test_adapted_idf_weights_are_what_adapt_learned():
    probe = _adapted()
    vocab = probe.get_vocabulary()
    weights = compat.adapted_idf_weights(probe)
    assert weights.shape == (len(vocab) - 1,)
    # the same layer rebuilt from constructor arguments gives the same output as the adapted one
    rebuilt = keras.layers.TextVectorization(output_mode="tf_idf", vocabulary=vocab[1:], idf_weights=weights)
    sample = np.array(["the cat", "dog dog sat", "unknown words here", ""])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rebuilt(sample)),
                               keras.ops.convert_to_numpy(probe(sample)), rtol=1e-6,
                               err_msg=on_keras("idf weights read back do not rebuild the adapted layer"))
    # and they are Keras's idf: log(1 + documents / (1 + documents holding the token))
    tokens = [re.sub(r"[^\w\s]", "", d.lower()).split() for d in DOCS]
    for token, weight in zip(vocab[1:], weights):
        df = sum(token in t for t in tokens)
        assert math.isclose(weight, math.log(1 + len(DOCS) / (1 + df)), rel_tol=1e-5), on_keras(f"idf of {token!r}")


def test_adapted_idf_weights_with_max_tokens_and_unicode():
    docs = np.array(["Ärger über Öl", "öl und wasser", "ÄRGER", "wasser wasser"])
    probe = _adapted(docs, max_tokens=4)
    weights = compat.adapted_idf_weights(probe)
    assert weights.shape == (len(probe.get_vocabulary()) - 1,) and np.all(weights > 0)


def test_adapted_idf_weights_refuses_other_modes():
    layer = keras.layers.TextVectorization(output_mode="multi_hot")
    layer.adapt(DOCS)
    with pytest.raises(ValueError, match="tf_idf"):
        compat.adapted_idf_weights(layer)


# ---------------------------------------------------------------------- early stopping

def _tiny_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mean_squared_error")
    return model


def _keras_run(values, **kwargs):
    """A plain keras EarlyStopping fed `values` epoch by epoch: the state Keras itself reaches."""
    cb = keras.callbacks.EarlyStopping(monitor="val_loss", **kwargs)
    cb.set_model(_tiny_model())
    cb.on_train_begin()
    for epoch, value in enumerate(values):
        cb.on_epoch_end(epoch, {"val_loss": value})
    return cb


def _replayed(values, direction, **kwargs):
    cb = keras.callbacks.EarlyStopping(monitor="val_loss", mode=direction, **kwargs)
    cb.set_model(_tiny_model())
    cb.on_train_begin()
    compat.resume_early_stopping(cb, [{"epoch": i + 1, "val_loss": v} for i, v in enumerate(values)], direction)
    return cb


@pytest.mark.parametrize("values, kwargs", [
    ([1.0, 0.8, 0.85, 0.79, 0.9], {"mode": "min"}),
    ([1.0, 0.8, 0.85, 0.79, 0.9], {"mode": "min", "min_delta": 0.05}),
    ([1.0, 0.8, 0.85, 0.7, 0.9], {"mode": "min", "baseline": 0.75}),
    ([1.0, 0.8, 0.85, 0.7, 0.9], {"mode": "min", "start_from_epoch": 2}),
    ([0.1, 0.5, 0.4, 0.6, 0.6], {"mode": "max", "min_delta": 0.01}),
    ([0.1, 0.5, 0.4, 0.6, 0.6], {"mode": "max", "baseline": 0.55}),
])
def test_resume_early_stopping_reaches_the_state_keras_reaches(values, kwargs):
    keras_cb = _keras_run(values, patience=100, **kwargs)
    kwargs = dict(kwargs)
    direction = kwargs.pop("mode")
    ours = _replayed(values, direction, patience=100, **kwargs)
    assert (ours.best, ours.best_epoch, ours.wait) == (keras_cb.best, keras_cb.best_epoch, keras_cb.wait), \
        on_keras("EarlyStopping's improvement rule changed")


def test_keras_keeps_a_resumed_early_stopping_state_through_its_first_epoch():
    """Keras picks its comparison at the first epoch's end; that must not reset the resumed `best`
    (Keras 3.5 did)."""
    cb = _replayed([1.0, 0.5, 0.6], "min", patience=2)
    assert (cb.best, cb.best_epoch, cb.wait) == (0.5, 1, 1)
    cb.on_epoch_end(3, {"val_loss": 0.7})  # worse than the resumed best: patience used up
    assert cb.best == 0.5, on_keras("EarlyStopping reset the resumed best value at the first epoch")
    assert cb.wait == 2 and cb.model.stop_training and cb.stopped_epoch == 3, \
        on_keras("EarlyStopping did not stop after the resumed patience")


def test_nettrain_early_stopping_resolves_auto_and_resumes():
    from nettrain.training.callbacks import EarlyStopping

    cb = EarlyStopping(monitor="val_accuracy", patience=3, history=[{"epoch": 1, "val_accuracy": 0.5},
                                                                     {"epoch": 2, "val_accuracy": 0.7},
                                                                     {"epoch": 3, "val_accuracy": 0.6}])
    assert cb.mode == "max" == cb.direction
    cb.set_model(_tiny_model())
    cb.on_train_begin()
    assert (cb.best, cb.best_epoch, cb.wait) == (0.7, 1, 1)


# ------------------------------------------------------------------------------ saving

@pytest.fixture()
@slow_fixture
def trained(tmp_path):
    keras.utils.set_random_seed(0)  # another test in this process may have enabled op determinism
    x = np.random.default_rng(0).random((32, 2)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mean_squared_error", metrics=["mae"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "m.h5"
    model.save(str(path))
    return model, path, (x, y)


def test_restore_compiled_optimizer_lets_a_keras_file_keep_the_optimizer(trained, tmp_path):
    model, _, _ = trained
    compat.restore_compiled_optimizer(model)  # the .h5 save dropped it from the compile config
    assert "optimizer" in model.get_compile_config(), on_keras("the compile config did not take the optimizer back")
    model.save(str(tmp_path / "m.keras"))
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is type(model.optimizer)
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()), \
        on_keras("the .keras file lost the optimizer state")


def test_restore_compiled_optimizer_leaves_an_uncompiled_model_alone():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    compat.restore_compiled_optimizer(model)  # no error, nothing to do


def test_h5_training_state_restores_the_optimizer_exactly(trained):
    model, path, (x, y) = trained
    with h5py.File(path, "r") as f:
        assert compat.H5_MODEL_CONFIG in f.attrs and compat.H5_MODEL_WEIGHTS in f, on_keras("legacy .h5 layout moved")
        state = compat.read_h5_training_state(f)
        light = compat.read_h5_training_state(f, optimizer_values=False)
    assert state is not None and state.optimizer_config is not None, on_keras("no training_config in the .h5")
    assert light.optimizer_values is None
    assert len(state.optimizer_values) == len(model.optimizer.variables), on_keras("optimizer_weights layout moved")
    assert compat.compiled_metrics(state) == ["mae"]
    loaded = keras.models.load_model(path, compile=False)
    optimizer = compat.restore_optimizer(loaded, state)
    for saved, restored in zip(model.optimizer.variables, optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(restored),
                                      err_msg=on_keras(f"optimizer value {saved.path} not restored"))
    loaded.compile(optimizer=optimizer, loss="mean_squared_error")
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)  # the restored slots belong to the model's variables


def test_restore_optimizer_refuses_a_state_of_another_model(trained):
    _, path, _ = trained
    with h5py.File(path, "r") as f:
        state = compat.read_h5_training_state(f)
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(compat.OptimizerStateMismatch, match="does not match the model"):
        compat.restore_optimizer(other, state)


def test_an_uncompiled_h5_has_no_training_state(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.save(str(tmp_path / "u.h5"))
    with h5py.File(tmp_path / "u.h5", "r") as f:
        assert compat.read_h5_training_state(f) is None


def _h5_contents(path) -> dict:
    """Every attribute (but nettrain's) and dataset of an .h5 file, by path, as comparable values."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            for key, value in obj.attrs.items():
                out[f"{name}@{key}"] = np.asarray(value).tolist()
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.dtype.str, obj.shape, np.asarray(obj[()]).tolist())
        visit("", f)
        f.visititems(visit)
    out.pop("@nettrain", None)
    return out


def _preprocessing_model():
    """Lookups, normalization, an embedding, batch normalization (non-trainable weights), Adam."""
    keras.utils.set_random_seed(0)
    text = keras.Input((1,), dtype="string", name="city")
    nums = keras.Input((3,), name="numeric")
    ids = keras.layers.StringLookup(vocabulary=["a", "b", "c"])(text)
    emb = keras.layers.Flatten()(keras.layers.Embedding(5, 2)(ids))
    scaled = keras.layers.Normalization(mean=[0.0, 1.0, 2.0], variance=[1.0, 2.0, 3.0])(nums)
    x = keras.layers.Concatenate()([emb, scaled])
    x = keras.layers.BatchNormalization()(keras.layers.Dense(4, activation="relu")(x))
    model = keras.Model([text, nums], keras.layers.Dense(1)(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mean_squared_error", metrics=["mae"])
    import tensorflow as tf

    rng = np.random.default_rng(0)
    data = ({"city": tf.constant([["a"], ["b"], ["c"], ["z"]] * 8), "numeric": rng.random((32, 3)).astype("float32")},
            rng.random((32, 1)).astype("float32"))
    return model, data


def test_h5_rewriter_writes_the_file_keras_would_save(tmp_path):
    model, (x, y) = _preprocessing_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(str(tmp_path / "first.h5"))
    rewriter = compat.H5Rewriter.of(model, tmp_path / "first.h5")
    assert rewriter is not None, on_keras("the legacy .h5 layout no longer pairs datasets with variables")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.optimizer.learning_rate = 0.0025  # a schedule's new rate: in the training config
    assert rewriter.current(model)
    rewriter.write(model, tmp_path / "again.h5", {"nettrain": "{}"})
    model.save(str(tmp_path / "keras.h5"))
    ours, theirs = _h5_contents(tmp_path / "again.h5"), _h5_contents(tmp_path / "keras.h5")
    assert ours.keys() == theirs.keys(), on_keras("the rewritten file's layout differs from model.save's")
    for key in theirs:
        assert ours[key] == theirs[key], on_keras(f"{key} differs from what model.save writes")
    assert _h5_contents(tmp_path / "first.h5") != theirs  # the values did change between the saves
    with h5py.File(tmp_path / "again.h5", "r") as f:
        assert f.attrs["nettrain"] == "{}"
        state = compat.read_h5_training_state(f)
    assert state.optimizer_config["config"]["learning_rate"] == pytest.approx(0.0025)


def test_h5_rewriter_refuses_another_models_file_and_sees_a_changed_model(tmp_path, trained):
    _, other_path, _ = trained
    model, (x, y) = _preprocessing_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert compat.H5Rewriter.of(model, other_path) is None  # another model's layout: saved in full
    model.save(str(tmp_path / "m.h5"))
    rewriter = compat.H5Rewriter.of(model, tmp_path / "m.h5")
    assert rewriter is not None and rewriter.current(model)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mean_squared_error")  # a new optimizer
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not rewriter.current(model)


def test_a_model_saved_again_is_rewritten_and_loads_with_its_state(tmp_path):
    """store.h5.write_model: the first save Keras's, the next one the rewrite, equal to a Keras save."""
    from nettrain.store import h5

    model, (x, y) = _preprocessing_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    h5.write_model(model, tmp_path / "epoch1.h5", {"epoch": 1})
    assert h5._REWRITERS.get(model) is not None, on_keras("the first save left no rewriter: every save is in full")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    h5.write_model(model, tmp_path / "epoch2.h5", {"epoch": 2})
    model.save(str(tmp_path / "keras.h5"))
    assert _h5_contents(tmp_path / "epoch2.h5") == _h5_contents(tmp_path / "keras.h5")
    assert h5.read_meta(tmp_path / "epoch2.h5") == {"epoch": 2}
    loaded = h5.load_model(tmp_path / "epoch2.h5")
    for a, b in zip(model.weights + model.optimizer.variables, loaded.weights + loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


# -------------------------------------------------------------------------- TensorFlow

def test_fixed_prefix_cut_follows_the_wiring():
    """The front is what fixed layers compute from the inputs; the cut is where it meets the rest
    (a lookup's ids entering an Embedding, a concatenation entering a Dense), in graph order."""
    words, numbers = keras.Input((1,), name="w", dtype="string"), keras.Input((2,), name="n")
    ids = keras.layers.StringLookup(vocabulary=["a", "b"])(words)
    scaled = keras.layers.Normalization(mean=[0, 0], variance=[1, 1])(numbers)
    onehot = keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="one_hot")(words)
    both = keras.layers.Concatenate()([scaled, onehot])
    embedded = keras.layers.Flatten()(keras.layers.Embedding(3, 2)(ids))
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([embedded, keras.layers.Dense(3)(both)]))
    model = keras.Model({"w": words, "n": numbers}, out)

    def fixed(layer):
        return not layer.trainable_weights and not isinstance(layer, keras.layers.Dense)

    cut = compat.fixed_prefix_cut(model, fixed)
    assert {id(t) for t in cut} == {id(ids), id(both)}
    assert compat.fixed_prefix_cut(model, lambda layer: False) is None      # the inputs themselves
    assert compat.fixed_prefix_cut(model, lambda layer: True) is None       # all of it
    assert compat.fixed_prefix_cut(keras.Sequential([keras.layers.Dense(1)]), fixed) is None


def test_tensorflow_experimental_helpers():
    import tensorflow as tf

    compat.enable_op_determinism()  # what runtime.deterministic does for every run
    ds = tf.data.Dataset.range(10).filter(lambda v: v % 2 == 0)
    assert ds.cardinality() == tf.data.UNKNOWN_CARDINALITY
    assert int(compat.assert_cardinality(ds, 5).cardinality()) == 5


def test_tensorflow_distribution_helpers():
    """The experimental distribution APIs training/distributed.py and engine's distributed batches use,
    on a one-replica MirroredStrategy (the CPU of this process)."""
    import tensorflow as tf

    assert compat.collective_timeout(7.5).timeout_seconds == 7.5
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    out = strategy.run(lambda: tf.constant([3.0, 4.0]))
    [local] = compat.local_results(strategy, out)
    np.testing.assert_array_equal(local.numpy(), [3.0, 4.0])
    batches = compat.distribute_dataset(strategy, tf.data.Dataset.range(10).batch(4))
    got = [[int(v) for v in compat.local_results(strategy, b)[0].numpy()] for b in batches]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # one replica: every global batch, in order


# --------------------------------------------------------------------------- one place

PRIVATE_KERAS = re.compile(r"keras\.src|ALL_OBJECTS_DICT|_lookup_layer|_compile_config|_set_monitor_op"
                           r"|_is_improvement|\"optimizer_weights\"|\"weight_names\"|\"training_config\"")


def test_private_keras_is_used_in_keras_compat_only():
    offenders = []
    for path in sorted((ROOT / "nettrain").rglob("*.py")):
        if path.name == "keras_compat.py":
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if PRIVATE_KERAS.search(code) and not _in_docstring(path, lineno):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "Keras internals belong in nettrain/keras_compat.py:\n" + "\n".join(offenders)


def experimental_uses(source: str) -> list[int]:
    """Lines of `source` that use a TensorFlow (or any) `experimental` API: an attribute, an import or
    a `getattr` name with "experimental" in it (comments and docstrings are not code: not counted)."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and "experimental" in node.attr:
            lines.add(node.lineno)
        elif isinstance(node, ast.ImportFrom) and ("experimental" in (node.module or "")
                                                   or any("experimental" in a.name for a in node.names)):
            lines.add(node.lineno)
        elif isinstance(node, ast.Import) and any("experimental" in a.name for a in node.names):
            lines.add(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and re.fullmatch(r"experimental\w*", node.value):
            lines.add(node.lineno)
    return sorted(lines)


def test_the_experimental_finder_sees_each_kind_of_use():
    code = ('"""The experimental API is wrapped."""\n'
            "import tensorflow as tf  # not experimental\n"
            "a = tf.distribute.experimental.CommunicationOptions()\n"
            "b = strategy.experimental_local_results(v)\n"
            "from tensorflow.data import experimental\n"
            "import tensorflow.data.experimental as tde\n"
            "c = getattr(strategy, 'experimental_distribute_dataset')\n"
            "d = warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)\n")
    assert experimental_uses(code) == [3, 4, 5, 6, 7]


def test_tensorflow_experimental_is_used_in_keras_compat_only():
    offenders = []
    for path in sorted((ROOT / "nettrain").rglob("*.py")):
        if path.name == "keras_compat.py":
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        offenders += [f"{path.relative_to(ROOT)}:{n}: {lines[n - 1].strip()}"
                      for n in experimental_uses("\n".join(lines))]
    assert not offenders, ("TensorFlow `experimental` APIs belong in nettrain/keras_compat.py (a named function "
                           "saying why):\n" + "\n".join(offenders))
    assert experimental_uses((ROOT / "nettrain" / "keras_compat.py").read_text(encoding="utf-8"))  # they live there


def _in_docstring(path: Path, lineno: int) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            if node.lineno <= lineno <= node.end_lineno:
                return True
    return False
