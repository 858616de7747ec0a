"""Raw columns that nettrain turns into numbers before the model, turned into them inside an
exported model instead, so that it takes the column as a user writes it: yes/no words
(`yes_no_values`: built-in Keras layers, in every format that carries strings) and dates
(`servable_date`, `date_parts`: TensorFlow's string ops in a SavedModel's serving function, as the
reader makes the parts with pandas, `data.typing.derived_values`). Used by `lifecycle.export`;
Keras and TensorFlow are imported only inside the functions that build the model.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np


def case_variants(word: str) -> list[str]:
    """`word` in every mix of upper and lower case (`yes`: 8 spellings): the yes/no words nettrain reads in
    any case, looked up exactly inside an exported model."""
    import itertools

    return sorted({"".join(p) for p in itertools.product(*[sorted({c.lower(), c.upper()}) for c in word])})


def yes_no_values(x, yes: str, no: str, tag: str):
    """The numbers of the yes/no words `x` (a string input): 1.0 for `yes`, 0.0 for `no`, in any case
    (`case_variants`); NaN for anything else (then the fill value, as for a missing number). Built-in
    layers, named after `tag`: a StringLookup of the spellings and a frozen one-column Embedding of
    their values."""
    import keras
    from keras import ops

    ones, zeros = case_variants(yes), case_variants(no)
    values = np.array([[np.nan]] + [[1.0]] * len(ones) + [[0.0]] * len(zeros), dtype="float32")
    index = keras.layers.StringLookup(vocabulary=ones + zeros, num_oov_indices=1, name=f"words_{tag}")(x)
    table = keras.layers.Embedding(len(values), 1, trainable=False, name=f"word_values_{tag}")
    out = table(index)
    table.set_weights([values])
    return ops.squeeze(out, axis=-1)


# The date fields a SavedModel's serving function reads, in the order a format writes them (its digits)
DATE_FIELDS = "YymdHMSf"


def servable_date(fmt: str | None) -> bool:
    """Whether a SavedModel can parse dates of `fmt` (`data.typing.DATE_FORMATS`) itself: one format,
    without a UTC offset (pandas converts those to UTC, which would move the parts)."""
    return bool(fmt) and "%z" not in fmt and all(code in DATE_FIELDS for code in re.findall(r"%(.)", fmt))


# How many digits strptime (pandas' `format=`) takes for each field
_FIELD_DIGITS = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{1,2}", "d": r"\d{1,2}", "H": r"\d{1,2}",
                 "M": r"\d{1,2}", "S": r"\d{1,2}", "f": r"\d{1,9}"}


def date_pattern(fmt: str) -> str:
    """The (RE2) pattern a whole value of `fmt` matches: its fields' digits and its other characters as
    they are, so that another separator or a five-digit year is no date, as for pandas."""
    parts = re.split(r"%(.)", fmt)  # literal, code, literal, code, ...
    return "".join(_FIELD_DIGITS[p] if i % 2 else "".join(c if c.isalnum() or c == " " else "\\" + c for c in p)
                   for i, p in enumerate(parts))


def date_parts(text, fmt: str) -> dict[str, Any]:
    """Inside the SavedModel's serving function: {part: float32 values} (year, month, day, weekday
    Monday=0, hour) of the date strings `text` written in `fmt`, as `data.typing.derived_values` makes
    them with pandas; NaN where a value is empty, is not written in the format (`date_pattern`: its
    separators, its fields' digits), or is no date (month 13, February 30). The digit runs of a value
    are its fields, in the format's order; a two-digit year is 1969-2068, as strptime reads it."""
    import tensorflow as tf

    codes = re.findall(r"%(.)", fmt)
    text = tf.strings.strip(text)
    digits = tf.strings.strip(tf.strings.regex_replace(text, "[^0-9]+", " "))
    tokens = tf.strings.split(digits)
    fields = tf.strings.to_number(tokens.to_tensor(default_value="0", shape=[None, len(codes)]), tf.int64)
    ok = tf.equal(tokens.row_lengths(), len(codes)) & tf.strings.regex_full_match(text, date_pattern(fmt))
    value = {code: fields[:, i] for i, code in enumerate(codes)}
    two = value.get("y")
    year = value["Y"] if "Y" in value else tf.where(two < 69, 2000 + two, 1900 + two)
    month, day = value["m"], value["d"]
    hour = value.get("H", tf.zeros_like(day))
    for code, top in (("H", 23), ("M", 59), ("S", 59)):
        if code in value:
            ok &= (value[code] >= 0) & (value[code] <= top)
    leap = tf.cast((year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0)), tf.int64)
    lengths = tf.constant([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], tf.int64)
    index = tf.clip_by_value(month - 1, 0, 11)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= tf.gather(lengths, index) + leap * tf.cast(
        tf.equal(month, 2), tf.int64))
    # Sakamoto's day of the week (0 Sunday), then Monday = 0 as pandas counts
    shift = tf.constant([0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4], tf.int64)
    y = year - tf.cast(month < 3, tf.int64)
    weekday = (y + y // 4 - y // 100 + y // 400 + tf.gather(shift, index) + day + 6) % 7
    nan = tf.constant(float("nan"), tf.float32)
    return {part: tf.where(ok, tf.cast(v, tf.float32), nan)
            for part, v in (("year", year), ("month", month), ("day", day), ("weekday", weekday), ("hour", hour))}
