"""A snapshot of what Keras offers by name, so `nettrain validate` can check names without TF.

The snapshot (`keras_catalog.json`) is generated from the installed Keras by
`python -m nettrain.config.catalog` and a test checks that it still matches Keras. It is only a
first line of defence: when the model is built, every name and argument is checked again
against Keras itself, so a stale snapshot can never let a wrong config train.

Also the one spelling rule for Keras names (`normalize`) and the one lookup of a Keras class by
name (`keras_class`), used by model building and compiling. They take the Keras module as an
argument: nothing here imports Keras at module level.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

from nettrain import keras_compat

CATALOG_PATH = Path(__file__).with_name("keras_catalog.json")

# Layer.__init__ keywords every layer accepts (input_shape/input_dim are refused: nettrain
# builds the inputs itself).


def init_params(cls) -> tuple[list[str], bool, list[str]]:
    """Constructor keyword names along the MRO while each __init__ forwards **kwargs.

    Returns (names, accepts_any_other_keyword, required_names).
    """
    names: list[str] = []
    required: list[str] = []
    required_done = False  # only the class's own __init__ says what must be given
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            return names, True, required
        has_kwargs = False
        for p in list(sig.parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                has_kwargs = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in names:
                names.append(p.name)
                if p.default is p.empty and not required_done:
                    required.append(p.name)
        required_done = True
        if not has_kwargs or klass.__name__ == "Layer":
            return names, False, required
    return names, True, required


def keras_classes(module, base) -> dict[str, Any]:
    """The classes of a Keras module (keras.layers, keras.losses, ...) derived from `base`, by attribute name."""
    out = {}
    for attr in dir(module):
        obj = getattr(module, attr)
        if inspect.isclass(obj) and issubclass(obj, base) and obj is not base:
            out[attr] = obj
    return out


def keras_class(module, name: Any, base: type | None = None, *, exact: bool = False):
    """The class of a Keras module named `name`, or None.

    By default spelling-insensitive (`normalize`: `l1_l2` finds L1L2, `rmsprop` RMSprop); `exact`
    for layer types, which the catalog checks by their exact class name. `base`, when given, is
    the class it must derive from.
    """
    if not isinstance(name, str):
        return None
    if exact:
        found = getattr(module, name, None)
        candidates = [found] if found is not None else []
    else:
        norm = normalize(name)
        candidates = [getattr(module, attr) for attr in dir(module) if normalize(attr) == norm]
    for obj in candidates:
        if inspect.isclass(obj) and (base is None or issubclass(obj, base)):
            return obj
    obj = registered(name)  # a plugin's class (config/plugins.py), by its plain or registered name
    if inspect.isclass(obj) and (base is None or issubclass(obj, base)):
        return obj
    return None


def registered(name: Any):
    """The object a plugin registered with `keras.saving.register_keras_serializable` under
    `package>name`, found by `name` or by the whole key; None when there is none.

    The rule for names: a config writes a plugin's class or function by its plain name (`MyDense`)
    or by Keras's registered key (`my_package>MyDense`). Keras is already imported when this is
    called (the plugin imported it to register its objects)."""
    if not isinstance(name, str) or not name:
        return None
    import keras

    objects = keras.saving.get_custom_objects()
    if name in objects:
        return objects[name]
    found = [obj for key, obj in objects.items() if key.partition(">")[2] == name]
    return found[-1] if found else None


def generate() -> dict[str, Any]:
    import keras
    import sklearn.datasets

    layers = {}
    for name, cls in keras_classes(keras.layers, keras.layers.Layer).items():
        params, open_kwargs, required = init_params(cls)
        layers[name] = {"params": params, "kwargs": open_kwargs, "required": required}

    def registry(module, base, lookup):
        # Classes under their class name (with constructor arguments), functions and aliases
        # that `get` resolves under their own name.
        named = {}
        for name, cls in keras_classes(module, base).items():
            named[name] = init_params(cls)[0]
        # `get` also resolves short aliases ("mse", "bce", "kld") that only Keras's own table lists.
        for attr in dir(module) + keras_compat.registry_aliases(module):
            if attr.startswith("_") or attr in named or attr in ("get", "serialize", "deserialize"):
                continue
            try:
                lookup(attr)
            except Exception:
                continue
            named[attr] = None
        return named

    catalog = {
        "keras_version": keras.__version__,
        "layers": layers,
        "losses": registry(keras.losses, keras.losses.Loss, keras.losses.get),
        "metrics": registry(keras.metrics, keras.metrics.Metric, keras.metrics.get),
        "optimizers": registry(keras.optimizers, keras.optimizers.Optimizer, keras.optimizers.get),
        "initializers": registry(keras.initializers, keras.initializers.Initializer, keras.initializers.get),
        "generators": {
            g: [p for p in inspect.signature(getattr(sklearn.datasets, g)).parameters]
            for g in ("make_regression", "make_classification", "make_blobs")
        },
    }
    # Strings compile() understands besides registry names.
    for alias in ("acc", "accuracy", "crossentropy", "ce", "mse", "mae", "mape", "msle"):
        catalog["metrics"].setdefault(alias, None)
    return catalog


# Where each kind of plugin object goes in the catalog (kinds: config/plugins.py).
PLUGIN_SECTIONS = {"layer": "layers", "loss": "losses", "metric": "metrics", "initializer": "initializers",
                   "optimizer": "optimizers"}
PLUGIN_OPEN_ARGS = ("name", "reduction", "dtype")  # what a Loss/Metric subclass's **kwargs pass on


def with_plugins(cat: dict[str, Any], plugins) -> dict[str, Any]:
    """The catalog with the names a config's plugins declare (`config.plugins.Plugins`), under their
    plain names and their registered `package>name` keys: a copy, the snapshot is left as it is."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in cat.items()}
    for d in plugins.declared:
        kinds = ("loss", "metric") if d.kind == "function" else (d.kind,)
        for kind in kinds:
            section = PLUGIN_SECTIONS.get(kind)
            if section is None:
                continue
            if section == "layers":
                entry: Any = {"params": list(d.params), "kwargs": d.open_kwargs, "required": list(d.required)}
            elif d.kind == "function":
                entry = None  # a function takes no arguments in a config
            else:
                entry = list(d.params) + [p for p in PLUGIN_OPEN_ARGS if d.open_kwargs and p not in d.params]
            for name in (d.name, d.registered):
                out[section][name] = entry
    return out


def normalize(name: str) -> str:
    """Spelling-insensitive key: `RMSprop`, `rmsprop` and `rm_sprop` are one optimizer."""
    return name.replace("_", "").lower()


@functools.lru_cache(maxsize=1)
def load() -> dict[str, Any]:
    return json.loads(CATALOG_PATH.read_text())


@functools.lru_cache(maxsize=1)
def load_matching() -> dict[str, Any] | None:
    """The snapshot when it was taken from the installed Keras version, else None (then names are
    checked only when the model is built, against Keras itself)."""
    installed = keras_compat.keras_version()
    if installed is None:
        return None
    snapshot = load()
    return snapshot if snapshot["keras_version"] == installed else None


def main() -> None:
    CATALOG_PATH.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {CATALOG_PATH}")


if __name__ == "__main__":
    main()
