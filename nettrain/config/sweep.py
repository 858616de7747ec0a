"""The `sweep` section: what `nettrain sweep` searches, how many trials, which metric (no Optuna here).

Every search-space entry is a dotted key exactly as `--set` takes it, with one distribution:

    training.optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}
    model.layers.0.units: {choice: [32, 64, 128]}
    model.layers.1.rate: {uniform: [0.0, 0.5]}
    model.layers.2.units: {int: [16, 128], step: 16}

Whether a key exists in the config, and whether a value is allowed there, is the config's own
business: `nettrain.sweep.space.check_space` applies each range's ends and choices through the
`--set` path before any trial runs.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_serializer, model_validator

from nettrain.config.args import MAX_INT, show
from nettrain.words import masked_uri

MAX_TRIALS = 100_000
MAX_CHOICES = 1_000
DISTRIBUTIONS = ("choice", "uniform", "log_uniform", "int")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|[0-9]{1,6}))*")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Param(BaseModel):
    """One search dimension: exactly one of `choice`, `uniform`, `log_uniform`, `int`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)
    choice: list[Any] | None = Field(None, description="values to pick from (numbers, strings, booleans, null)")
    uniform: list[float] | None = Field(None, description="[low, high]: a float drawn uniformly")
    log_uniform: list[float] | None = Field(None, description="[low, high], low > 0: a float drawn on a log scale")
    integer: list[int] | None = Field(None, alias="int", description="[low, high]: an integer (both ends included)")
    step: float | None = Field(None, gt=0, description="with int or uniform: the grid spacing")
    log: bool = Field(False, description="with int: draw on a log scale (low >= 1)")

    @model_serializer(mode="wrap")
    def _given_only(self, handler):  # config.yaml shows the spec as written: {int: [16, 128], step: 16}
        return {k: v for k, v in handler(self).items() if v is not None and not (k == "log" and v is False)}

    @property
    def kind(self) -> str:
        return next(k for k in DISTRIBUTIONS if getattr(self, "integer" if k == "int" else k) is not None)

    @property
    def bounds(self) -> tuple[Any, Any]:
        values = getattr(self, "integer" if self.kind == "int" else self.kind)
        return values[0], values[1]

    @field_validator("choice")
    @classmethod
    def _choices(cls, v):
        if v is None:
            return v
        if not v:
            raise ValueError("choice: give at least one value")
        if len(v) > MAX_CHOICES:
            raise ValueError(f"choice: at most {MAX_CHOICES} values, got {len(v)}")
        for item in v:
            if item is not None and not isinstance(item, (bool, int, float, str)):
                raise ValueError(f"choice: values must be numbers, strings, booleans or null (Optuna stores them "
                                 f"as such), got {show(item)}; sweep a list-valued key one item at a time")
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"choice: {show(item)} is not a finite number")
        if len({repr(i) for i in v}) != len(v):
            raise ValueError(f"choice: a value is listed twice in {show(v)}")
        return v

    @model_validator(mode="after")
    def _one(self) -> "Param":
        given = [k for k in DISTRIBUTIONS if getattr(self, "integer" if k == "int" else k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DISTRIBUTIONS)}, got "
                             f"{', '.join(given) if given else 'none'}; e.g. {{log_uniform: [1.0e-4, 1.0e-1]}}")
        kind = given[0]
        if kind != "choice":
            values = getattr(self, "integer" if kind == "int" else kind)
            if len(values) != 2:
                raise ValueError(f"{kind}: expected [low, high], got {show(values)}")
            low, high = values
            if not (_number(low) and _number(high)):
                raise ValueError(f"{kind}: low and high must be finite numbers, got {show(values)}")
            if not low < high:
                raise ValueError(f"{kind}: low must be below high, got {show(values)}")
            if abs(low) > MAX_INT or abs(high) > MAX_INT:
                raise ValueError(f"{kind}: the range {show(values)} is too wide (at most {MAX_INT:,} in size)")
            if kind == "log_uniform" and low <= 0:
                raise ValueError(f"log_uniform: low must be > 0 (a log scale), got {show(values)}")
        if self.step is not None:
            if kind not in ("int", "uniform"):
                raise ValueError(f"step goes with int or uniform, not with {kind}")
            low, high = self.bounds
            if kind == "int" and self.step != int(self.step):
                raise ValueError(f"step: an int range needs a whole step, got {show(self.step)}")
            if self.step > high - low:
                raise ValueError(f"step {show(self.step)} is larger than the range {show([low, high])}")
        if self.log:
            if kind != "int":
                raise ValueError(f"log: true goes with int (use log_uniform for floats), not with {kind}")
            if self.bounds[0] < 1:
                raise ValueError(f"int with log: true needs low >= 1, got {show(list(self.bounds))}")
            if self.step not in (None, 1):
                raise ValueError("int with log: true takes no step")
        return self


class MedianPrunerOptions(BaseModel):
    """`sweep.pruner: {median: {...}}`: Optuna's MedianPruner, with a warm-up in epochs."""

    model_config = ConfigDict(extra="forbid")
    warmup_epochs: int | None = Field(None, ge=1, le=MAX_INT, description="epochs every trial runs before the "
                                      "pruner may stop it (at the end of epoch warmup_epochs + 1 at the earliest); "
                                      "default: a quarter of training.epochs, at least 1")
    startup_trials: int = Field(3, ge=0, le=MAX_TRIALS, description="finished trials before the pruner stops any")


class HyperbandPrunerOptions(BaseModel):
    """`sweep.pruner: {hyperband: {...}}`: Optuna's HyperbandPruner over min_epochs .. training.epochs."""

    model_config = ConfigDict(extra="forbid")
    min_epochs: int | None = Field(None, ge=2, le=MAX_INT, description="the first rung: every trial runs at least "
                                   "this many epochs; default: a quarter of training.epochs, at least 2")
    reduction_factor: int = Field(3, ge=2, le=100, description="Hyperband's reduction factor")


class PrunerSpec(BaseModel):
    """One of `median`, `hyperband`, `none` with its options (`{median: {warmup_epochs: 5}}`)."""

    model_config = ConfigDict(extra="forbid")
    median: MedianPrunerOptions | None = None
    hyperband: HyperbandPrunerOptions | None = None
    none: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _given_only(self, handler):  # config.yaml shows the pruner as written: {median: {warmup_epochs: 5}}
        return {k: v for k, v in handler(self).items() if v is not None}

    @model_validator(mode="after")
    def _one(self) -> "PrunerSpec":
        given = [k for k in ("median", "hyperband", "none") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of median, hyperband, none, got {', '.join(given) or 'none'}; "
                             "e.g. {median: {warmup_epochs: 5, startup_trials: 3}}")
        if self.none:
            raise ValueError("none takes no options")
        return self

    @property
    def name(self) -> str:
        return next(k for k in ("median", "hyperband", "none") if getattr(self, k) is not None)


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    trials: int = Field(20, ge=1, le=MAX_TRIALS, description="total trials across all workers")
    metric: str = Field("val_loss", description="a column of metrics.csv (val_loss, val_accuracy, loss, ...)")
    direction: Literal["auto", "minimize", "maximize"] = Field(
        "auto", description="auto: minimize loss/error-like metrics, maximize accuracy/auc-like ones")
    sampler: Literal["tpe", "random", "grid", "cmaes"] = Field("tpe", description="Optuna's sampler, seeded by seed")
    pruner: Literal["median", "hyperband", "none"] | PrunerSpec = Field(
        "median", description="stops unpromising trials; the metric is reported every epoch. A name, or one name "
        "with its options: {median: {warmup_epochs: N, startup_trials: M}}, {hyperband: {min_epochs: N}}")
    timeout: float | None = Field(None, gt=0, description="seconds for this worker (no new trial starts after)")
    storage: str | None = Field(None, description="Optuna storage URL; default sqlite:///<output.dir>/<name>/"
                                "sweep/study.db")
    params: dict[str, Param] = Field(..., description="dotted keys as --set takes them, each with one "
                                     "distribution")

    @property
    def pruner_name(self) -> str:
        """`median`, `hyperband` or `none`, however `pruner` was written."""
        return self.pruner if isinstance(self.pruner, str) else self.pruner.name

    @property
    def pruner_options(self) -> "MedianPrunerOptions | HyperbandPrunerOptions | None":
        """The pruner's options (their defaults when it was given by name; None for none)."""
        name = self.pruner_name
        given = None if isinstance(self.pruner, str) else getattr(self.pruner, name)
        if name == "median":
            return given or MedianPrunerOptions()
        if name == "hyperband":
            return given or HyperbandPrunerOptions()
        return None

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        v = v.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError(f"expected a metric name of metrics.csv such as val_loss or val_accuracy, got {show(v)}")
        return v

    @field_validator("storage")
    @classmethod
    def _storage(cls, v):
        if v is not None and not re.fullmatch(r"[a-z][a-z0-9+]*://.*", v, flags=re.S):
            raise ValueError(f"expected an Optuna storage URL such as sqlite:///study.db or "
                             f"postgresql+psycopg://user@host/db, got {show(masked_uri(v))}")
        return v

    @field_serializer("storage")
    def _no_password(self, v: str | None) -> str | None:
        """config.yaml of every trial and best.yaml get the URL with its password masked (the sweep and its
        trial processes use the real one, from the config file or --storage)."""
        return masked_uri(v) if v else v

    @field_validator("params")
    @classmethod
    def _keys(cls, v: dict[str, Param]) -> dict[str, Param]:
        if not v:
            raise ValueError("give at least one key to search, e.g. training.optimizer.learning_rate: "
                             "{log_uniform: [1.0e-4, 1.0e-1]}")
        for key in v:
            if not _KEY.fullmatch(key):
                raise ValueError(f"{show(key)} is not a dotted key path as --set takes it "
                                 f"(e.g. model.layers.0.units)")
            if key == "sweep" or key.startswith("sweep.") or key in ("seed", "name") or key.startswith("output."):
                raise ValueError(f"{show(key)} cannot be searched: a sweep owns its seed, name and output "
                                 f"folders; search the model, training, preprocessing or data keys")
        return v
