"""An ensemble of trained models as one model: their inputs shared, each model a member (a nested
`keras.Model` of its own layers and weights), their outputs averaged by a Keras `Average` layer named
ENSEMBLE_LAYER. Built-in layers only, so the file loads with plain `keras.models.load_model` and is
evaluated, served and exported as any other model. Used by `data.split.refit: ensemble` (the mean
of a k-fold run's fold models, `training.kfold`).

For classification the members' probabilities are averaged; for regression their predictions, each
in the target's units (a member's own target rescaling is inside it).
"""

from __future__ import annotations

import keras

from nettrain.model.compile import ENSEMBLE_LAYER, ensemble_members


def mean_of(models: list, name: str = "ensemble_model") -> keras.Model:
    """One model whose output is the mean of `models`' outputs (which take the same inputs); each
    member is renamed `member_<i>` (from 1), as a model's layer names must differ."""
    if not models:
        raise ValueError("an ensemble needs at least one model")
    for i, member in enumerate(models, start=1):
        member.name = f"member_{i}"
    first = models[0]
    inputs = {t.name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in first.inputs}
    outputs = [member(inputs) for member in models]
    mean = keras.layers.Average(name=ENSEMBLE_LAYER)(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, mean, name=name)


def members(model: keras.Model) -> int:
    """How many members an ensemble built by `mean_of` has (1: the model is no such ensemble)."""
    found = ensemble_members(model)
    return 1 if found is None else len(found)
