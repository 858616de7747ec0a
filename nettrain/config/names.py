"""Keras names in a config: Keras 2 argument names read as Keras 3's (with a note) before validation,
then every layer type, argument, initializer, loss, optimizer, metric and generator argument checked
against the Keras catalog snapshot (`catalog.py`). No TensorFlow here: with another Keras version
the names are left to model building, which checks them against Keras itself (with `check_layer`).
"""

from __future__ import annotations

import warnings

from nettrain.config import catalog, plugins
from nettrain.config.args import show
from nettrain.config.schema import Config, LayerSpec
from nettrain.config.yamlread import quote
from nettrain.errors import ConfigError
from nettrain.words import clip, did_you_mean


def keras2_names(data: dict, file: str) -> None:
    """Arguments Keras 2 tutorials use and Keras 3 renamed or dropped, read as Keras 3 does, with a note."""
    training = data.get("training")
    opt = training.get("optimizer") if isinstance(training, dict) else None
    if isinstance(opt, dict) and "lr" in opt:
        if "learning_rate" in opt:
            raise ConfigError("give learning_rate or lr (its Keras 2 name), not both", file=file,
                              path="training.optimizer.lr")
        opt["learning_rate"] = opt.pop("lr")
        warnings.warn(f"{file}: training.optimizer.lr is Keras 2's name; read as learning_rate")
    model = data.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    for i, layer in enumerate(layers if isinstance(layers, list) else []):
        if isinstance(layer, dict) and layer.get("type") == "Embedding" and "input_length" in layer:
            layer.pop("input_length")
            warnings.warn(f"{file}: model.layers.{i}.input_length is gone in Keras 3 and was left out; the sequence "
                          "length is data.columns.<text column>.sequence_length")


def check_names(cfg: Config, raise_at) -> None:
    """Every Keras name of a validated config against the catalog; `raise_at(loc, message)` on the first
    unknown one. Nothing is checked when the catalog is another Keras version's."""
    if cfg.plugins and (cfg.source.file in (None, "<config>") or cfg.source.file.endswith((".h5", ".keras"))):
        return  # a run's saved config (retrain): its plugins are the run's copies, checked when the model loads
    found = plugins.declared(cfg.plugins, cfg.source.file_of("plugins") or "<config>") if cfg.plugins else None
    cat = catalog.load_matching()
    if cat is None:  # another Keras version: model building checks every name against Keras itself
        return
    if found is not None and found.declared:
        cat = catalog.with_plugins(cat, found)
        mine = ", ".join(d.name for d in found.declared)

        def raise_at(loc, msg, _raise=raise_at):  # an unknown name's message lists the plugins' names too
            _raise(loc, msg + (f"; the plugins declare: {mine}" if msg.startswith("Keras has no") else ""))
    layers = cat["layers"]
    specs = [(("model", "layers", i), spec) for i, spec in enumerate(cfg.model.layers)]
    if isinstance(cfg.model.output, LayerSpec):
        specs.append((("model", "output"), cfg.model.output))
    for loc, spec in specs:
        check_layer(spec.type, spec.kwargs(), loc, raise_at, layers)
    init = cfg.model.kernel_initializer
    if init is not None:
        _check_registry(init, ("model", "kernel_initializer"), cat["initializers"],
                        "initializer", "keras.initializers", raise_at, key="type")
    t = cfg.training
    if t.loss != "auto":
        _check_registry(t.loss, ("training", "loss"), cat["losses"], "loss", "keras.losses", raise_at)
    _check_registry(t.optimizer, ("training", "optimizer"), cat["optimizers"], "optimizer",
                    "keras.optimizers", raise_at)
    if t.metrics != "auto":
        for i, m in enumerate(t.metrics):
            _check_registry(m, ("training", "metrics", i), cat["metrics"], "metric", "keras.metrics", raise_at)
    src = cfg.data.source
    if src is not None and not isinstance(src, str):
        allowed = cat["generators"][src.generator]
        for key in src.kwargs():
            if key not in allowed:
                raise_at(("data", "source", key), f"{src.generator} has no argument {quote(key)}; "
                         f"{did_you_mean(key, allowed)}allowed: {', '.join(allowed)}")


def check_layer(type_name: str, kwargs: dict, loc: tuple, raise_at, layers: dict) -> None:
    if type_name not in layers:
        raise_at(loc + ("type",), f"Keras has no layer {quote(type_name)}; {did_you_mean(type_name, layers)}"
                 "any class of keras.layers is allowed (Dense, Dropout, Conv2D, LSTM, ...)")
    info = layers[type_name]
    for key in kwargs:
        if key in ("input_shape", "input_dim", "batch_input_shape") and key not in info["params"]:
            raise_at(loc + (key,), "nettrain builds the model inputs from the data; remove this argument")
        if not info["kwargs"] and key not in info["params"]:
            raise_at(loc + (key,), f"{clip(type_name)} has no argument {quote(key)}; "
                     f"{did_you_mean(key, info['params'])}allowed: {', '.join(info['params'])}")
    for key in info["required"]:
        if key not in kwargs and not (type_name == "Embedding" and key == "input_dim" and loc[-1:] == (0,)):
            raise_at(loc, f"{type_name} needs the argument '{key}'")  # a first Embedding's input_dim is filled in


def _check_registry(value, loc, registry: dict, what: str, module: str, raise_at, key: str = "name") -> None:
    by_norm = {catalog.normalize(n): n for n in registry}
    name = value.get(key) if isinstance(value, dict) else value
    where = loc + (key,) if isinstance(value, dict) else loc
    if not isinstance(name, str):
        raise_at(where, f"{what} name must be a string, got {show(name)}")
    found = by_norm.get(catalog.normalize(name))
    if found is None:
        raise_at(where, f"Keras has no {what} {quote(name)}; {did_you_mean(name, registry)}"
                 f"any name from {module} is allowed")
    if isinstance(value, dict):
        params = registry[found]
        if params is None:
            # a function: only the class form takes arguments
            cls = next((n for n in registry if registry[n] is not None
                        and catalog.normalize(n) == catalog.normalize(name)), None)
            params = registry.get(cls) if cls else None
        args = [k for k in value if k != key]
        if params is None and args:
            raise_at(where, f"{what} {quote(name)} takes no arguments")
        for arg in args:
            if params is not None and arg not in params:
                raise_at(loc + (arg,), f"{what} {quote(name)} has no argument {quote(arg)}; "
                         f"{did_you_mean(arg, params)}allowed: {', '.join(p for p in params if p != 'name')}")
