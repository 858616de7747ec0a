"""Learning-rate schedules from `callbacks.lr_schedule`.

Per-epoch rules (step_decay, reduce_on_plateau) are callbacks that set the optimizer's rate at
epoch boundaries; per-step curves (exponential, cosine, warmup_cosine) are Keras
LearningRateSchedule objects driven by the optimizer's step counter, so they continue exactly
after a checkpoint restores that counter.
"""

from __future__ import annotations

import keras

from nettrain.config.schema import Config
from nettrain.training.callbacks import StepDecay


def make_schedule(cfg: Config, initial: float, steps_per_epoch: int):
    """Returns (learning_rate for the optimizer or None, callback or None)."""
    s = cfg.callbacks.lr_schedule
    if s is None:
        return None, None
    total = cfg.training.epochs * steps_per_epoch
    if s.type == "step_decay":
        return None, StepDecay(initial, s.drop, s.every)
    if s.type == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(initial, s.decay_steps, s.decay_rate,
                                                           staircase=s.staircase), None
    if s.type == "cosine":
        return keras.optimizers.schedules.CosineDecay(initial, s.decay_steps or total, alpha=s.alpha), None
    if s.type == "warmup_cosine":
        warmup = s.warmup_epochs * steps_per_epoch
        if warmup >= total:
            raise cfg.error("callbacks.lr_schedule.warmup_epochs",
                            f"warm-up of {s.warmup_epochs} epochs leaves no epochs to decay over "
                            f"(training.epochs is {cfg.training.epochs})")
        return keras.optimizers.schedules.CosineDecay(
            s.warmup_start, s.decay_steps or max(1, total - warmup), alpha=s.alpha,
            warmup_target=initial, warmup_steps=warmup), None
    if s.type == "reduce_on_plateau":
        return None, keras.callbacks.ReduceLROnPlateau(monitor=s.monitor, factor=s.factor, patience=s.patience,
                                                       min_lr=s.min_lr, min_delta=s.min_delta,
                                                       cooldown=s.cooldown, mode=s.mode)
    raise cfg.error("callbacks.lr_schedule.type", f"unknown schedule {s.type!r}")
