"""`nettrain inspect CONFIG|RUN|MODEL.h5`: what a network's variables, gradients and activations
look like on one batch of its training data, and what that says in plain words.

On a CONFIG the model is built fresh (the weights it would start training with); on a run
directory or an .h5 file it is the trained model. Either way one batch (the first `--batch` rows
of the training split) goes through it in training mode under a `tf.GradientTape`
(`training.gradients.batch_gradients`), and one step of the configured optimizer at the
configured learning rate is tried and undone, for the size of the update relative to the weights.
Nothing is written anywhere.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nettrain.errors import UsageError

MAX_BATCH = 1_000_000
# Rows measured by default: a training batch, but at least this many, so that a unit silent on a small
# batch (one that fires for one class only) is not taken for dead.
DEFAULT_ROWS = 256

# Thresholds of the findings (documented in docs/reading-your-network.md).
VANISHING = 1e-2        # first layer's gradient per weight below 1/100 of the last layer's
EXPLODING = 1e2         # ... above 100 times the last layer's
UPDATE_TOO_LARGE = 1.0  # one step would move a kernel by more than its own size
DEAD_SHARE = 0.5        # a ReLU layer with more than half of its units dead on the batch
SATURATED_SHARE = 0.3   # a sigmoid/tanh layer with more than 30% of its outputs saturated


@dataclass
class VariableReport:
    layer: str
    name: str                      # the variable's name in its layer (kernel, bias, moving_mean, mean, ...)
    shape: list[int]
    count: int
    kind: str                      # trainable, non-trainable, or constant (a preprocessing layer's fixed tensor)
    mean: float
    std: float
    norm: float
    grad_norm: float | None = None
    update_ratio: float | None = None   # ||one optimizer step|| / ||weights||


@dataclass
class LayerReport:
    name: str
    type: str
    key: str | None                # the config key that made it (model.layers.3, model.output), when known
    activation: str | None
    initializer: str | None
    initializer_family: str | None       # he, glorot, lecun (by its variance scaling), None for another kind
    units: int | None
    trainable: int
    non_trainable: int
    grad_norm: float | None = None       # all its trainable variables together
    grad_per_weight: float | None = None  # its kernel's gradient norm / sqrt(kernel size)
    update_ratio: float | None = None    # of its kernel
    dead: float | None = None            # share of ReLU units at 0 for every row of the batch
    saturated: float | None = None       # share of sigmoid/tanh outputs at the flat ends


@dataclass
class Finding:
    kind: str                      # vanishing_gradients, exploding_gradients, dead_units, saturated_units, initializer
    message: str
    fix: str
    layers: list[str] = field(default_factory=list)


@dataclass
class InspectReport:
    target: str
    kind: str                      # config, run or model
    model_state: str               # "freshly initialized" or "trained (epoch N)"
    rows: int
    loss: float
    loss_name: str
    optimizer: str
    learning_rate: float
    learning_rate_from: str
    layers: list[LayerReport]
    variables: list[VariableReport]
    findings: list[Finding]

    def layer(self, name: str) -> LayerReport:
        return next(layer for layer in self.layers if layer.name == name)

    def to_dict(self) -> dict[str, Any]:
        from nettrain.store.atomic import finite

        return finite({"target": self.target, "kind": self.kind, "model": self.model_state, "rows": self.rows,
                       "loss": self.loss, "loss_name": self.loss_name, "optimizer": self.optimizer,
                       "learning_rate": self.learning_rate, "learning_rate_from": self.learning_rate_from,
                       "layers": [asdict(x) for x in self.layers],
                       "variables": [asdict(x) for x in self.variables],
                       "findings": [asdict(x) for x in self.findings]})


# ------------------------------------------------------------------------------ arguments

def check_batch(batch: Any) -> int | None:
    if batch is None:
        return None
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch {batch!r}: expected a whole number of rows from 1 to {MAX_BATCH:,} "
                         f"(default: training.batch_size, at least {DEFAULT_ROWS})")
    return batch


def is_model_target(path: Path) -> bool:
    """A run directory or an .h5 file (a native .keras checkpoint or an export too, which `resolve_target`
    names; anything else is taken for a config)."""
    from nettrain.lifecycle import served

    try:
        return path.is_dir() or path.suffix.lower() in (".h5", ".keras") or served.is_export(path)
    except OSError:
        return False


# ------------------------------------------------------------------------------ inspect

def inspect(target: str | Path, *, overrides: Iterable[str] = (), batch: int | None = None) -> InspectReport:
    """Inspect a CONFIG's fresh model, or a run's / .h5 file's trained one, on one training batch."""
    batch = check_batch(batch)
    path = Path(target)
    overrides = list(overrides)
    from nettrain.training import runtime  # noqa: F401 - loads TensorFlow without its native start-up chatter
    if is_model_target(path):
        if overrides:
            raise UsageError(f"--set applies to a CONFIG; {path} is a trained model (inspect its config to try "
                             "other settings on a fresh model)")
        return _inspect_trained(path, batch)
    return _inspect_config(path, overrides, batch)


def _inspect_config(path: Path, overrides: list[str], batch: int | None) -> InspectReport:
    from nettrain.config import load_config

    cfg = load_config(path, overrides)
    from nettrain.model.compile import initial_learning_rate
    from nettrain.training.fit import new_model, prepare
    from nettrain.training.gradients import first_rows

    prep = prepare(cfg)
    model = new_model(prep)
    rows = batch or max(cfg.training.batch_size, DEFAULT_ROWS)
    x, y = first_rows(prep.feed, model, rows)
    lr = initial_learning_rate(cfg)
    return _report(model, cfg, x, y, target=str(path), kind="config", state="freshly initialized",
                   learning_rate=lr, lr_from="the config")


def _inspect_trained(path: Path, batch: int | None) -> InspectReport:
    from nettrain.config import load_config
    from nettrain.data.types import Split
    from nettrain.lifecycle.runrows import run_record, run_split_rows
    from nettrain.lifecycle.target import batch_size, load_model, model_feed, n_classes, resolve_target

    target = resolve_target(path)
    record = run_record(target.run_dir)
    rows_wanted = batch or max(batch_size(target), DEFAULT_ROWS)
    pieces, total = [], 0
    for part in run_split_rows(target, "train", record):
        pieces.append(part)
        total += len(part)
        if total >= rows_wanted:
            break
    split = Split.concat(pieces)
    cfg = load_config(target.model_path, data=copy.deepcopy(target.config), check_names=False)
    model = load_model(target)

    import numpy as np

    from nettrain.model.compile import encode_targets, initial_learning_rate

    inputs = type(split)(inputs={k: v[:rows_wanted] for k, v in split.inputs.items()},
                         y=np.asarray(split.y)[:rows_wanted], ids=None, row_index=None)
    x = model_feed(model, inputs, str(path))
    y = encode_targets(inputs.y, target.label_mode, n_classes(target))
    lr, lr_from = _last_learning_rate(target.run_dir, target.epoch)
    if lr is None:
        lr, lr_from = initial_learning_rate(cfg), "the config"
    kind = "run" if path.is_dir() else "model"
    state = f"trained (epoch {target.epoch})" if target.epoch else "trained"
    return _report(model, cfg, x, y, target=str(path), kind=kind, state=state, learning_rate=lr, lr_from=lr_from)


def _last_learning_rate(run_dir: Path | None, epoch: int) -> tuple[float | None, str]:
    """The learning rate metrics.csv records for the model's epoch (its last epoch when unknown)."""
    if run_dir is None:
        return None, ""
    from nettrain.store import rundir

    try:
        history = rundir.MetricsCSV(run_dir / rundir.METRICS_CSV).read()
    except UsageError:
        return None, ""
    rows = [r for r in history if r.get("learning_rate") is not None]
    if epoch:
        rows = [r for r in rows if int(r["epoch"]) <= epoch] or rows
    if not rows:
        return None, ""
    last = rows[-1]
    return float(last["learning_rate"]), f"metrics.csv, epoch {int(last['epoch'])}"


# ------------------------------------------------------------------------------ the measurements

def _report(model, cfg, x, y, *, target: str, kind: str, state: str, learning_rate: float,
            lr_from: str) -> InspectReport:
    import numpy as np

    from nettrain.model.compile import loss_name, make_optimizer
    from nettrain.training import gradients as g

    keys = config_keys(model, cfg)
    watch = [layer for layer in model.layers
             if (g.activation_name(layer) in g.DYING or g.activation_name(layer) in g.SATURATING)]
    result = g.batch_gradients(model, x, y, watch=watch)
    optimizer = make_optimizer(cfg, learning_rate)
    ratios = g.update_ratios(model, result, optimizer)
    index = {id(v): i for i, v in enumerate(result.variables)}
    rows = int(np.asarray(y).shape[0])

    layers, variables = [], []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        trainable = sum(int(np.prod(v.shape)) for v in layer.trainable_variables)
        non_trainable = sum(int(np.prod(v.shape)) for v in layer.non_trainable_weights)
        report = LayerReport(name=layer.name, type=type(layer).__name__, key=keys.get(layer.name),
                             activation=shown_activation(layer),
                             initializer=g.initializer_name(g.initializer_of(layer)),
                             initializer_family=g.initializer_family(g.initializer_of(layer)),
                             units=_units(layer), trainable=trainable, non_trainable=non_trainable)
        squares = []
        for v in layer.weights:
            i = index.get(id(v))
            value = np.asarray(v.numpy(), dtype=np.float64)
            entry = VariableReport(layer=layer.name, name=v.name, shape=[int(d) for d in v.shape],
                                   count=int(value.size), kind="trainable" if i is not None else "non-trainable",
                                   **g.stats(value))
            if i is not None:
                entry.grad_norm = result.norm(i)
                entry.update_ratio = ratios[i]
                if entry.grad_norm is not None:
                    squares.append(entry.grad_norm ** 2)
            variables.append(entry)
        variables += _constants(layer)
        if squares:
            report.grad_norm = float(math.sqrt(sum(squares)))
        kernel = g.kernel_of(layer)
        if kernel is not None and id(kernel) in index:
            i = index[id(kernel)]
            norm = result.norm(i)
            size = int(np.prod(kernel.shape))
            report.grad_per_weight = None if norm is None or not size else norm / math.sqrt(size)
            report.update_ratio = ratios[i]
        if layer.name in result.outputs:
            shares = g.activation_shares(report.activation, result.outputs[layer.name])
            report.dead, report.saturated = shares["dead"], shares["saturated"]
        layers.append(report)

    opt = cfg.training.optimizer
    loss = cfg.training.loss
    return InspectReport(target=target, kind=kind, model_state=state, rows=rows, loss=result.loss,
                         loss_name=loss_name(loss) if loss != "auto" else _compiled_loss_name(model),
                         optimizer=opt if isinstance(opt, str) else opt["name"], learning_rate=float(learning_rate),
                         learning_rate_from=lr_from, layers=layers, variables=variables,
                         findings=findings(layers, result.loss, result))


def shown_activation(layer) -> str | None:
    """The activation a layer applies, as inspect shows it: the one the findings read
    (`gradients.activation_name`), else the name in the layer's config (a softmax or log_softmax
    head, the builder's included) or a Softmax layer; None for none or linear."""
    from nettrain.training import gradients as g

    name = g.activation_name(layer)
    if name is not None:
        return name
    if type(layer).__name__ == "Softmax":
        return "softmax"
    try:
        configured = layer.get_config().get("activation")
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return None
    if isinstance(configured, dict):  # a serialized activation object
        inner = configured.get("config")
        configured = inner.get("name") if isinstance(inner, dict) else configured.get("class_name")
    return configured if isinstance(configured, str) and configured not in ("", "linear") else None


def _units(layer) -> int | None:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return int(shape[-1]) if shape and shape[-1] is not None else None


def _constants(layer) -> list[VariableReport]:
    """The fixed statistics of a Normalization layer built with them (Keras keeps them as tensors,
    not variables): mean and variance, reported as constants."""
    import numpy as np

    from nettrain.training import gradients as g

    if type(layer).__name__ != "Normalization" or layer.weights:
        return []
    out = []
    for name in ("mean", "variance"):
        value = getattr(layer, name, None)
        if value is None:
            continue
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        out.append(VariableReport(layer=layer.name, name=name, shape=list(array.shape), count=int(array.size),
                                  kind="constant", **g.stats(array)))
    return out


def _compiled_loss_name(model) -> str:
    loss = getattr(model, "loss", None)
    if isinstance(loss, str):
        return loss
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None)
    return str(name) if name else "auto"


def config_keys(model, cfg) -> dict[str, str]:
    """Layer name -> the config key that made it (`model.layers.<i>`, `model.output`): the user's
    stack and the head are the last layers of the model (before the target's Rescaling, when there
    is one). {} when the model's layers do not line up with the config (a file from elsewhere)."""
    from nettrain.config.schema import LayerSpec
    from nettrain.model.compile import TARGET_LAYER

    specs = [(f"model.layers.{i}", spec.type) for i, spec in enumerate(cfg.model.layers)]
    if isinstance(cfg.model.output, LayerSpec):
        specs.append(("model.output", cfg.model.output.type))
    elif cfg.model.output == "auto":
        specs.append(("model.output", "Dense"))
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if layers and layers[-1].name == TARGET_LAYER:
        layers = layers[:-1]
    if len(layers) < len(specs):
        return {}
    tail = layers[len(layers) - len(specs):]
    if any(type(layer).__name__ != kind for layer, (_, kind) in zip(tail, specs)):
        return {}
    return {layer.name: key for layer, (key, _) in zip(tail, specs)}


# ------------------------------------------------------------------------------ the findings

def _where(layer: LayerReport) -> str:
    return f"{layer.name} ({layer.key})" if layer.key else layer.name


def _key_hint(layers: list[LayerReport], arg: str, value: str) -> str:
    keys = [f"{layer.key}.{arg}: {value}" for layer in layers if layer.key]
    if not keys:
        return f"{arg}: {value} on {', '.join(layer.name for layer in layers)}"
    shown = "; ".join(keys[:4]) + (f"; ... ({len(keys)} layers)" if len(keys) > 4 else "")
    return shown


def findings(layers: list[LayerReport], loss: float, result=None) -> list[Finding]:
    """Plain-words diagnoses of the measurements, each with the config change that addresses it."""
    import numpy as np

    from nettrain.report.tables import format_value as fmt
    from nettrain.training import gradients as g

    out: list[Finding] = []
    weighted = [layer for layer in layers if layer.grad_per_weight is not None and layer.type != "Embedding"]
    grads_finite = result is None or all(x is None or bool(np.all(np.isfinite(x))) for x in result.gradients)
    if not math.isfinite(loss) or not grads_finite:
        out.append(Finding(
            "exploding_gradients",
            f"exploding gradients: the loss ({fmt(loss)}) or the gradients are not finite on this batch already",
            "lower training.optimizer.learning_rate, add clipnorm: 1.0 to training.optimizer, and keep the inputs "
            "scaled (preprocessing.numeric: standard)"))
    elif len(weighted) >= 2:
        first, last = weighted[0], weighted[-1]
        a, b = first.grad_per_weight, last.grad_per_weight
        saturating = [x for x in weighted if x.activation in g.SATURATING]
        if b > 0 and a / b < VANISHING:
            why = ""
            if len(saturating) >= 2:
                kinds = sorted({x.activation for x in saturating})
                why = (f"; {len(saturating)} {'/'.join(kinds)} layers in a row each shrink the gradient on its way "
                       "back (a sigmoid's slope is at most 0.25, tanh's at most 1 and less once saturated)")
            stack = [x.key for x in saturating if x.key and x.key.startswith("model.layers.")]
            where = ("" if not stack else f" ({stack[0]}" + (f" to {stack[-1]}" if len(stack) > 1 else "") + ")")
            fix = (f"use ReLU with He initialization in the hidden layers{where}: activation: relu and "
                   "model.kernel_initializer: he_normal; or put BatchNormalization layers between them, or use "
                   "fewer layers")
            out.append(Finding(
                "vanishing_gradients",
                f"vanishing gradients: the gradient per weight of the first layer, {_where(first)}, is {fmt(a)}: "
                + (f"{_times(b / a)} smaller than" if a > 0 else "none at all, against") +
                f" that of the last layer, {_where(last)}, {fmt(b)}; the early layers "
                f"{'barely learn' if a > 0 else 'do not learn'}{why}", fix, [first.name, last.name]))
        elif b > 0 and a / b > EXPLODING:
            out.append(Finding(
                "exploding_gradients",
                f"exploding gradients: the gradient per weight of the first layer, {_where(first)}, is {fmt(a)}: "
                f"{_times(a / b)} larger than that of the last layer, {_where(last)}, {fmt(b)}",
                "add clipnorm: 1.0 to training.optimizer, lower training.optimizer.learning_rate, use a Glorot or "
                "He initializer (model.kernel_initializer) or add BatchNormalization layers", [first.name, last.name]))
    big = [x for x in weighted if x.update_ratio is not None and x.update_ratio > UPDATE_TOO_LARGE]
    if big and not any(f.kind == "exploding_gradients" for f in out):
        worst = max(big, key=lambda x: x.update_ratio)
        out.append(Finding(
            "exploding_gradients",
            f"steps too large: one optimizer step would change the weights of {len(big)} layer"
            f"{'s' if len(big) > 1 else ''} by more than their own size ({_where(worst)}: "
            f"{fmt(worst.update_ratio)} of its norm; about 1e-3 is usual)",
            "lower training.optimizer.learning_rate (nettrain lr-find CONFIG suggests one) or add clipnorm: 1.0 to "
            "training.optimizer", [x.name for x in big]))
    hidden = layers[:-1]  # the output layer's activation is the head's: confident outputs are not a fault
    dead = [x for x in hidden if x.dead is not None and x.dead > DEAD_SHARE]
    if dead:
        parts = ", ".join(f"{_where(x)} {x.dead:.0%}" for x in dead)
        out.append(Finding(
            "dead_units",
            f"dead ReLUs: more than half of the units of a layer output 0 for every row of the batch, so they get "
            f"no gradient and stop learning: {parts}",
            ("" if all(x.initializer_family == "he" for x in dead) else "use kernel_initializer: he_normal, ")
            + "a lower training.optimizer.learning_rate, BatchNormalization before the activation, or "
            + _key_hint(dead, "activation", "leaky_relu") + " (or elu)", [x.name for x in dead]))
    saturated = [x for x in hidden if x.saturated is not None and x.saturated > SATURATED_SHARE]
    if saturated:
        parts = ", ".join(f"{_where(x)} {x.saturated:.0%}" for x in saturated)
        out.append(Finding(
            "saturated_units",
            f"saturated units: many sigmoid/tanh outputs sit at the flat ends of the curve, where the slope (and "
            f"the gradient through them) is close to 0: {parts}",
            "keep the inputs scaled (preprocessing.numeric: standard), use kernel_initializer: glorot_uniform for "
            "these layers, or " + _key_hint(saturated, "activation", "relu") + " with kernel_initializer: he_normal",
            [x.name for x in saturated]))
    out += _initializer_findings(layers)
    return out


def _initializer_findings(layers: list[LayerReport]) -> list[Finding]:
    from nettrain.training import gradients as g

    wrong: dict[str, list[LayerReport]] = {}
    for layer in layers:
        if layer.initializer is None or layer.activation is None:
            continue
        family = layer.initializer_family
        if layer.activation in g.RELU_LIKE and family != "he":
            wrong.setdefault("he_normal", []).append(layer)
        elif layer.activation in g.GLOROT_LIKE and family == "he":
            wrong.setdefault("glorot_uniform", []).append(layer)
        elif layer.activation in g.SELF_NORMALIZING and family != "lecun":
            wrong.setdefault("lecun_normal", []).append(layer)
    out = []
    why = {"he_normal": "ReLU-like units zero half their inputs, so they keep the signal's variance only with He "
                        "initialization (variance 2 / fan_in); with less the signal and the gradients shrink layer "
                        "by layer",
           "glorot_uniform": "sigmoid/tanh units want Glorot initialization (variance 1 / fan_avg); He's larger "
                             "weights push them into saturation",
           "lecun_normal": "selu is self-normalizing only with LeCun normal initialization"}
    for wanted, group in wrong.items():
        parts = ", ".join(f"{_where(x)}: {x.activation} with {x.initializer}" for x in group)
        keyed = [x for x in group if x.key]
        fix = (f"set {_key_hint(keyed, 'kernel_initializer', wanted)}" if keyed
               else f"use kernel_initializer: {wanted} for {', '.join(x.name for x in group)}")
        if keyed and any(x.key.startswith("model.layers.") for x in keyed):
            fix += f" (or model.kernel_initializer: {wanted} for every layer without its own)"
        out.append(Finding("initializer", f"initializer does not fit the activation: {parts}; {why[wanted]}", fix,
                           [x.name for x in group]))
    return out


def _times(factor: float) -> str:
    """`22,000 times` (two significant digits), `35 times`."""
    if not math.isfinite(factor):
        return "infinitely many times"
    digits = max(0, int(math.floor(math.log10(max(factor, 1e-300)))) - 1)
    rounded = round(factor, -digits) if factor >= 100 else round(factor, 1)
    return f"{rounded:,.0f} times" if rounded >= 100 else f"{rounded:g} times"
