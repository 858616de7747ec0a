"""`evaluate --fail-under` gates: which way is better comes from the one rule, `metric_direction`."""

import pytest

from nettrain.report.gates import Gate, higher_is_better
from nettrain.report.metrics import metric_direction


@pytest.mark.parametrize("metric, direction, relation", [
    ("accuracy", "max", ">="), ("f1_macro", "max", ">="), ("r2", "max", ">="), ("auc", "max", ">="),
    ("loss", "min", "<="), ("mae", "min", "<="), ("rmse", "min", "<="), ("huber", "min", "<="),
    ("sparse_categorical_crossentropy", "min", "<="), ("val_loss", "min", "<="),
    ("my_custom_score", "max", ">="),  # unknown names: the documented lower-bound gate
])
def test_gate_direction_says_which_way_is_better(metric, direction, relation):
    gate = Gate(metric, 0.5, 0.7)
    out = gate.to_dict()
    assert (out["direction"], out["relation"]) == (direction, relation)
    assert gate.higher_is_better is (direction == "max")
    assert out["passed"] is (0.7 >= 0.5 if direction == "max" else 0.7 <= 0.5)


@pytest.mark.parametrize("metric", ["accuracy", "loss", "val_mse", "precision_macro", "recall_weighted",
                                    "binary_crossentropy", "hinge", "kl_divergence", "false_positives",
                                    "true_positives", "mean_absolute_percentage_error", "huber", "logcosh"])
def test_the_gate_and_the_checkpoint_agree(metric):
    assert higher_is_better(metric) is (metric_direction(metric) == "max")


def test_a_missed_or_non_finite_value_fails_the_gate():
    assert not Gate("accuracy", 0.9, 0.8).passed
    assert not Gate("loss", 0.1, 0.2).passed
    assert not Gate("accuracy", 0.9, float("nan")).passed
    assert not Gate("accuracy", 0.9, None).passed
