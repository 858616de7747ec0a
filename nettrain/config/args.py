"""Limits and the rules for free-form arguments, in one table.

Layer, optimizer, loss, metric and generator arguments are passed to Keras/sklearn as written.
Their names are checked against the Keras catalog (names.py); the types and ranges of the common
ones are checked here, so `learning_rate: fast` fails at validate time, not mid-fit. Arguments
not in the table stay Keras's job when the model is built. No TensorFlow here.
"""

from __future__ import annotations

import math
from typing import Any

from nettrain.words import clip

# Upper bounds: hostile or mistyped numbers stop here instead of crashing (or allocating) later.
MAX_INT = 2**31 - 1        # counts, steps, batch sizes
MAX_EPOCHS = 1_000_000
MAX_SEED = 2**32 - 1       # what NumPy and TensorFlow seeds take
MAX_SIZE = 2**24           # layer sizes (units, filters, ...), kernel and pool sizes
MAX_GENERATED = 10**9      # values a generator may make (n_samples * n_features)
MAX_NAME = 100             # characters of a run name (it names a folder)
MAX_LAYERS = 1000          # model.layers: a stack deeper than this is a generated mistake, not a model


# Layer types whose config carries Python code or a foreign framework's object: never built, never loaded.
CODE_LAYERS = ("Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer")


def show(value: Any, limit: int = 60) -> str:
    """A value for an error message: its repr, cut to `limit` characters."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<an integer of {value.bit_length()} bits>" if isinstance(value, int) else "<unprintable>"
    return clip(text, limit)


class ArgError(ValueError):
    """A bad value inside a free-form mapping; `key` is its path below the mapping (for messages)."""

    def __init__(self, key: tuple, message: str):
        super().__init__(message)
        self.key = key


class Arg:
    """One argument's rule: kind number/int/bool/ints (an int or a list of ints)/name (string or mapping)."""

    def __init__(self, kind: str, lo: float | None = None, hi: float | None = None, *, gt: bool = False,
                 lt: bool = False, null: bool = False):
        self.kind, self.lo, self.hi, self.gt, self.lt, self.null = kind, lo, hi, gt, lt, null

    def expected(self) -> str:
        word = {"number": "a number", "int": "an integer", "bool": "true or false",
                "ints": "an integer", "name": "a name (string) or a mapping"}[self.kind]
        if self.lo is not None and self.hi is not None:
            word += f" in {'(' if self.gt else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.lt else ']'}"
        elif self.lo is not None:
            word += f" {'>' if self.gt else '>='} {_num(self.lo)}"
        elif self.hi is not None:
            word += f" {'<' if self.lt else '<='} {_num(self.hi)}"
        if self.kind == "ints":
            word += " or a list of them"
        return word + (" or null" if self.null else "")

    def check(self, value: Any) -> Any:
        """The value (ints made floats for number arguments), or ValueError 'got X; expected Y'."""
        if value is None and self.null:
            return value
        if self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "name":
            ok = isinstance(value, (str, dict))
        elif self.kind == "ints":
            items = value if isinstance(value, list) and 0 < len(value) <= 1000 else [value]
            ok = all(self._in_range(v, int) for v in items)
        elif self.kind == "int":
            ok = self._in_range(value, int)
        else:
            ok = self._in_range(value, (int, float))
            if ok and isinstance(value, int):
                value = float(value)  # Keras checks isinstance(momentum, float)
        if not ok:
            raise ValueError(f"got {show(value)}; expected {self.expected()}")
        return value

    def _in_range(self, value: Any, types) -> bool:
        if isinstance(value, bool) or not isinstance(value, types):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.gt else value < self.lo):
            return False
        if self.hi is not None and (value >= self.hi if self.lt else value > self.hi):
            return False
        return True


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


_UNIT = Arg("number", 0, 1)
_BOOL = Arg("bool")
_CLIP = Arg("number", 0, None, gt=True, null=True)
OPTIMIZER_ARGS = {
    "learning_rate": Arg("number", 0, None, gt=True),
    "momentum": _UNIT, "beta_1": _UNIT, "beta_2": _UNIT, "rho": _UNIT, "ema_momentum": _UNIT,
    "epsilon": Arg("number", 0, None), "weight_decay": Arg("number", 0, None, null=True),
    "clipnorm": _CLIP, "clipvalue": _CLIP, "global_clipnorm": _CLIP, "loss_scale_factor": _CLIP,
    "ema_overwrite_frequency": Arg("int", 1, MAX_INT, null=True),
    "gradient_accumulation_steps": Arg("int", 1, MAX_INT, null=True),
    "nesterov": _BOOL, "amsgrad": _BOOL, "use_ema": _BOOL, "centered": _BOOL,
}
LOSS_METRIC_ARGS = {
    "from_logits": _BOOL, "label_smoothing": _UNIT, "delta": Arg("number", 0, None, gt=True),
    "num_thresholds": Arg("int", 2, 1_000_000), "k": Arg("int", 1, MAX_SIZE),
    "num_classes": Arg("int", 1, MAX_SIZE, null=True), "multi_label": _BOOL,
    "threshold": Arg("number", null=True),
}
_SIZE = Arg("int", 1, MAX_SIZE)
_WINDOW = Arg("ints", 1, MAX_SIZE, null=True)
_DROP = Arg("number", 0, 1, lt=True)
_NAME = Arg("name", null=True)
LAYER_ARGS = {
    "units": _SIZE, "filters": _SIZE, "output_dim": _SIZE, "input_dim": Arg("int", 1, MAX_INT),
    "kernel_size": Arg("ints", 1, MAX_SIZE), "pool_size": _WINDOW, "strides": _WINDOW, "dilation_rate": _WINDOW,
    "rate": _DROP, "dropout": _DROP, "recurrent_dropout": _DROP,
    "activation": _NAME, "recurrent_activation": _NAME,
    "use_bias": _BOOL, "return_sequences": _BOOL, "return_state": _BOOL, "mask_zero": _BOOL,
    "trainable": _BOOL,
}
LAYER_ARG_SUFFIXES = {"_initializer": _NAME, "_regularizer": _NAME, "_constraint": _NAME}
_COUNT0 = Arg("int", 0, MAX_INT)
GENERATOR_ARGS = {
    "n_samples": Arg("ints", 1, MAX_INT), "n_features": Arg("int", 1, MAX_INT),
    "n_informative": _COUNT0, "n_redundant": _COUNT0, "n_repeated": _COUNT0,
    "n_classes": Arg("int", 1, MAX_SIZE), "n_clusters_per_class": Arg("int", 1, MAX_SIZE),
    "n_targets": Arg("int", 1, MAX_SIZE), "random_state": Arg("int", 0, MAX_SEED, null=True),
    "noise": Arg("number", 0, None), "bias": Arg("number"), "flip_y": _UNIT, "tail_strength": _UNIT,
    "shuffle": _BOOL, "hypercube": _BOOL,
}


def _nonfinite(value: Any, path: tuple = ()) -> tuple | None:
    """The path of the first NaN/inf number inside `value`, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _nonfinite(v, path + (k,))
        if found is not None:
            return found
    return None


def check_args(args: dict, table: dict[str, Arg], prefix: tuple = (),
               suffixes: dict[str, Arg] | None = None) -> dict:
    """Check the arguments of a free-form mapping against `table`; returns them (numbers as floats).

    Raises ArgError (a ValueError pydantic reports) whose `key` is the argument's path below the mapping.
    """
    out = dict(args)
    for key, value in args.items():
        bad = _nonfinite(value)
        if bad is not None:
            raise ArgError(prefix + (key,) + bad, "NaN and infinite numbers are not allowed "
                           f"(got {show(value)}); use a finite number")
        rule = table.get(key) if isinstance(key, str) else None
        if rule is None and suffixes and isinstance(key, str):
            rule = next((r for s, r in suffixes.items() if key.endswith(s)), None)
        if rule is not None:
            try:
                out[key] = rule.check(value)
            except ValueError as e:
                raise ArgError(prefix + (key,), str(e)) from None
    return out
