"""The bases of the config's section models (`schema.py`, `data.py`, `callbacks.py`): a section refuses
unknown keys; a mapping `WithArguments` keeps them as arguments passed on as written.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from nettrain.config.args import MAX_INT, show


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class WithArguments(BaseModel):
    """A mapping whose keys other than the fields are arguments passed on as written (`kwargs()`)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def count_or_word(v: Any, words: str, unit: str = "") -> Any:
    """A field that takes a word or a count: `v` when it is no integer or one in [1, MAX_INT]."""
    if isinstance(v, int) and not 1 <= v <= MAX_INT:
        raise ValueError(f"must be {words} or an integer in [1, {MAX_INT}]{unit}, got {show(v)}")
    return v
