"""Loss, optimizer, metrics and label encoding, all looked up by name through Keras."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

import keras

from nettrain.config import catalog
from nettrain.config.coherence import HINGE_LOSSES, ONE_HOT_LOSSES, SPARSE_LOSSES, auto_metrics
from nettrain.config.schema import Config
from nettrain.data.stats import TrainStats
from nettrain.data.types import FeatureSchema
from nettrain.words import first_line

# The layer that puts a standardized regression output back into the target's units
# (preprocessing.target: standard); the loss weight is read from it (`target_scale`).
TARGET_LAYER = "target_scale"
ENSEMBLE_LAYER = "ensemble"  # the Average of an ensemble's member models (`nettrain.model.ensemble`)
# Regression losses by how they grow with the target's scale (names normalized: lower case, no '_').
SQUARED_LOSSES = {"meansquarederror", "mse"}
ABSOLUTE_LOSSES = {"meanabsoluteerror", "mae"}
SMOOTH_LOSSES = {"huber": 1.0, "huberloss": 1.0, "logcosh": 1.0, "logcoshloss": 1.0}  # -> default delta


def loss_name(loss: str | dict) -> str:
    return loss["name"] if isinstance(loss, dict) else loss


def label_mode(cfg: Config, schema: FeatureSchema) -> str:
    """How targets are fed: `regression`, `binary` (0/1 float), `sparse` or `one_hot`."""
    if schema.task == "regression":
        return "regression"
    loss = catalog.normalize(loss_name(cfg.training.loss))
    labels = cfg.preprocessing.labels
    if labels == "one_hot" and loss in SPARSE_LOSSES:
        raise cfg.error("preprocessing.labels", "one_hot labels do not fit sparse_categorical_crossentropy "
                        "(it takes integer labels); use labels: sparse or auto, or loss categorical_crossentropy")
    if labels == "sparse" and loss in ONE_HOT_LOSSES:
        raise cfg.error("preprocessing.labels", f"{loss_name(cfg.training.loss)} takes one-hot labels; "
                        "use labels: one_hot or auto, or loss sparse_categorical_crossentropy")
    if loss in ONE_HOT_LOSSES or labels == "one_hot":
        return "one_hot"
    if schema.task == "binary" and loss not in SPARSE_LOSSES and labels != "sparse":
        return "binary"
    return "sparse"


def output_activation_kind(cfg: Config, schema: FeatureSchema) -> str:
    """`linear`, `sigmoid`, `tanh` (hinge losses) or `softmax`: what the auto head ends in."""
    mode = label_mode(cfg, schema)
    if mode == "regression":
        return "linear"
    if mode == "binary":
        return "tanh" if catalog.normalize(loss_name(cfg.training.loss)) in HINGE_LOSSES else "sigmoid"
    return "softmax"


def encode_targets(y: np.ndarray | None, mode: str, n_classes: int | None) -> np.ndarray | None:
    if y is None:
        return None
    if mode == "regression":
        y = np.asarray(y, dtype=np.float32)
        return y.reshape(-1, 1) if y.ndim == 1 else y
    if mode == "binary":
        return np.asarray(y, dtype=np.float32).reshape(-1, 1)
    if mode == "one_hot":
        return np.eye(n_classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]
    return np.asarray(y, dtype=np.int32)


def _instantiate(cfg: Config, path: str, value: str | dict, module, base: type, what: str):
    """A Keras object from a name or `{name: ..., **args}`, errors pointing at `path`."""
    name = loss_name(value)
    args = {k: v for k, v in value.items() if k != "name"} if isinstance(value, dict) else {}
    cls = catalog.keras_class(module, name, base)
    if cls is None and not args:
        try:
            obj = module.get(name)
        except (ValueError, TypeError):
            obj = None
        if obj is None and not inspect.isclass(catalog.registered(name)):
            obj = catalog.registered(name)  # a plugin's function (config/plugins.py)
        if obj is not None:
            return obj
    if cls is None:
        raise cfg.error(path, f"Keras has no {what} class '{name}' (any name from keras.{module.__name__.split('.')[-1]})")
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise cfg.error(path, f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())}): "
                        f"{first_line(e)}") from None


def make_loss(cfg: Config, schema: FeatureSchema):
    loss = cfg.training.loss
    if loss == "auto":
        mode = label_mode(cfg, schema)
        return {"regression": "mean_squared_error", "binary": "binary_crossentropy",
                "one_hot": "categorical_crossentropy", "sparse": "sparse_categorical_crossentropy"}[mode]
    if isinstance(loss, str):
        try:
            fn = keras.losses.get(loss)
        except (ValueError, TypeError):
            fn = None
        if fn is not None and not inspect.isclass(fn) and hasattr(fn, "__name__"):
            return fn.__name__  # canonical name ("mse" -> "mean_squared_error") survives .h5 reload
    return _instantiate(cfg, "training.loss", loss, keras.losses, keras.losses.Loss, "loss")


def make_optimizer(cfg: Config, learning_rate: Any = None):
    opt = cfg.training.optimizer
    if learning_rate is not None:
        opt = dict(opt) if isinstance(opt, dict) else {"name": opt}
        opt["learning_rate"] = learning_rate
    return _instantiate(cfg, "training.optimizer", opt, keras.optimizers, keras.optimizers.Optimizer, "optimizer")


def initial_learning_rate(cfg: Config) -> float:
    """The configured learning rate, or the optimizer's Keras default."""
    opt = cfg.training.optimizer
    if isinstance(opt, dict) and "learning_rate" in opt:
        return float(opt["learning_rate"])
    return float(keras.ops.convert_to_numpy(make_optimizer(cfg).learning_rate))


def make_metrics(cfg: Config, schema: FeatureSchema) -> list:
    metrics = cfg.training.metrics
    tanh = output_activation_kind(cfg, schema) == "tanh"
    if metrics == "auto":
        # AUC assumes scores in [0, 1]; a tanh (hinge) head gives [-1, 1]
        return ["accuracy"] if tanh else auto_metrics(schema.task, label_mode(cfg, schema))
    out = []
    for i, m in enumerate(metrics):
        if isinstance(m, str) and tanh and m in ("accuracy", "acc", "binary_accuracy"):
            # a tanh head separates the classes at 0, not at Keras's default 0.5
            out.append(keras.metrics.BinaryAccuracy(name=m, threshold=0.0))
        elif isinstance(m, str) and catalog.registered(m) is not None:  # a plugin's metric
            out.append(_instantiate(cfg, f"training.metrics.{i}", m, keras.metrics, keras.metrics.Metric,
                                    "metric"))
        elif isinstance(m, str):
            out.append(m)
        else:
            out.append(_instantiate(cfg, f"training.metrics.{i}", m, keras.metrics, keras.metrics.Metric, "metric"))
    return out


def metric_names(cfg: Config, schema: FeatureSchema) -> list[str]:
    """The names Keras logs for the configured metrics (what metrics.json is keyed by)."""
    names = []
    for m in make_metrics(cfg, schema):
        names.append(m if isinstance(m, str) else getattr(m, "name", None) or m.__name__)
    return names


def class_weights(cfg: Config, schema: FeatureSchema, stats: TrainStats) -> dict[int, float] | None:
    """Keras `class_weight` from `training.class_weight` and the class counts of the training rows."""
    cw = cfg.training.class_weight
    if cw == "none" or schema.task == "regression":
        if cw not in ("none",) and schema.task == "regression":
            raise cfg.error("training.class_weight", "class weights apply to classification, the task is regression")
        return None
    n = len(schema.class_names)
    if cw == "balanced":
        counts = np.zeros(n, dtype=np.float64)
        given = np.asarray(stats.class_counts if stats.class_counts is not None else [], dtype=np.float64)[:n]
        counts[: len(given)] = given
        total = float(counts.sum())
        counts[counts == 0] = 1.0
        return {i: float(total / (n * counts[i])) for i in range(n)}
    out = {i: 1.0 for i in range(n)}
    for label, weight in cw.items():
        key = str(label)
        if key not in schema.class_names:
            raise cfg.error(f"training.class_weight.{label}", f"no class '{label}'; classes: "
                            f"{', '.join(schema.class_names)}")
        out[schema.class_names.index(key)] = float(weight)
    return out


def target_scale(model: keras.Model) -> np.ndarray | None:
    """The standard deviation(s) of the target the model's output is scaled by (its last layer is the
    `Rescaling` named TARGET_LAYER: preprocessing.target standard), None for a model without it. An
    ensemble (`nettrain.model.ensemble`: its last layer the `Average` named ENSEMBLE_LAYER of member
    models): the mean of its members' scales, when every member has one."""
    members = ensemble_members(model)
    if members is not None:
        scales = [target_scale(m) for m in members]
        return None if not scales or any(sc is None for sc in scales) else np.mean(scales, axis=0)
    layers = getattr(model, "layers", None) or []
    last = layers[-1] if layers else None
    if not isinstance(last, keras.layers.Rescaling) or last.name != TARGET_LAYER:
        return None
    return np.atleast_1d(np.asarray(last.get_config()["scale"], dtype=np.float64))


def ensemble_members(model: keras.Model) -> list | None:
    """The member models of an ensemble (`nettrain.model.ensemble.mean_of`: its last layer the
    `Average` named ENSEMBLE_LAYER), None for any other model."""
    layers = getattr(model, "layers", None) or []
    last = layers[-1] if layers else None
    if not isinstance(last, keras.layers.Average) or last.name != ENSEMBLE_LAYER:
        return None
    return [layer for layer in layers if isinstance(layer, keras.Model)]


def loss_weight(cfg: Config, scale: np.ndarray | None) -> float | None:
    """The Keras `loss_weights` that make training on the original target (through the model's
    Rescaling layer) step exactly as training on the standardized target: the standardized loss is
    the loss of the original units times 1/std^2 for squared errors (mse), 1/std for absolute ones
    (mae). huber and log_cosh keep their delta (log_cosh: 1) in the target's units: 1/std^2 when
    std <= delta (the errors fall in their quadratic part), else 1/(std * delta) (their linear part).
    Other losses (mape, msle, poisson, cosine_similarity) are not weighted. Several target columns
    share one weight, from the root mean square of their standard deviations. None: no scaling."""
    if scale is None:
        return None
    s = float(np.sqrt(np.mean(np.square(scale))))
    if not np.isfinite(s) or s <= 0:
        return None
    loss = cfg.training.loss
    key = "meansquarederror" if loss == "auto" else catalog.normalize(loss_name(loss))
    if key in SQUARED_LOSSES:
        return 1.0 / s**2
    if key in ABSOLUTE_LOSSES:
        return 1.0 / s
    if key in SMOOTH_LOSSES:
        delta = SMOOTH_LOSSES[key]
        if isinstance(loss, dict) and key.startswith("huber"):
            delta = float(loss.get("delta", delta))
        return 1.0 / (s * min(s, delta))
    return None


def compile_model(cfg: Config, model: keras.Model, schema: FeatureSchema, learning_rate: Any = None,
                  steps_per_execution: int = 1, optimizer: Any = None) -> None:
    """Compile with the configured loss, optimizer (or `optimizer`, e.g. a restored one) and metrics;
    a model that ends in the target's Rescaling layer gets the loss weight of `loss_weight`."""
    try:
        model.compile(optimizer=optimizer if optimizer is not None else make_optimizer(cfg, learning_rate),
                      loss=make_loss(cfg, schema), metrics=make_metrics(cfg, schema),
                      loss_weights=loss_weight(cfg, target_scale(model)), steps_per_execution=steps_per_execution)
    except (TypeError, ValueError) as e:
        raise cfg.error("training", f"cannot compile the model: {first_line(e)}") from None
