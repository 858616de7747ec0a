"""Small data makers shared by the end-to-end tests."""

from pathlib import Path

import numpy as np
import pandas as pd


def mixed_csv(path: Path, n: int = 240, seed: int = 0, missing: bool = False) -> Path:
    """Numeric + categorical features, a 3-class string target that depends on both."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n) * 3 + 10
    color = rng.choice(["red", "green", "blue"], size=n)
    score = x1 + (x2 - 10) / 3 + np.where(color == "red", 1.5, 0.0)
    label = np.where(score > 1, "high", np.where(score < -1, "low", "mid"))
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "x1": x1, "x2": x2, "color": color, "label": label})
    if missing:
        df.loc[::17, "x2"] = np.nan
    df.to_csv(path, index=False)
    return path


def regression_csv(path: Path, n: int = 200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 3 + rng.normal(scale=0.1, size=n)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}).to_csv(path, index=False)
    return path
