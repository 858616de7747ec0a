"""Words for one-line messages that every layer of nettrain shares: "did you mean", text cut short,
the first line of an exception, a URI with its password masked.

No imports from nettrain: config/ and data/ (and anything else) can use it without a cycle.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Iterable

# difflib is quadratic in the length of what it compares: longer words and choices are never matched.
MAX_WORD = 200


def did_you_mean(word: str, choices: Iterable) -> str:
    """"did you mean 'x'? " for the closest choice, or "".

    Exact spelling first; then, as a fallback, ignoring case, '_' and spaces (`learningrate`
    finds `learning_rate`, `Batch Size` finds `batch_size`). Choices are compared as text.
    """
    word = str(word)
    if len(word) > MAX_WORD:
        return ""
    names = [str(c) for c in choices]
    names = [c for c in names if len(c) <= MAX_WORD]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close:
        folded = {_fold(c): c for c in names}
        hit = difflib.get_close_matches(_fold(word), list(folded), n=1, cutoff=0.6)
        close = [folded[h] for h in hit]
    return f"did you mean '{close[0]}'? " if close else ""


def _fold(text: str) -> str:
    return text.lower().replace("_", "").replace(" ", "")


# A URI's password: what nettrain shows and stores has `user:***@` and `?password=***`.
_URI_NETLOC = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31}://)([^/?#\s]*)")  # linear: a bounded scheme
_SECRET_QUERY = re.compile(r"(?i)([?&;](?:password|passwd|pwd|token|secret|api_key|access_token)=)[^&#;\s]*")


def masked_uri(text: str) -> str:
    """`text` with the password of every URI in it (`//user:PASSWORD@host`, `?password=...`) as `***`:
    what nettrain shows and stores; the real URI stays in memory only."""
    def one(m: re.Match) -> str:
        userinfo, at, host = m.group(2).rpartition("@")
        if not at or ":" not in userinfo:
            return m.group(0)
        return f"{m.group(1)}{userinfo.split(':', 1)[0]}:***@{host}"

    return _SECRET_QUERY.sub(r"\1***", _URI_NETLOC.sub(one, text))


# ------------------------------------------------------------------------------ short text

def clip(text: str, limit: int = 40) -> str:
    """`text` when it has at most `limit` characters, else its first `limit - 3` and "..." (`limit` in all)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(value: Any, limit: int | None = None) -> str:
    """`str(value)` with every run of whitespace (line breaks included) as one space, ends trimmed;
    clipped to `limit` characters when one is given. An empty message stays empty."""
    text = " ".join(str(value).split())
    return text if limit is None else clip(text, limit)


def first_line(value: BaseException | str, limit: int | None = None) -> str:
    """The first line of a message (an exception's or a text's), the whole message trimmed first; an
    exception whose message is empty gives its class name (a text gives ""). Clipped to `limit`
    characters when one is given."""
    text = str(value).strip()
    if not text:
        return type(value).__name__ if isinstance(value, BaseException) else ""
    line = text.splitlines()[0]
    return line if limit is None else clip(line, limit)


# ------------------------------------------------------------------------------ names in messages

_CONTROL = {i: f"\\x{i:02x}" for i in range(32)} | {0x7F: "\\x7f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def show_name(name: Any, limit: int = 60) -> str:
    """A column name (or value) for a one-line message: control characters escaped, long text cut."""
    text = str(name).translate(_CONTROL)
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


def list_names(names: Iterable, limit: int = 20, quote: bool = False) -> str:
    """`a, b, c` (quoted with `quote`), at most `limit` names and then `, ... (N in all)`."""
    names = list(names)
    shown = [f"'{show_name(n)}'" if quote else show_name(n) for n in names[:limit]]
    text = ", ".join(shown)
    return text + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def reason(e: BaseException, *, all_lines: bool = False) -> str:
    """Why something failed, for a one-line message: the exception's first line (with `all_lines`, its
    whole message on one line), control characters escaped, at most 200 characters; its type when
    the message is empty."""
    text = one_line(e) if all_lines else first_line(e)
    return show_name(text, 200) if str(e).strip() else type(e).__name__


def ascii_name(text: str) -> tuple[str, str]:
    """(`text` with every character but ASCII letters, digits and `_` as `_`, a 6-hex-digit hash of
    `text`): the parts of a name made for a runtime that takes no other characters, kept apart from
    alike names by the hash (`größe` and `gr__e`)."""
    import hashlib

    plain = "".join(c if (c.isascii() and c.isalnum()) or c == "_" else "_" for c in text)
    return plain, hashlib.sha256(text.encode()).hexdigest()[:6]
