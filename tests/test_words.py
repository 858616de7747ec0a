"""nettrain/words.py: the one "did you mean" of every message (config/ uses it; data/ is to follow), and the
one way to cut a message short or take the first line of an exception."""

import pytest

from nettrain.words import MAX_WORD, clip, did_you_mean, first_line, one_line


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


# ------------------------------------------------------------------------------ short text

def test_clip_keeps_short_text_and_cuts_long_text_to_the_limit_with_dots():
    assert clip("abc", 3) == "abc"
    assert clip("abcd", 3) == "..."
    assert clip("abcdef", 5) == "ab..."
    assert len(clip("x" * 1000, 80)) == 80
    assert clip("a" * 40) == "a" * 40 and clip("a" * 41) == "a" * 37 + "..."  # 40 by default
    assert clip("", 10) == ""


def test_one_line_folds_every_whitespace_run_and_clips():
    assert one_line("  a\n  b\tc\r\n") == "a b c"
    assert one_line(ValueError("bad\nvalue")) == "bad value"
    assert one_line(3) == "3"
    assert one_line("word " * 100, 20) == "word word word wo..."
    assert one_line("short", 20) == "short"
    assert one_line(ValueError()) == ""  # an empty message stays empty: no class name


def test_first_line_of_an_exception_or_a_text():
    assert first_line(ValueError("  first\nsecond\n")) == "first"
    assert first_line("\n\n  first  \nsecond") == "first  "  # the whole text is trimmed, not the line
    assert first_line(KeyError("k")) == "'k'"  # as str() gives it
    assert first_line(ValueError("x" * 500), 200) == "x" * 197 + "..."
    assert first_line(ValueError("x" * 500)) == "x" * 500  # no limit: the whole line


@pytest.mark.parametrize("empty", [ValueError(), RuntimeError("  \n "), OSError("")])
def test_first_line_of_an_exception_without_a_message_is_its_class_name(empty):
    assert first_line(empty) == type(empty).__name__
    assert first_line(empty, 3) == type(empty).__name__  # never cut


def test_first_line_of_an_empty_text_is_empty():
    assert first_line("") == "" and first_line(" \n\t") == ""


def test_config_messages_cut_with_it(tmp_path):
    from nettrain.config import parse_override
    from nettrain.errors import UsageError

    with pytest.raises(UsageError) as info:
        parse_override("training.epochs." + "9" * 30 + "=1")
    assert f"list index {clip('9' * 30, 20)} is far too large" in str(info.value)
    assert "99999999999999999..." in str(info.value)


def test_reason_is_the_first_line_escaped_and_cut_or_the_type():
    from nettrain.words import reason

    assert reason(ValueError("bad\nmore")) == "bad"
    assert reason(ValueError("bad\nmore"), all_lines=True) == "bad more"
    assert reason(ValueError("  ")) == "ValueError"
    assert reason(OSError("a\x01b")) == "a\\x01b"
    assert len(reason(ValueError("x" * 500))) == 200


def test_show_name_and_list_names():
    from nettrain.words import list_names, show_name

    assert show_name("a\tb") == "a\\tb" and show_name("y" * 100, 10) == "yyyyyyy..."
    assert list_names(["a", "b"], quote=True) == "'a', 'b'"
    assert list_names(range(30), limit=2) == "0, 1, ... (30 in all)"
