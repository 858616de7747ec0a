"""run.json as nettrain reads it back: `RunRecord`, its fields typed, and `read_record`.

`rundir.RunRecord` writes run.json while a run trains (and its `load` refuses a damaged one for the
commands that continue a run); this is what the readers get: `evaluate`, TARGET resolution, `retrain`,
the k-fold refit. The writers are `training.runfiles.run_fields` (every run), `training.kfold` (`folds`,
`folds_done`, `refit` of a k-fold parent; `fold`, `parent` of each fold), `training.fit` at each epoch
and at the end, `lifecycle.resume` and `lifecycle.retrain`.

Reading is forgiving, as nettrain always read run.json: keys it does not know pass through (a
run.json of an older or newer nettrain loads), and a value of another type than its field's (a
hand-edited file) reads as absent, never as an error here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional

from annotated_types import Ge
from pydantic import BaseModel, ConfigDict, Strict, ValidationError, field_validator

from nettrain.store.rundir import RUN

Count = Annotated[int, Strict(), Ge(0)]   # a whole number >= 0 (never a bool, never "3")
Text = Annotated[str, Strict()]


class _Forgiving(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    @field_validator("*", mode="wrap")
    @classmethod
    def _absent_when_odd(cls, value: Any, handler: Any) -> Any:
        """A value that does not fit its field reads as absent (None)."""
        try:
            return handler(value)
        except ValidationError:
            return None


class RunData(_Forgiving):
    """run.json `data`: where the rows came from and how they were split."""

    source: Any = None                              # a path, or a generator's name
    fingerprint: Optional[Text] = None              # of the rows and their splits (`Dataset.fingerprint`)
    rows: Optional[dict[str, Any]] = None           # rows per split
    stream: Optional[Annotated[bool, Strict()]] = None  # trained on streamed data (None: not recorded)


class RefitPlan(_Forgiving):
    """A k-fold parent's run.json `refit`: what its refit model trains (`training.kfold.refit_plan`)."""

    epochs: Optional[Count] = None                  # the mean of the folds' best epochs
    fold_best_epochs: Optional[list[Any]] = None
    monitor: Optional[Text] = None                  # what chose the folds' best epochs
    rows: Optional[Count] = None                    # the non-test rows it trains on
    members: Optional[Count] = None                 # refit: ensemble: the fold models it averages


class RunRecord(_Forgiving):
    """The fields of run.json that nettrain reads (every other key is kept, see `model_extra`)."""

    name: Optional[Text] = None
    status: Optional[Text] = None                   # running, completed, failed, interrupted, pruned
    task: Optional[Text] = None
    started: Optional[Text] = None
    ended: Optional[Text] = None
    epochs: Optional[Count] = None                  # planned (a refit: its own epochs)
    epochs_done: Optional[Count] = None
    best_epoch: Optional[Count] = None
    stopped_epoch: Optional[Count] = None
    monitor: Optional[Text] = None                  # what chose the best epoch
    data: Optional[RunData] = None
    final_metrics: Optional[dict[str, Any]] = None
    folds: Optional[Count] = None                   # a k-fold parent: how many folds
    folds_done: Optional[Count] = None
    refit: Optional[RefitPlan] = None               # a k-fold parent with data.split.refit, once planned
    fold: Optional[Count] = None                    # a fold of a k-fold run: its number (from 1)
    parent: Optional[Text] = None                   # a fold: its k-fold run; a retrain's new run: where it came from
    resumed: Optional[list[Any]] = None
    retrains: Optional[list[Any]] = None
    notes: Optional[list[Any]] = None

    @classmethod
    def of(cls, content: Mapping[str, Any]) -> "RunRecord":
        """The record of run.json's content (a mapping)."""
        return cls.model_validate(dict(content))

    @property
    def is_kfold_parent(self) -> bool:
        """A k-fold run's own record: it names more than one fold and is no fold itself (the one rule)."""
        return self.folds is not None and self.folds > 1 and self.fold is None

    @property
    def is_fold(self) -> bool:
        return self.fold is not None

    @property
    def stream(self) -> bool | None:
        """Whether the run trained on streamed data (`data.stream`); None when not recorded."""
        return self.data.stream if self.data is not None else None

    @property
    def fingerprint(self) -> str | None:
        """`data.fingerprint`, or None when there is none ("" counts as none)."""
        return (self.data.fingerprint or None) if self.data is not None else None


def read_record(run_dir: str | Path | None) -> RunRecord | None:
    """The run.json of `run_dir`; None when there is no run directory, no run.json, or one that cannot be
    read or is no JSON object (readers then go on without it, as without a record)."""
    if run_dir is None:
        return None
    try:
        content = json.loads((Path(run_dir) / RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # missing, unreadable, not UTF-8, not JSON
        return None
    return RunRecord.of(content) if isinstance(content, dict) else None
