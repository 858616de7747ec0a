"""Checkpoint file name templates (`callbacks.checkpoint.filename`): one checker, one renderer.

A template is a `str.format` string whose fields are restricted to `{epoch}` and logged metric
names, each with an optional plain numeric format spec (`{epoch:03d}`, `{val_loss:.4f}`). No
attribute or index access, no conversions, no nested fields, no fill characters, small widths:
the rendered name is always a plain file name inside the run's `checkpoints/` folder.

`check_template` runs at validation time (syntax, and a rendering with extreme sample values);
`render_checkpoint_name` runs at every checkpoint and checks the result again. No TensorFlow here.
"""

from __future__ import annotations

import re
import string
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from nettrain.config.args import show
from nettrain.config.coherence import AUTO_METRICS

if TYPE_CHECKING:  # pragma: no cover
    from nettrain.config.schema import Config

SUFFIXES = (".h5", ".keras")  # .keras files are written in the native Keras format
RESERVED = ("best.h5", "last.h5")
MAX_NAME = 200          # characters of a rendered name (file systems allow 255 bytes)
MAX_TEMPLATE = 200      # characters of the template itself
MAX_FIELDS = 8

# A field is `epoch` or a metric name: a plain ASCII identifier, nothing else.
FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# A plain numeric format spec: optional sign, zero padding, width < 100, precision < 100, a type.
# No fill/align characters (they could smuggle '/' in), no grouping, no nested fields.
SPEC = re.compile(r"[+\- ]?0?[0-9]{0,2}(?:\.[0-9]{1,2})?[dfFeEgG%]?")
# Characters a rendered name may never contain: path separators, NUL and other control characters.
BAD_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")

SAMPLE_EPOCHS = (1, 999_999)
SAMPLE_METRICS = (0.5, -1e30, 1e30, 1e-30, float("nan"), float("inf"), float("-inf"))

ALLOWED = ("a plain file name ending in .h5 or .keras inside checkpoints/, with fields {epoch} or a metric name "
           "and an optional numeric format spec, e.g. epoch{epoch:03d}-{val_loss:.4f}.h5")


def _fields(template: str) -> list[tuple[str, str]]:
    """(name, spec) of every field, after the syntax checks; ValueError naming the problem."""
    if not isinstance(template, str):
        raise ValueError(f"must be a string, got {show(template)}")
    if len(template) > MAX_TEMPLATE:
        raise ValueError(f"must be at most {MAX_TEMPLATE} characters, got {len(template)} "
                         f"({show(template)})")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:  # a single '{' or '}'
        raise ValueError(f"{show(template)} is not a valid template ({e}; write '{{{{' or '}}}}' for a "
                         f"literal brace); allowed: {ALLOWED}") from None
    out = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not FIELD.fullmatch(name):
            what = ("an empty field" if name == "" else
                    "attribute or index access" if any(c in name for c in ".[]") else "not a plain name")
            raise ValueError(f"field {show(shown)} in {show(template)}: {what} is not allowed; "
                             "a field is {epoch} or a metric name such as {val_loss}")
        if conversion is not None:
            raise ValueError(f"field {show(shown)} in {show(template)}: conversions (!r, !s, !a) are "
                             "not allowed")
        if spec and not SPEC.fullmatch(spec):
            raise ValueError(f"field {show(shown)} in {show(template)}: format spec {spec!r} is not "
                             "allowed; use a plain numeric spec such as 03d, .4f, .2e or 08.3f "
                             "(width and precision below 100, no fill character)")
        out.append((name, spec))
    if len(out) > MAX_FIELDS:
        raise ValueError(f"{show(template)} has {len(out)} fields; at most {MAX_FIELDS} are allowed")
    return out


def _check_name(name: str, template: str) -> None:
    """ValueError unless `name` is a plain file name usable inside checkpoints/."""
    got = f"got {show(template)}" if name == template else f"{show(template)} gives {show(name)}"
    if BAD_CHARS.search(name) or name.startswith("."):
        raise ValueError("must be a plain file name inside checkpoints/ (no '/', '\\', control characters "
                         f"or leading '.'), {got}")
    if len(name) > MAX_NAME or len(name.encode("utf-8", "surrogatepass")) > 250:
        raise ValueError(f"must be at most {MAX_NAME} characters once filled (use a smaller width or "
                         f"precision), {got} ({len(name)} characters)")
    if not name.endswith(SUFFIXES) or name in SUFFIXES:
        raise ValueError(f"must end in .h5 (nettrain's format) or .keras (the native Keras format), {got}")
    if name in RESERVED:
        raise ValueError(f"{show(name)} is reserved: best.h5 and last.h5 are always written; pick another name")


def _render(template: str, fields: list[tuple[str, str]], values: Mapping[str, Any]) -> str:
    parts = []
    for literal, name, spec, _conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is not None:
            parts.append(format(values[name], spec or ""))
    return "".join(parts)


def check_template(template: str, names: Iterable[str] | None = None) -> str:
    """Check a checkpoint file name template; returns it unchanged, or raises ValueError.

    `names`, when given, are the fields allowed (`epoch` and the names the run can log); without
    it any plain identifier is accepted as a field. The template is also rendered with extreme
    sample values (epoch 1 and 999999; metrics 0.5, -1e30, nan, inf, ...) so a spec that does not
    fit its value (`{val_loss:d}`) or a name that grows too long is caught before any training.
    """
    fields = _fields(template)
    if names is not None:
        allowed = set(names)
        for name, _spec in fields:
            if name not in allowed:
                shown = ", ".join(sorted(allowed, key=lambda n: (n != "epoch", n.startswith("val_"), n)))
                raise ValueError(f"unknown field {{{name}}} in {show(template)}; available: {shown}")
    if not template.endswith(SUFFIXES):
        raise ValueError(f"must end in .h5 (nettrain's format) or .keras (the native Keras format), got "
                         f"{show(template)}")
    for epoch in SAMPLE_EPOCHS:
        for metric in SAMPLE_METRICS:
            values = {name: (epoch if name == "epoch" else metric) for name, _spec in fields}
            try:
                name = _render(template, fields, values)
            except (ValueError, TypeError, OverflowError) as e:
                bad = next(((n, sp) for n, sp in fields if not _fits(values[n], sp)), None)
                if bad is None:
                    raise ValueError(f"{show(template)} cannot be filled ({e})") from None
                n, sp = bad
                kind = "the epoch, an integer" if n == "epoch" else "a metric, a number that may be nan or inf"
                raise ValueError(f"{{{n}:{sp}}} in {show(template)} does not fit {kind} ({e}); "
                                 "use e.g. {epoch:03d} or {val_loss:.4f}") from None
            _check_name(name, template)
    return template


def _fits(value: Any, spec: str) -> bool:
    try:
        format(value, spec)
        return True
    except (ValueError, TypeError, OverflowError):
        return False


def render_checkpoint_name(template: str, epoch: int, logs: Mapping[str, float]) -> str:
    """The file name for `epoch` (counted from 1) with the epoch's `logs` (metric -> number).

    Checks the template and the result again (defence in depth): raises ValueError unless the
    result is a plain file name ending in .h5 or .keras (no '/', '\\', NUL, leading '.', reserved name).
    """
    fields = _fields(template)
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        try:
            if float(epoch) != int(epoch):
                raise ValueError
            epoch = int(epoch)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"epoch must be an integer, got {show(epoch)}") from None
    values: dict[str, Any] = {}
    for name, _spec in fields:
        if name == "epoch":
            values[name] = epoch
            continue
        if name not in logs:
            available = ", ".join(["epoch", *sorted(str(k) for k in logs)])
            raise ValueError(f"unknown field {{{name}}} in {show(template)}; available: {available}")
        try:
            values[name] = float(logs[name])
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{name} is not a number at epoch {epoch}: {show(logs[name])}") from None
    try:
        name = _render(template, fields, values)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"checkpoint file name {show(template)} cannot be filled at epoch {epoch}: {e}") from None
    _check_name(name, template)
    return name


# --------------------------------------------------------------------------- logged names

def snake_case(name: str) -> str:
    """Keras's default object name for a class: `BinaryAccuracy` -> `binary_accuracy`, `AUC` -> `auc`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def possible_log_names(cfg: "Config") -> set[str]:
    """Every name a run of `cfg` may log (without Keras, deliberately lenient).

    "loss", the configured metrics (as written, and in Keras's snake_case form; for `auto` every
    metric auto may pick), each also with a `val_` prefix, and "learning_rate". The exact check
    against what Keras logs happens when `fit` starts.
    """
    metrics = cfg.training.metrics
    base = {"loss"}
    items = sorted({m for ms in AUTO_METRICS.values() for m in ms}) if metrics == "auto" else metrics
    for m in items:
        name = m.get("name") if isinstance(m, dict) else m
        if not isinstance(name, str):
            continue
        if not isinstance(m, dict):
            base.add(name)
        base.add(snake_case(name))
    return base | {"val_" + n for n in base} | {"learning_rate"}
