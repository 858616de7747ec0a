"""`--fail-under METRIC=VALUE` gates: parsed, named, checked (no TensorFlow, pandas or pyarrow here).

Used by `evaluate` on a run's metrics and by `sweep` on its best trial; which way a metric is
better comes from `report.metrics.metric_direction`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from nettrain.errors import UsageError
from nettrain.report.metrics import metric_direction
from nettrain.store import atomic


@dataclass
class Gate:
    metric: str
    bound: float
    value: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric)

    @property
    def relation(self) -> str:
        return ">=" if self.higher_is_better else "<="

    @property
    def passed(self) -> bool:
        if self.value is None or not math.isfinite(self.value):
            return False
        return self.value >= self.bound if self.higher_is_better else self.value <= self.bound

    def describe(self) -> str:
        """`accuracy 0.8100 >= 0.99 required: MISSED`."""
        from nettrain.report.tables import format_value

        return (f"{self.metric} {format_value(self.value)} {self.relation} {self.bound:g} required: "
                f"{'met' if self.passed else 'MISSED'}")

    def to_dict(self) -> dict[str, Any]:
        """`direction` is which way is better (`max`: higher); `relation` how the value must compare to the bound."""
        return {"metric": self.metric, "value": atomic.finite(self.value), "bound": self.bound,
                "direction": "max" if self.higher_is_better else "min", "relation": self.relation,
                "passed": self.passed}


def higher_is_better(metric: str) -> bool:
    """The one rule of `report.metrics.metric_direction`; a name it does not know is a score, so its
    gate is the documented lower bound."""
    return metric_direction(metric, default="max") == "max"


def parse_gates(specs: Iterable[str]) -> list[Gate]:
    """`METRIC=VALUE` strings -> gates; malformed ones are usage errors (exit 2)."""
    gates = []
    for spec in specs:
        name, eq, value = str(spec).partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name or not value:
            raise UsageError(f"--fail-under {spec!r}: expected METRIC=VALUE, e.g. --fail-under accuracy=0.9")
        try:
            bound = float(value)
        except ValueError:
            raise UsageError(f"--fail-under {spec!r}: {value!r} is not a number") from None
        if not math.isfinite(bound):
            raise UsageError(f"--fail-under {spec!r}: the bound must be a finite number")
        gates.append(Gate(name, bound))
    return gates


def check_gate_names(gates: list[Gate], metrics: dict[str, float]) -> None:
    from nettrain.words import did_you_mean

    for gate in gates:
        if gate.metric not in metrics:
            hint = did_you_mean(gate.metric, metrics)
            if not hint:
                close = [m for m in metrics if m.startswith(gate.metric.lower() + "_")]
                hint = f"did you mean '{close[0]}'? " if close else ""
            raise UsageError(f"--fail-under: unknown metric '{gate.metric}'; {hint}available: {', '.join(metrics)}")
