"""Words for one-line messages that every layer of nettrain shares: "did you mean".

No imports from nettrain: config/ and data/ (and anything else) can use it without a cycle.
"""

from __future__ import annotations

import difflib
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
