"""`preprocessing.numeric`: the numeric input's preprocessing layers (standard, minmax, quantile,
piecewise, auto), built from built-in Keras layers only, their fixed weights made from the training
rows' statistics (`data.stats.NumericStats`), so a saved `.h5` loads with plain Keras.
"""

from __future__ import annotations

import numpy as np

import keras

from nettrain.data.stats import PIECEWISE_MAX_COLUMNS, NumericStats, heavy_tailed, normal_quantile


# preprocessing.numeric quantile: each column through its training values' distribution function,
# interpolated between QUANTILE_BINS + 1 quantiles; piecewise: PIECEWISE_BINS bins per column.
QUANTILE_BINS = 32
PIECEWISE_BINS = 16


def numeric_scaling(mode: str, numeric: NumericStats, names: list[str] | None = None,
                     notes: list[str] | None = None):
    """The numeric input's preprocessing (`preprocessing.numeric`), built-in Keras layers only, their
    fitted numbers in their config (Normalization) or in fixed, non-trainable weights (EinsumDense),
    so a saved .h5 carries them and loads in Keras's safe mode:

    - standard / minmax: one Normalization layer;
    - piecewise: each column's standardized value, then its piecewise-linear encoding (Gorishniy et
      al. 2022): for the column's bin edges b_0 < ... < b_T (quantiles of its training values,
      duplicates removed), feature t = clip((x - b_{t-1}) / (b_t - b_{t-1}), 0, 1), as a fixed
      EinsumDense (one slope and offset per column and bin) and ReLU(max_value=1);
    - quantile: the same encoding over finer bins, summed by a second fixed EinsumDense with the
      weights that interpolate the column's normal scores: Phi^-1 of its empirical distribution
      function, piecewise linear between its quantiles, clipped at the training range (about -2.2
      to 2.2 on QUANTILE_BINS = 32): heavy tails and outliers cannot dominate;
    - auto: piecewise, where each heavy-tailed or skewed column (`data.stats.heavy_tailed`) is
      represented by its quantile normal score (over the same PIECEWISE_BINS bins) instead of its
      standardized value (an outlier's z-score is unbounded; its score is not); standard above
      `data.stats.PIECEWISE_MAX_COLUMNS` numeric columns.

    The encoding works on the standardized values (edges standardized alike, in float32 as the
    layer computes), which keeps its float32 arithmetic accurate for large raw values.
    """
    if mode in ("standard", "minmax"):
        return _normalization(mode, numeric)
    names = names or [f"column {j}" for j in range(numeric.columns)]
    notes = notes if notes is not None else []
    if mode == "auto" and numeric.columns > PIECEWISE_MAX_COLUMNS:  # one feature a column, no (rows, columns, bins)
        notes.append(f"preprocessing.numeric: auto: {numeric.columns} numeric columns, more than "
                     f"{PIECEWISE_MAX_COLUMNS}: the standardized value of each, without piecewise-linear "
                     "encoding or quantile scores (preprocessing.numeric: standard)")
        return _normalization("standard", numeric)
    if mode == "auto":
        heavy = heavy_tailed(numeric)
        chosen = [n for n, h in zip(names, heavy) if h]
        if not chosen:
            notes.append(f"preprocessing.numeric: auto: piecewise-linear encoding ({PIECEWISE_BINS} bins) and the "
                         "standardized value of every numeric column (none is heavy-tailed or skewed)")
            return _piecewise(numeric)
        rest = len(names) - len(chosen)
        notes.append(f"preprocessing.numeric: auto: piecewise-linear encoding ({PIECEWISE_BINS} bins) of every "
                     f"numeric column, with the quantile normal score of {len(chosen)} heavy-tailed or skewed "
                     f"column{'s' if len(chosen) > 1 else ''} ({_names(chosen)})"
                     + (f" and the standardized value of the other {rest}" if rest else ""))
        return _quantile_map(numeric, standard=~heavy, bins=PIECEWISE_BINS, encoding=True)
    if mode == "quantile":
        return _quantile_map(numeric, standard=np.zeros(numeric.columns, dtype=bool))
    return _piecewise(numeric)


def _names(names: list[str], most: int = 6) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _normalization(mode: str, numeric: NumericStats, **kwargs) -> keras.layers.Layer:
    if mode == "standard":
        mean, var = numeric.mean, numeric.variance
    else:  # minmax as (x - min) / (max - min): Normalization with mean=min, variance=range^2
        lo, hi = numeric.min, numeric.max
        mean, var = lo, (hi - lo) ** 2
    var = np.where(var > 0, var, 1.0)  # constant columns pass through centred, not divided by 0
    mean = np.where(np.isfinite(mean), mean, 0.0)  # a column without values in the training rows
    kwargs.setdefault("name", f"scale_{mode}")
    return keras.layers.Normalization(mean=mean.tolist(), variance=var.tolist(), **kwargs)


def _standardized(numeric: NumericStats) -> tuple[np.ndarray, np.ndarray]:
    """The mean and variance the standardizing Normalization is given (float64 lists' values); a
    column without values: 0 and 1."""
    mean = np.where(np.isfinite(numeric.mean), numeric.mean, 0.0)
    var = numeric.variance
    return mean, np.where(np.isfinite(var) & (var > 0), var, 1.0)


def _edges(numeric: NumericStats, bins: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per column: its distinct bin edges on the standardized scale (float32 values, increasing), as
    the Normalization layer computes them from the raw quantiles, and the distribution-function
    level of each (the mean of the quantile levels that fall on it: the mid-rank of a tie)."""
    levels = np.linspace(0.0, 1.0, bins + 1)
    mean, var = _standardized(numeric)
    edges, at = [], []
    for j, q in enumerate(numeric.quantiles(levels)):
        if not len(q):
            edges.append(np.zeros(1, dtype=np.float32))
            at.append(np.full(1, 0.5))
            continue
        std = np.maximum(np.sqrt(np.float32(var[j])), np.float32(keras.backend.epsilon()))
        z = (q.astype(np.float32) - np.float32(mean[j])) / std
        unique, which = np.unique(z, return_inverse=True)
        edges.append(unique.astype(np.float32))
        at.append(np.bincount(which, weights=levels) / np.bincount(which))
    return edges, at


def _encoding(edges: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias (k, T) of the piecewise-linear encoding: component t of column j is
    clip(z * kernel + bias, 0, 1) = clip((z - e_t) / (e_{t+1} - e_t), 0, 1). A column with fewer
    than T bins repeats its last component (never an always-0 unit); a constant column has none of
    its own (its components are 0)."""
    width = max(1, max(len(e) - 1 for e in edges))
    kernel = np.zeros((len(edges), width), dtype=np.float32)
    bias = np.zeros((len(edges), width), dtype=np.float32)
    for j, e in enumerate(edges):
        e = e.astype(np.float64)
        if len(e) < 2:
            continue
        slope = 1.0 / np.diff(e)
        kernel[j, :len(slope)], bias[j, :len(slope)] = slope, -e[:-1] * slope
        kernel[j, len(slope):], bias[j, len(slope):] = kernel[j, len(slope) - 1], bias[j, len(slope) - 1]
    return kernel, bias


def _fixed(layer: keras.layers.Layer, x, *weights: np.ndarray):
    """`layer(x)` with its weights set to `weights` (kept fixed: the layer is not trainable)."""
    y = layer(x)
    layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
    return y


def _piecewise_parts(numeric: NumericStats, bins: int):
    """(standardizing Normalization, encoding EinsumDense, its clip, the edges, their levels)."""
    mean, var = _standardized(numeric)
    edges, levels = _edges(numeric, bins)
    kernel, bias = _encoding(edges)
    k, width = kernel.shape
    norm = keras.layers.Normalization(mean=mean.tolist(), variance=var.tolist(), dtype="float32",
                                      name="scale_standard")
    dense = keras.layers.EinsumDense("ab,bc->abc", output_shape=(k, width), bias_axes="bc", trainable=False,
                                     kernel_initializer="zeros", dtype="float32", name="piecewise_linear")
    clip = keras.layers.ReLU(max_value=1.0, dtype="float32", name="piecewise_clip")
    return norm, (dense, kernel, bias), clip, edges, levels


def _piecewise(numeric: NumericStats):
    """piecewise: [standardized value per column, its PIECEWISE_BINS encoding components per column]."""
    norm, (dense, kernel, bias), clip, _, _ = _piecewise_parts(numeric, PIECEWISE_BINS)

    def call(x):
        z = norm(x)
        parts = clip(_fixed(dense, z, kernel, bias))
        flat = keras.layers.Flatten(dtype="float32", name="piecewise_flat")(parts)
        return keras.layers.Concatenate(name="piecewise_features", dtype="float32")([z, flat])
    return call


def _quantile_map(numeric: NumericStats, standard: np.ndarray, bins: int = QUANTILE_BINS, encoding: bool = False):
    """quantile (auto: the columns not marked `standard`): normal scores of the empirical
    distribution function, interpolated linearly between the `bins` + 1 quantiles: the sum
    over a column's encoding components, component t weighted by the rise of the normal score over
    its bin, plus the score at the first edge. Columns marked `standard` (auto) keep their
    standardized value instead (weight 1 on it, 0 on the components). `encoding`: the encoding
    components follow (one value per column, then the components of every column)."""
    norm, (dense, kernel, bias), clip, edges, levels = _piecewise_parts(numeric, bins)
    k, width = kernel.shape
    eps = 0.5 / bins
    mix = np.zeros((k, width + 1), dtype=np.float64)
    offset = np.zeros(k, dtype=np.float64)
    for j, level in enumerate(levels):
        if standard[j]:
            mix[j, width] = 1.0
            continue
        score = normal_quantile(np.clip(level, eps, 1.0 - eps))
        offset[j] = score[0]
        mix[j, :len(score) - 1] = np.diff(score)
    sums = keras.layers.EinsumDense("abc,bc->ab", output_shape=(k,), bias_axes="b", trainable=False,
                                    kernel_initializer="zeros", dtype="float32", name="quantile_map")

    def call(x):
        z = norm(x)
        parts = clip(_fixed(dense, z, kernel, bias))
        if standard.any():
            column = keras.layers.Reshape((k, 1), dtype="float32", name="quantile_standard")(z)
            both = keras.layers.Concatenate(axis=-1, dtype="float32", name="quantile_inputs")([parts, column])
            scores = _fixed(sums, both, mix, offset)
        else:
            scores = _fixed(sums, parts, mix[:, :width], offset)
        if not encoding:
            return scores
        flat = keras.layers.Flatten(dtype="float32", name="piecewise_flat")(parts)
        return keras.layers.Concatenate(name="piecewise_features", dtype="float32")([scores, flat])
    return call
