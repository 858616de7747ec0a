"""The `callbacks` section of the config: early stopping, checkpoints, the learning-rate schedule,
TensorBoard, gradient statistics (`training/callbacks.py` and `training/schedules.py` make them).

One pydantic model per mapping, unknown keys refused (`section.py`); the root `Config` in `schema.py`
holds it. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator

from nettrain.config.args import MAX_EPOCHS, MAX_INT
from nettrain.config.section import Section, count_or_word
from nettrain.config.template import check_template


class EarlyStoppingConfig(Section):
    monitor: str = "val_loss"
    patience: int = Field(0, ge=0, le=MAX_INT)
    min_delta: float = Field(0.0, ge=0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = False
    baseline: float | None = None
    start_from_epoch: int = Field(0, ge=0, le=MAX_INT)


class CheckpointConfig(Section):
    enabled: bool = True
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    save_best_only: bool = False
    filename: str = "epoch{epoch:03d}.h5"
    keep: int | None = Field(5, ge=1, le=MAX_INT,
                             description="how many templated files to keep (newest); null keeps all")

    @field_validator("filename")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        # syntax and sample renderings here; the fields against the names the run can log in loader.py
        return check_template(v)


class StepDecay(Section):
    type: Literal["step_decay"]
    drop: float = Field(0.5, gt=0, le=1)
    every: int = Field(10, ge=1, le=MAX_INT)


class ExponentialDecay(Section):
    type: Literal["exponential"]
    decay_rate: float = Field(0.96, gt=0)
    decay_steps: int = Field(1000, ge=1, le=MAX_INT, description="optimizer steps (batches), as in Keras")
    staircase: bool = False


class CosineDecay(Section):
    type: Literal["cosine"]
    decay_steps: int | None = Field(None, ge=1, le=MAX_INT, description="optimizer steps; default: the whole run")
    alpha: float = Field(0.0, ge=0, le=1)


class WarmupCosine(Section):
    type: Literal["warmup_cosine"]
    warmup_epochs: int = Field(1, ge=0, le=MAX_EPOCHS)
    warmup_start: float = Field(0.0, ge=0, description="learning rate at the first step of warm-up")
    decay_steps: int | None = Field(None, ge=1, le=MAX_INT,
                                    description="optimizer steps after warm-up; default: the rest of the run")
    alpha: float = Field(0.0, ge=0, le=1)


class ReduceOnPlateau(Section):
    type: Literal["reduce_on_plateau"]
    monitor: str = "val_loss"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(10, ge=0, le=MAX_INT)
    min_lr: float = Field(0.0, ge=0)
    min_delta: float = Field(1e-4, ge=0)
    cooldown: int = Field(0, ge=0, le=MAX_INT)
    mode: Literal["auto", "min", "max"] = "auto"


LRSchedule = Annotated[
    Union[StepDecay, ExponentialDecay, CosineDecay, WarmupCosine, ReduceOnPlateau],
    Field(discriminator="type"),
]


class TensorBoardConfig(Section):
    histogram_freq: int = Field(0, ge=0, le=MAX_INT)
    update_freq: Literal["epoch", "batch"] | int = "epoch"
    write_graph: bool = False

    @field_validator("update_freq")
    @classmethod
    def _batches(cls, v):
        return count_or_word(v, "epoch, batch", " (batches)")


class GradientStatsConfig(Section):
    every: int = Field(1, ge=1, le=MAX_INT, description="measure at the first epoch, then every N epochs")


class CallbacksConfig(Section):
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    lr_schedule: LRSchedule | None = None
    tensorboard: TensorBoardConfig | None = None
    terminate_on_nan: bool = True
    gradient_stats: GradientStatsConfig | None = Field(
        None, description="per-layer gradient norms on a fixed training batch into metrics.csv, TensorBoard and "
        "plots/gradients.png")

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _off(cls, v):
        if v is False or v is None:
            return {"enabled": False}
        if v is True:
            return {}
        return v


def on_training_rows(callbacks: CallbacksConfig) -> CallbacksConfig:
    """The callbacks of a session that trains on every non-test row (a k-fold run's refit, its retrain):
    no early stopping, and what monitored a validation quantity (there are no validation rows)
    monitoring its training counterpart. A copy; `callbacks` is left as it is."""
    new = callbacks.model_copy(deep=True)
    new.early_stopping = None
    ck = new.checkpoint
    if ck.monitor.startswith("val_"):
        ck.monitor = ck.monitor[len("val_"):]
    if "val_" in ck.filename:
        ck.filename = type(ck).model_fields["filename"].default
    sched = new.lr_schedule
    if getattr(sched, "type", None) == "reduce_on_plateau" and sched.monitor.startswith("val_"):
        sched.monitor = sched.monitor[len("val_"):]
    return new

