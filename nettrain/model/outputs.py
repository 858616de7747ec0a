"""What a model's output head means: class indices from its raw outputs (numpy only).

Shared by training (the confusion-matrix plot), `evaluate` and `predict`, so the three agree on
which class a row gets.
"""

from __future__ import annotations

import numpy as np


def predicted_classes(pred: np.ndarray, mode: str, threshold: float = 0.5) -> np.ndarray:
    """Class indices from model outputs; binary heads compare with `threshold` (0 for tanh/hinge)."""
    if mode == "binary":
        return (pred[:, 0] > threshold).astype(np.int64)
    return np.argmax(pred, axis=1)
