"""nettrain/words.py: the one "did you mean" of every message (config/ uses it; data/ is to follow)."""

from nettrain.words import MAX_WORD, did_you_mean


def test_the_closest_choice():
    assert did_you_mean("epoch", ["epochs", "batch_size"]) == "did you mean 'epochs'? "
    assert did_you_mean("zzz", ["epochs", "batch_size"]) == ""
    assert did_you_mean("x", []) == ""


def test_case_underscores_and_spaces_are_a_fallback():
    assert did_you_mean("learningrate", ["learning_rate", "momentum"]) == "did you mean 'learning_rate'? "
    assert did_you_mean("Batch Size", ["batch_size"]) == "did you mean 'batch_size'? "
    assert did_you_mean("RMSPROP", ["RMSprop", "Adam"]) == "did you mean 'RMSprop'? "


def test_choices_are_compared_as_text_and_long_words_are_never_matched():
    assert did_you_mean("1", [1, 2]) == "did you mean '1'? "
    assert did_you_mean("a" * (MAX_WORD + 1), ["a" * (MAX_WORD + 1)]) == ""
    assert did_you_mean("ab", ["ab" * MAX_WORD]) == ""


def test_config_messages_use_it(tmp_path):
    import pytest

    from nettrain.config import load_config
    from nettrain.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text("data: {source: d.csv, target: y}\ntraining: {epoch: 3}\n")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        load_config(path)
