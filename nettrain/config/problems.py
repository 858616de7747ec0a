"""Config mistakes in words: a pydantic validation error, or a check's message at a key path,
becomes one `ConfigError` naming the file and line (or the `--set` argument), the dotted key path
and what is allowed.

`describe` picks the one error to tell (the deepest key path, a plain type error last) and words it;
`error_at` places a message at a key path. No TensorFlow here.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from nettrain.config.args import Arg, ArgError, show
from nettrain.config.schema import Config
from nettrain.config.yamlread import dotted, quote
from nettrain.errors import ConfigError
from nettrain.words import clip, did_you_mean, masked_uri


def set_arg(text: str) -> str:
    """How a --set argument is named in messages (cut short, control characters escaped, a URI's
    password masked)."""
    shown = masked_uri(text if text.isprintable() else repr(text)[1:-1])
    return "--set " + clip(shown, 80)


def error_at(loc: tuple, msg: str, file: str, lines: dict, overridden: list[tuple[tuple, str]],
             from_file: bool = True, files: dict | None = None) -> ConfigError:
    """The ConfigError for key path `loc`: a --set argument when one set it, else the file and line.

    Without a config file (`from_file` False: retrain, or data passed in) an overridden key's
    error names the --set argument in place of the file: `--set training.epochs=abc: got 'abc'; ...`.
    """
    best = None
    for i, (opath, text) in enumerate(overridden):
        if loc[: len(opath)] == opath or opath[: len(loc)] == loc:
            score = (min(len(opath), len(loc)), i)  # the most specific --set, then the last one
            if best is None or score >= best[0]:
                best = (score, opath, text)
    if best is not None:
        _, opath, text = best
        if from_file:
            return ConfigError(msg + f" (set by {set_arg(text)})", file=file, path=dotted(loc) or None)
        err = ConfigError(msg, file=set_arg(text), path=None if loc == opath else dotted(loc))
        err.path = dotted(loc) or None
        return err
    line = None
    for i in range(len(loc), -1, -1):
        if loc[:i] in lines:
            line = lines[loc[:i]]
            file = (files or {}).get(loc[:i], file)  # written in a base config (extends)
            break
    return ConfigError(msg, file=file, path=dotted(loc) or None, line=line)


# ---------------------------------------------------------------------- pydantic errors

_TYPE_WORDS = {
    "string_type": "a string", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "int_type": "an integer", "int_parsing": "an integer",
    "int_from_float": "an integer", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "a list",
    "literal_error": None, "none_required": "null",
}


_BOUNDS = ("greater_than_equal", "greater_than", "less_than_equal", "less_than", "int_parsing_size")


def describe(errors: list[dict], data: Any, file: str, lines: dict, overridden: list,
             from_file: bool = True, files: dict | None = None) -> ConfigError:
    """The ConfigError for pydantic's `errors` on `data`: the most specific one, and how many more."""
    enriched = [(_loc_of(e, data), e) for e in errors]
    # The deepest location is the most specific; among equals, prefer non-type errors.
    enriched.sort(key=lambda le: (-len(le[0]), le[1]["type"] in _TYPE_WORDS))
    loc, err = enriched[0]
    same = [e for lc, e in enriched if lc == loc]

    if err["type"] == "extra_forbidden":
        model = _model_at(loc[:-1], data)
        allowed = [f for f in model.model_fields] if isinstance(model, type) else []
        msg = f"unknown key {quote(loc[-1])}; {did_you_mean(str(loc[-1]), allowed)}"
        msg += f"allowed: {', '.join(allowed)}" if allowed else "remove it"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "finite_number":
        msg = f"got {show(err.get('input'))}; expected a finite number (NaN and infinity are not allowed)"
    elif err["type"] == "union_tag_invalid":
        msg = err["msg"].replace("Input tag", "type")
    elif len(same) > 1 and all(e["type"] in _TYPE_WORDS for e in same):
        wants = []
        for e in same:
            word = _TYPE_WORDS[e["type"]] or e["msg"].removeprefix("Input should be ")
            if word not in wants:
                wants.append(word)
        msg = f"got {show(err.get('input'))}; expected {' or '.join(wants)}"
    elif _TYPE_WORDS.get(err["type"]):
        msg = f"got {show(err.get('input'))}; expected {_TYPE_WORDS[err['type']]}"
    elif err["type"] in _BOUNDS and _bounds(loc, data):
        msg = f"got {show(err.get('input'))}; expected {_bounds(loc, data)}"
    else:
        text = err["msg"].removeprefix("Value error, ")
        msg = f"{text} (got {show(err.get('input'))})" if "got" not in text and err["type"] != "value_error" \
            else text
    more = len({lc for lc, _ in enriched}) - 1
    if more > 0:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return error_at(loc, msg, file, lines, overridden, from_file, files)


def _loc_of(err: dict, data: Any) -> tuple:
    """The key path of a pydantic error; an ArgError (schema.py) adds the argument's own path."""
    loc = _clean_loc(err["loc"], data)
    exc = (err.get("ctx") or {}).get("error")
    return loc + exc.key if isinstance(exc, ArgError) else loc


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop the union/tag parts pydantic adds, keeping only keys and indexes found in data."""
    out, node = [], data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part and part not in node and "[" not in part \
                and not part[0].isupper() and part not in ("str", "int", "float", "bool", "list", "dict") \
                and not _is_tag(node, part):
            out.append(part)  # a key that is missing (required) or extra
            node = None
    return tuple(out)


def _is_tag(node: dict, part: str) -> bool:
    return node.get("type") == part or node.get("generator") == part or part in ("function-after", "literal")


def _bounds(loc: tuple, data: Any) -> str | None:
    """'an integer in [1, 2147483647]' for the schema field at `loc`, from its ge/gt/le/lt."""
    if not loc:
        return None
    model = _model_at(loc[:-1], data)
    field = model.model_fields.get(loc[-1]) if isinstance(model, type) and isinstance(loc[-1], str) else None
    if field is None:
        return None
    lo = hi = None
    gt = lt = False
    for m in field.metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, gt = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
        if getattr(m, "lt", None) is not None:
            hi, lt = m.lt, True
    ints = field.annotation is int or int in typing.get_args(field.annotation)
    return Arg("int" if ints else "number", lo, hi, gt=gt, lt=lt).expected()


# --------------------------------------------------------------------- the schema's models

def _model_at(path: tuple, data: Any) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at `path` (for 'did you mean')."""
    cls: Any = Config
    node = data
    for part in path:
        if cls is None:
            return None
        if isinstance(part, int):
            cls = models_in(cls)
            node = node[part] if isinstance(node, list) and part < len(node) else None
            cls = _pick(cls, node)
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return None
        node = node.get(part) if isinstance(node, dict) else None
        cls = _pick(models_in(cls.model_fields[part].annotation), node)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def models_in(annotation: Any) -> list:
    """The pydantic model classes a field's annotation (or a list of candidates) allows."""
    if isinstance(annotation, list):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out = []
    for arg in typing.get_args(annotation):
        out.extend(models_in(arg))
    return out


def _pick(models: list, node: Any):
    if not models:
        return None
    if len(models) == 1:
        return models[0]
    if isinstance(node, dict) and "type" in node:  # discriminated union (lr_schedule)
        for m in models:
            field = m.model_fields.get("type")
            if field is not None and node["type"] in typing.get_args(field.annotation):
                return m
    return models  # several candidates: resolved by the next (index) step or not at all
