"""`${env:NAME}` and `${env:NAME,default}` in a config's string values, resolved at load.

A value may hold references anywhere in its text (`sqlite:///${env:CI_DIR}/mlflow.db`,
`https://bob:${env:MLFLOW_PASSWORD}@mlflow.example.com`); `$${` is a literal `${`. A variable that is
not set and has no default is a ConfigError naming it (exit 2). Training uses the resolved text;
what nettrain writes (config.yaml, checkpoint metadata, MLflow params, `validate --print-config`)
gets the reference back (`written`), so a resolved secret never leaves memory. Keys are never
resolved. No TensorFlow here.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping

from nettrain.config.args import show
from nettrain.words import clip, masked_uri

# `$${` (a literal `${`), or `${env:NAME}` / `${env:NAME,default}`.
# A name stops at `$`, a default at `${`, both are bounded: the scan stays linear on hostile text.
_TOKEN = re.compile(r"\$\$\{|\$\{env:([^,}$]{0,200})(?:,((?:[^}$]|\$(?!\{)){0,1000}))?\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOLD = "NTENVREF{}Z"


def has_reference(text: str) -> bool:
    return "${env:" in text or "$${" in text


def resolve_text(text: str, environ: Any = None) -> str:
    """`text` with every reference replaced by its variable's value (or its default).

    Raises ValueError with the message to show (the variable named) for a missing variable or a
    malformed reference.
    """
    env = os.environ if environ is None else environ
    out, at = [], 0
    for m in _TOKEN.finditer(text):
        out.append(_check_plain(text[at:m.start()]))
        at = m.end()
        if m.group(0) == "$${":
            out.append("${")
            continue
        name, default = m.group(1), m.group(2)
        if not _NAME.fullmatch(name):
            raise ValueError(f"{show(clip(m.group(0), 60))} does not name an environment variable "
                             "(letters, digits and _, not starting with a digit): ${env:NAME} or ${env:NAME,default}")
        value = env.get(name)
        if value is None:
            if default is None:
                raise ValueError(f"environment variable {name} is not set; set it, or give a default: "
                                 f"${{env:{name},DEFAULT}}")
            value = default
        out.append(value)
    out.append(_check_plain(text[at:]))
    return "".join(out)


def _check_plain(text: str) -> str:
    """Text between references: an unclosed `${env:` is refused rather than kept (other `${...}` stay)."""
    i = text.find("${env:")
    if i >= 0:
        raise ValueError(f"unclosed reference {show(clip(text[i:], 40))}: write ${{env:NAME}} or "
                         "${env:NAME,default}")
    return text


def resolve_tree(value: Any, path: tuple, fail: Callable[[tuple, str], Exception],
                 templates: dict[tuple, str]) -> Any:
    """Resolve every string inside `value` (at key path `path`), containers in place; returns the
    (possibly new) value. Each resolved string's text as written goes to `templates` under its key
    path. `fail(path, message)` makes the error to raise. A loop, not recursion: data given in code
    may nest deeper than a file may (the schema refuses it later)."""
    def one(text: str, where: tuple) -> str:
        try:
            resolved = resolve_text(text)
        except ValueError as e:
            raise fail(where, str(e)) from None
        templates[where] = text  # written back as written (a literal `$${` too, so a reload reads the same)
        return resolved

    if isinstance(value, str):
        return one(value, path) if has_reference(value) else value
    stack = [(value, path)]
    while stack:
        node, here = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in list(items):
            if isinstance(v, str):
                if has_reference(v):
                    node[k] = one(v, here + (k,))
            elif isinstance(v, (dict, list)):
                stack.append((v, here + (k,)))
    return value


def written(template: str) -> str:
    """What nettrain writes for a value that came from `template`: the template itself, with a literal
    URI password masked (`user:***@`) but a password that is one reference kept as the reference."""
    refs: list[str] = []

    def hold(m: re.Match) -> str:
        if m.group(0) == "$${":
            return m.group(0)
        refs.append(m.group(0))
        return _HOLD.format(len(refs) - 1)

    held = _TOKEN.sub(hold, template)
    masked = masked_uri(held)
    for i, ref in enumerate(refs):
        token = _HOLD.format(i)
        if token in masked:
            masked = masked.replace(token, ref, 1)
            continue
        for before, after in ((f":{token}@", ":***@"), (f"={token}", "=***")):
            if before in held and after in masked:  # the whole password was this reference
                masked = masked.replace(after, before[0] + ref + before[len(token) + 1:], 1)
                break
    return masked


def write_back(data: dict, templates: Mapping[str, str]) -> None:
    """Put each template (dotted key path -> text as written) back into plain config data, as written."""
    for path, template in templates.items():
        _put(data, path, written(template))


def _put(data: Any, path: str, value: Any) -> None:
    """Set the dotted `path` of plain data where it leads to a value (a key with dots in it, such as a
    column name under data.columns, is matched whole)."""
    node, rest = data, path
    while True:
        if isinstance(node, list):
            part, _, after = rest.partition(".")
            key: Any = int(part) if part.isdigit() and int(part) < len(node) else None
        elif isinstance(node, dict):
            key = next((k for k in sorted(node, key=lambda k: -len(str(k)))
                        if rest == str(k) or rest.startswith(f"{k}.")), None)
            after = rest[len(str(key)) + 1:] if key is not None else ""
        else:
            return
        if key is None:
            return
        if not after:
            if not isinstance(node[key], (dict, list)):
                node[key] = value
            return
        node, rest = node[key], after
