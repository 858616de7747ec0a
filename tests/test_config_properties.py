"""Property tests: whatever the input, loading a config ends in a Config or a ConfigError/UsageError.

Arbitrary YAML text, arbitrary nested data, mutations of a valid config, random --set strings and
arbitrary checkpoint templates. Accepted templates always render to a plain file name.
"""

from __future__ import annotations

import copy
import string

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nettrain.config import Config, load_config
from nettrain.config.template import check_template, render_checkpoint_name
from nettrain.errors import UsageError

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = {
    "data": {"source": "d.csv", "target": "y", "split": {"test": 0.2, "validation": 0.2}},
    "seed": 3,
    "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dropout", "rate": 0.1}]},
    "training": {"epochs": 3, "batch_size": 16, "metrics": ["accuracy"], "class_weight": {0: 1.0, 1: 2.0},
                 "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}},
    "callbacks": {"early_stopping": {"patience": 2}, "checkpoint": {"filename": "e{epoch:03d}-{val_loss:.3f}.h5"},
                  "lr_schedule": {"type": "step_decay", "drop": 0.5, "every": 2}},
    "runtime": {"device": "cpu"},
    "output": {"dir": "out"},
}


@pytest.fixture(scope="module")
def where(tmp_path_factory):
    d = tmp_path_factory.mktemp("props")
    (d / "d.csv").write_text("x,y\n1,0\n2,1\n3,0\n")
    return d


def only_config_or_usage_error(fn):
    """Run fn: a Config or a one-line UsageError (ConfigError included) are the only outcomes."""
    try:
        out = fn()
    except UsageError as e:
        assert e.exit_code == 2
        assert "\n" not in str(e) and "Traceback" not in str(e), repr(str(e))
        assert len(str(e)) < 1000, str(e)[:300]
        return e
    assert isinstance(out, Config)
    out.to_dict()  # what a run writes as config.yaml must serialize
    return out


def load_text(where, text: str, overrides=()):
    path = where / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return only_config_or_usage_error(lambda: load_config(path, list(overrides)))


def load_data(where, data, overrides=()):
    path = where / "config.yaml"
    try:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        assume(False)
    path.write_text(text, encoding="utf-8")
    return only_config_or_usage_error(lambda: load_config(path, list(overrides)))


# ------------------------------------------------------------------------------ strategies

YAML_CHARS = "{}[],:-&*!|>'\"#%@` \n\t?~.<=0123456789abcxyz_/\\\x00\ufeff"
YAML_WORDS = ["data", "source", "target", "training", "epochs", "model", "layers", "type", "Dense", "units",
              "callbacks", "checkpoint", "filename", "&a", "*a", "&b", "*b", "<<", "!!python/object", "!!binary",
              "yes", "no", "~", "null", ".inf", ".nan", "1e999", "2024-01-01", "0x1F", "? ", ": ", "- ", "\n  ",
              "{epoch}", "d.csv", "y", "---", "...", "%YAML 1.1", "!!set", "!!int", "class_weight", "optimizer"]
yaml_like = st.lists(st.one_of(st.sampled_from(YAML_WORDS), st.text(YAML_CHARS, max_size=4)), max_size=40).map("".join)

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["auto", "adam", "Dense", "relu", "{epoch}.h5", "../x.h5", "sklearn:iris"]))
keys = st.one_of(st.text(max_size=12), st.sampled_from(["data", "source", "target", "training", "model", "layers",
                                                         "type", "units", "name", "epochs", "learning_rate"]),
                 st.integers(-5, 5), st.booleans(), st.none(), st.floats(allow_nan=False))
nested = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                   st.dictionaries(keys, c, max_size=4)), max_leaves=20)


def key_paths(node, prefix=()):
    """Every key path in a nested structure (mapping keys and list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += key_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += key_paths(v, prefix + (i,))
    return out


PATHS = key_paths(VALID)


def get(node, path):
    for p in path:
        node = node[p]
    return node


# --------------------------------------------------------------------------- (a) any text

@SETTINGS
@given(text=st.text(max_size=300))
def test_arbitrary_text(where, text):
    load_text(where, text)


@SETTINGS
@given(text=yaml_like)
def test_yaml_like_text(where, text):
    load_text(where, text)


@SETTINGS
@given(data=nested)
def test_arbitrary_nested_data(where, data):
    load_data(where, data)


@SETTINGS
@given(section=st.sampled_from(sorted(VALID)), value=nested)
def test_arbitrary_data_in_a_section(where, section, value):
    data = copy.deepcopy(VALID)
    data[section] = value
    load_data(where, data)


# ------------------------------------------------------------------------ (b) mutations

@SETTINGS
@given(path=st.sampled_from(PATHS), value=nested)
def test_replace_a_value(where, path, value):
    data = copy.deepcopy(VALID)
    parent = get(data, path[:-1])
    parent[path[-1]] = value
    load_data(where, data)


@SETTINGS
@given(path=st.sampled_from(PATHS))
def test_delete_a_key(where, path):
    data = copy.deepcopy(VALID)
    parent = get(data, path[:-1])
    del parent[path[-1]]
    load_data(where, data)


@SETTINGS
@given(path=st.sampled_from([()] + PATHS), key=keys, value=nested)
def test_add_a_key(where, path, key, value):
    data = copy.deepcopy(VALID)
    node = get(data, path)
    assume(isinstance(node, (dict, list)))
    if isinstance(node, dict):
        node[key] = value
    else:
        node.append(value)
    load_data(where, data)


def test_the_valid_config_is_valid(where):
    assert isinstance(load_data(where, VALID), Config)


# ------------------------------------------------------------------------------ (c) --set

set_keys = st.one_of(
    st.sampled_from([".".join(map(str, p)) for p in PATHS]),
    st.lists(st.one_of(st.sampled_from(["training", "optimizer", "model", "layers", "0", "1", "99", "name",
                                        "callbacks", "checkpoint", "filename", "class_weight"]),
                       st.text(max_size=6)), min_size=0, max_size=6).map(".".join),
)
set_values = st.one_of(st.text(max_size=40), yaml_like,
                       nested.map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**9).strip()))


@SETTINGS
@given(overrides=st.lists(st.one_of(st.text(max_size=40), st.builds(lambda k, v: f"{k}={v}", set_keys, set_values)),
                          max_size=3))
def test_random_set_strings(where, overrides):
    load_data(where, VALID, overrides)


@SETTINGS
@given(overrides=st.lists(st.builds(lambda k, v: f"{k}={v}", set_keys, set_values), min_size=1, max_size=3))
def test_random_set_strings_without_a_file(overrides):
    only_config_or_usage_error(lambda: load_config(None, overrides, data=copy.deepcopy(VALID)))


# --------------------------------------------------------------------------- (d) templates

FIELD_NAMES = ["epoch", "loss", "val_loss", "val_accuracy", "foo", "0", "", "epoch.__class__", "epoch[0]",
               "__class__", "val_loss.real"]
SPECS = ["", "03d", ".4f", "d", "/>20", "999999999d", ".2%", "e", "+08.3f", "{w}", "0", "x<9", "^", ".99f"]
pieces = st.one_of(
    st.sampled_from(["{", "}", ".", "[", "]", ":", "/", "\\", "!r", "..", ".h5", "best", "last", "\x00", "~"]),
    st.builds(lambda n, s: "{" + n + (":" + s if s else "") + "}", st.sampled_from(FIELD_NAMES),
              st.sampled_from(SPECS)),
    st.text(string.ascii_letters + string.digits + "-_", max_size=5),
)
templates = st.one_of(st.text(max_size=40), st.lists(pieces, max_size=8).map("".join),
                      st.lists(pieces, max_size=6).map(lambda p: "".join(p) + ".h5"))
metric = st.floats(allow_nan=True, allow_infinity=True)


def plain_file_name(name: str) -> bool:
    return ("/" not in name and "\\" not in name and "\x00" not in name and not name.startswith(".")
            and ".." not in name.replace("\\", "/").split("/") and name.endswith(".h5"))


@SETTINGS
@given(template=templates, epoch=st.integers(1, 10**6), values=st.lists(metric, min_size=1, max_size=8))
def test_templates(template, epoch, values):
    try:
        check_template(template)
    except ValueError as e:
        assert "\n" not in str(e)
        return
    names = [n for _, n, _, _ in string.Formatter().parse(template) if n is not None and n != "epoch"]
    logs = {n: values[i % len(values)] for i, n in enumerate(names)}
    try:
        name = render_checkpoint_name(template, epoch, logs)
    except ValueError:
        return  # e.g. a huge metric value with a wide spec makes too long a name: refused
    assert plain_file_name(name), name


@SETTINGS
@given(template=templates)
def test_templates_through_the_loader(where, template):
    data = copy.deepcopy(VALID)
    data["callbacks"]["checkpoint"]["filename"] = template
    out = load_data(where, data)
    if isinstance(out, Config):
        assert plain_file_name(render_checkpoint_name(template, 1, {"loss": 0.5, "val_loss": 0.25,
                                                                     "accuracy": 1.0, "val_accuracy": 0.5,
                                                                     "learning_rate": 0.1}))


@SETTINGS
@given(template=templates, epoch=st.integers(1, 10**6), logs=st.dictionaries(st.text(max_size=8), metric))
def test_render_only_returns_plain_names(template, epoch, logs):
    try:
        name = render_checkpoint_name(template, epoch, logs)
    except ValueError:
        return
    assert plain_file_name(name), name
