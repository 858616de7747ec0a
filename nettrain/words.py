"""Words for one-line messages that every layer of nettrain shares: "did you mean".

No imports from nettrain: config/ and data/ (and anything else) can use it without a cycle.
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable

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
