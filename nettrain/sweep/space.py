"""The search space of a sweep: checked against the config, turned into Optuna distributions and
back into `--set` arguments.

Checking needs no Optuna: every range's ends (and middle) and every choice are applied to the
config through the same override path as `--set` and validated like any config, so an unknown
key or a value the config refuses ends the command (exit 2) before a trial runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import yaml

from nettrain.config import Config, load_config
from nettrain.config.sweep import Param, SweepConfig
from nettrain.config.template import possible_log_names
from nettrain.errors import ConfigError
from nettrain.report.metrics import metric_direction

MAX_GRID = 100_000  # points in a grid sampler's full grid


def set_arg(key: str, value: Any) -> str:
    """`model.layers.0.units=64`: a trial's value as a --set argument (the value as YAML)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    if text.endswith("\n...\n"):  # a plain scalar ends its document explicitly
        text = text[:-5]
    return f"{key}={text.strip()}"


def set_args(params: dict[str, Any]) -> list[str]:
    return [set_arg(k, v) for k, v in params.items()]


def probes(param: Param) -> list[Any]:
    """The values a check applies: every choice, or a range's ends and middle."""
    if param.kind == "choice":
        return list(param.choice or [])
    low, high = param.bounds
    if param.kind == "int":
        return sorted({int(low), int(high), int((low + high) // 2)})
    if param.kind == "log_uniform":
        return [float(low), float(math.sqrt(low * high)), float(high)]
    return [float(low), float((low + high) / 2), float(high)]


def sweep_of(cfg: Config) -> SweepConfig:
    if cfg.sweep is None:
        raise cfg.error("sweep", "no sweep section: nettrain sweep needs one, e.g.\n"
                        "sweep: {trials: 20, params: {training.optimizer.learning_rate: "
                        "{log_uniform: [1.0e-4, 1.0e-1]}}}")
    return cfg.sweep


def check_space(cfg: Config, config: str | Path, overrides: Iterable[str] = ()) -> None:
    """Every search value applied through --set and validated; the metric among what a run logs.

    A mistake names `sweep.params.<key>` in the config file, with the config's own message."""
    sweep = sweep_of(cfg)
    overrides = list(overrides)
    _check_distribute(cfg, sweep)
    for key, param in sweep.params.items():
        for value in probes(param):
            try:
                load_config(config, [*overrides, set_arg(key, value)])
            except ConfigError as e:
                raise cfg.error(f"sweep.params.{key}", f"the value {value!r} does not fit the config: "
                                f"{e.detail}") from None
    names = possible_log_names(cfg)
    if sweep.metric not in names:
        from nettrain.words import did_you_mean

        raise cfg.error("sweep.metric", f"a run of this config does not log {sweep.metric!r}; "
                        f"{did_you_mean(sweep.metric, names) or ''}it logs: {', '.join(sorted(names))}")
    if cfg.data.split.validation == 0 and cfg.data.split.folds <= 1 and sweep.metric.startswith("val_"):
        raise cfg.error("sweep.metric", f"{sweep.metric} needs validation rows, but data.split.validation is 0; "
                        "sweep on a training metric (loss) or give a validation fraction")
    if sweep.sampler == "grid":
        grid_space(sweep)


def _check_distribute(cfg: Config, sweep: SweepConfig) -> None:
    """multi_worker needs a cluster of processes started together for one run; a trial is one process
    that no worker joins, so every trial would fail: refused before any trial."""
    why = ("a sweep trial is one process that no other worker joins, so multi_worker cannot train it: "
           "sweep with runtime.distribute none or mirrored, then train best.yaml with multi_worker")
    if cfg.runtime.distribute == "multi_worker":
        raise cfg.error("runtime.distribute", f"multi_worker: {why}")
    param = sweep.params.get("runtime.distribute")
    if param is not None and "multi_worker" in probes(param):
        raise cfg.error("sweep.params.runtime.distribute", f"the choice multi_worker: {why}")


def direction(sweep: SweepConfig) -> str:
    """Optuna's direction: given, or inferred from the metric's name (the one rule of report.metrics)."""
    if sweep.direction != "auto":
        return sweep.direction
    return "maximize" if metric_direction(sweep.metric) == "max" else "minimize"


def grid_space(sweep: SweepConfig) -> dict[str, list[Any]]:
    """The grid sampler's points per key: choices, int ranges by their step, uniform ranges with a step."""
    space: dict[str, list[Any]] = {}
    total = 1
    for key, p in sweep.params.items():
        if p.kind == "choice":
            values = list(p.choice or [])
        elif p.kind == "int":
            step = int(p.step or 1)
            values = list(range(int(p.bounds[0]), int(p.bounds[1]) + 1, step))
        elif p.kind == "uniform" and p.step is not None:
            low, high = p.bounds
            n = int(math.floor((high - low) / p.step + 1e-9)) + 1
            values = [round(low + i * p.step, 12) for i in range(n)]
        else:
            raise ConfigError(f"sampler grid needs a finite grid: give {key} a choice, an int range or a "
                              f"uniform range with a step (got {p.kind})", path=f"sweep.params.{key}")
        total *= max(1, len(values))
        if total > MAX_GRID:
            raise ConfigError(f"the grid has more than {MAX_GRID:,} points; use sampler tpe or random",
                              path="sweep.sampler")
        space[key] = values
    return space


def distributions(sweep: SweepConfig) -> dict[str, Any]:
    """Optuna distributions by key (imports Optuna)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for key, p in sweep.params.items():
        if p.kind == "choice":
            out[key] = CategoricalDistribution(list(p.choice or []))
        elif p.kind == "int":
            out[key] = IntDistribution(int(p.bounds[0]), int(p.bounds[1]), log=p.log, step=int(p.step or 1))
        elif p.kind == "uniform":
            out[key] = FloatDistribution(float(p.bounds[0]), float(p.bounds[1]), step=p.step)
        else:
            out[key] = FloatDistribution(float(p.bounds[0]), float(p.bounds[1]), log=True)
    return out


def space_record(sweep: SweepConfig) -> dict[str, Any]:
    """What a study is pinned to (kept in its user attributes): a study with another one is refused."""
    return {"metric": sweep.metric, "direction": direction(sweep),
            "params": {k: p.model_dump(mode="json") for k, p in sorted(sweep.params.items())}}
