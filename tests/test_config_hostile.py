"""Hostile configs: every one ends in a ConfigError/UsageError naming the culprit, fast, never a crash.

YAML bombs (aliases, nesting, size), characters and keys YAML mangles, values that used to pass
validation and crash mid-fit, checkpoint templates that could escape checkpoints/, and --set.
"""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config, parse_override
from nettrain.config.template import check_template, possible_log_names, render_checkpoint_name, snake_case
from nettrain.errors import ConfigError, UsageError

BASE = "data: {source: d.csv, target: y}\n"

LAUGHS = "".join(
    f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "lol"] * 9) + "]\n" for i in range(9)
) + BASE


@pytest.fixture
def cfg(tmp_path):
    """Write a config (BASE + text) next to a tiny CSV; returns its path."""
    (tmp_path / "d.csv").write_text("x,y\n1,0\n2,1\n")

    def write(text: str, name: str = "config.yaml", base: bool = True):
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text((BASE if base else "") + text, encoding="utf-8")
        return path
    return write


def fails(path, overrides=(), **kwargs) -> ConfigError:
    with pytest.raises(UsageError) as info:
        load_config(path, list(overrides), **kwargs)
    err = info.value
    assert err.exit_code == 2
    assert "\n" not in str(err), str(err)
    assert len(str(err)) < 400, str(err)
    return err


# ------------------------------------------------------------------------------ YAML bombs

def test_billion_laughs_fails_fast_naming_the_file(cfg):
    path = cfg(LAUGHS, base=False)
    start = time.perf_counter()
    err = fails(path)
    assert time.perf_counter() - start < 1.0
    assert isinstance(err, ConfigError)
    assert "config.yaml" in str(err) and "aliases" in str(err)


def test_billion_laughs_within_the_alias_count_is_refused_by_the_expansion_budget(cfg):
    # 6 levels x 9 aliases = 45 aliases (under the count limit) but 9**6 nodes once expanded
    text = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "lol"] * 9) + "]\n" for i in range(6))
    start = time.perf_counter()
    err = fails(cfg(text, base=False))
    assert time.perf_counter() - start < 1.0
    assert "expand" in str(err) and err.line is not None


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [1, [2, *a]]\n"])
def test_recursive_alias_is_refused(cfg, text):
    err = fails(cfg(text, base=False))
    assert "recursive YAML alias" in str(err) and err.line == 1 and "config.yaml" in str(err)


def test_too_many_aliases(cfg):
    text = "x: &x 1\nl: [" + ", ".join(["*x"] * 101) + "]\n"
    err = fails(cfg(text))
    assert "more than 100 YAML aliases" in str(err)


def test_aliases_cannot_nest_deeper_than_the_limit(cfg):
    deep = "[" * 40 + "1" + "]" * 40
    err = fails(cfg(f"a: &a {deep}\nb: {'[' * 20}*a{']' * 20}\n"))
    assert "nested deeper than 50" in str(err) and "aliases" in str(err)


def test_aliases_within_budget_still_work_and_are_unshared(cfg):
    path = cfg("model:\n  layers:\n    - &l {type: Dense, units: 8}\n    - *l\n")
    conf = load_config(path, ["model.layers.0.units=16"])  # changes one layer, not both
    assert [spec.kwargs()["units"] for spec in conf.model.layers] == [16, 8]


def test_merge_keys_work(cfg):
    path = cfg("model:\n  layers:\n    - &d {type: Dense, units: 8, activation: relu}\n    - {<<: *d, units: 4}\n")
    conf = load_config(path)
    assert conf.model.layers[1].kwargs() == {"units": 4, "activation": "relu"}


@pytest.mark.parametrize("text", ["[" * 100_000, "{a: " * 100_000, "- " * 100_000,
                                  "".join(" " * i + "k:\n" for i in range(60)),
                                  "data:\n  source: " + "[" * 60 + "]" * 60 + "\n"])
def test_deep_nesting_is_refused_before_recursion(cfg, text):
    start = time.perf_counter()
    err = fails(cfg(text, base=False))
    assert time.perf_counter() - start < 1.0
    assert isinstance(err, ConfigError) and "nested deeper than 50 levels" in str(err)
    assert err.file.endswith("config.yaml") and err.line is not None


def test_oversized_file_is_refused_before_parsing(cfg):
    err = fails(cfg("# " + "x" * (1 << 20) + "\n"))
    assert "larger than 1 MiB" in str(err) and "config.yaml" in str(err)


# ------------------------------------------------------------------------------ characters

@pytest.mark.parametrize("text, line, words", [
    ("seed: 1\x00\n", 2, ["NUL character", "U+0000"]),
    ("seed: \x07\n", 2, ["control character", "U+0007"]),
    ("\n\nseed: 1 \x1b\n", 4, ["U+001B"]),
    ("name: \ufffe\n", 2, ["U+FFFE"]),
])
def test_characters_yaml_refuses(cfg, text, line, words):
    err = fails(cfg(text))
    assert err.line == line and f"config.yaml:{line}:" in str(err)
    for w in words:
        assert w in str(err)


def test_escaped_nul_in_a_value_is_refused(cfg):
    err = fails(cfg('output: {dir: "runs\\0/x"}\n'))
    assert err.path == "output.dir" and "NUL" in str(err)


def test_invalid_utf8_names_the_line(cfg):
    err = fails(cfg(BASE.encode() + b"name: caf\xe9\n"))
    assert isinstance(err, ConfigError) and err.line == 2 and "UTF-8" in str(err)


def test_a_bom_is_fine(cfg):
    assert load_config(cfg(b"\xef\xbb\xbf" + BASE.encode())).data.target == "y"


# ------------------------------------------------------------------------------------ keys

@pytest.mark.parametrize("text, path, words", [
    ("? [a, b]\n: 1\n", None, ["plain string", "complex key"]),
    ("training: {? {a: 1} : 2}\n", "training", ["plain string", "a mapping"]),
    ("~: 1\n", "~", ["null", "quote it: '~'"]),
    ("? \n: 1\n", None, ["key is empty"]),
    ("training: {yes: 1}\n", "training.yes", ["boolean", "quote it: 'yes'"]),
    ("training: {no: 1}\n", "training.no", ["boolean", "quote it: 'no'"]),
    ("runtime: {on: 1}\n", "runtime.on", ["boolean", "quote it: 'on'"]),
    ("data2: {off: 1}\n", "data2.off", ["boolean", "quote it: 'off'"]),
    ("1.5: 1\n", "1.5", ["a number", "quote it: '1.5'"]),
    ("3: 1\n", "3", ["an integer", "quote it: '3'"]),
    ("training: {class_weight: balanced}\ndata2: {7: {type: numeric}}\n", "data2.7",
     ["an integer", "quote it: '7'"]),
    ("training: {class_weight: {1.5: 2.0}}\n", "training.class_weight.1.5", ["integer label"]),
    ("training: {class_weight: {yes: 2.0}}\n", "training.class_weight.yes", ["boolean", "quote it"]),
    ("2024-01-01: 1\n", "2024-01-01", ["date", "quote it"]),
])
def test_keys_must_be_strings(cfg, text, path, words):
    err = fails(cfg(text))
    assert isinstance(err, ConfigError) and err.path == path
    assert err.line is not None and "config.yaml" in str(err)
    for w in words:
        assert w in str(err), str(err)


def test_integer_class_labels_are_keys(cfg):
    conf = load_config(cfg("training: {class_weight: {0: 1.0, 1: 3, cat: 2.5}}\n"))
    assert conf.training.class_weight == {0: 1.0, 1: 3.0, "cat": 2.5}


def test_duplicate_keys_through_a_merge_alias_keep_the_explicit_one(cfg):
    # a merge is not a duplicate: the explicit key wins (YAML merge semantics)
    conf = load_config(cfg("training: {<<: {epochs: 3}, epochs: 4}\n"))
    assert conf.training.epochs == 4


# ----------------------------------------------------------------------------------- tags

@pytest.mark.parametrize("text, path, words", [
    ("seed: !!python/object/apply:os.system ['echo hacked']\n", "seed", ["tag not allowed"]),
    ("name: !!binary aGVsbG8=\n", "name", ["tag not allowed", "binary"]),
    ("data2: !!set {a, b}\n", "data2", ["tag not allowed", "set"]),
    ("data2: !!omap [a: 1]\n", "data2", ["tag not allowed", "omap"]),
    ("name: !local x\n", "name", ["tag not allowed", "!local"]),
    ("seed: 2024-01-01\n", "seed", ["date", "quote it"]),
    ("seed: !!int abc\n", "seed", ["cannot read 'abc' as an integer"]),
    ("seed: !!float abc\n", "seed", ["cannot read 'abc' as a number"]),
    ("output: {plots: !!bool maybe}\n", "output.plots", ["cannot read 'maybe' as a boolean"]),
    ("seed: " + "9" * 5000 + "\n", "seed", ["far too many"]),
    ("seed: 0x" + "f" * 5000 + "\n", "seed", ["far too many"]),
    ("name: <<\n", "name", ["merge key", "quote it"]),
])
def test_only_plain_data_tags(cfg, text, path, words):
    err = fails(cfg(text))
    assert isinstance(err, ConfigError) and err.path == path and err.line == 2
    for w in words:
        assert w in str(err), str(err)


@pytest.mark.parametrize("text, words", [
    ("data: {source: *nope}\n", "undefined alias"),
    ("a: &x 1\nb: &x 2\n", "duplicate anchor"),
    ("seed: 1\n---\nseed: 2\n", "one YAML document"),
    ("training: {<<: 5}\n", "malformed YAML"),
    ("training:\n\tepochs: 3\n", "malformed YAML"),
    ("data: 'unclosed\n", "malformed YAML"),
])
def test_other_yaml_failures_are_config_errors(cfg, text, words):
    err = fails(cfg(text))
    assert isinstance(err, ConfigError) and words in str(err) and "config.yaml" in str(err)


# --------------------------------------------------------------------------- schema values

@pytest.mark.parametrize("text, path, words", [
    ("seed: -1\n", "seed", ["got -1", "[0, 4294967295]"]),
    ("seed: 4294967296\n", "seed", ["[0, 4294967295]"]),
    ("training: {batch_size: 99999999999999999999999}\n", "training.batch_size",
     ["99999999999999999999999", "[1, 2147483647]"]),
    ("training: {epochs: 100000000}\n", "training.epochs", ["[1, 1000000]"]),
    ("training: {epochs: 0}\n", "training.epochs", ["[1, 1000000]"]),
    ("training: {steps_per_execution: 3000000000}\n", "training.steps_per_execution", ["2147483647"]),
    ("callbacks: {lr_schedule: {type: exponential, decay_steps: 1.0e+300}}\n",
     "callbacks.lr_schedule.decay_steps", ["1e+300", "[1, 2147483647]"]),
    ("callbacks: {early_stopping: {min_delta: .inf}}\n", "callbacks.early_stopping.min_delta", ["finite"]),
    ("callbacks: {early_stopping: {baseline: .nan}}\n", "callbacks.early_stopping.baseline", ["finite"]),
    ("callbacks: {early_stopping: {patience: 1.0e+30}}\n", "callbacks.early_stopping.patience", ["2147483647"]),
    ("callbacks: {checkpoint: {keep: 0}}\n", "callbacks.checkpoint.keep", ["[1, 2147483647]"]),
    ("callbacks: {tensorboard: {update_freq: -5}}\n", "callbacks.tensorboard.update_freq", ["-5"]),
    ("data: {source: d.csv, target: y, split: {test: .nan}}\n", "data.split.test", ["finite"]),
    ("training: {class_weight: {a: .inf}}\n", "training.class_weight.a", ["finite"]),
    ("training: {class_weight: {a: -1}}\n", "training.class_weight.a", [">= 0"]),
    ("name: " + "a" * 300 + "\n", "name", ["at most 100 characters"]),
    ("runtime: {device: 'gpu:99999999999999999999'}\n", "runtime.device", ["gpu:N"]),
])
def test_values_that_used_to_crash_later(cfg, text, path, words):
    if text.startswith("data:"):
        err = fails(cfg(text, base=False))
    else:
        err = fails(cfg(text))
    assert isinstance(err, ConfigError) and err.path == path, str(err)
    assert err.line is not None and "config.yaml" in str(err)
    for w in words:
        assert w in str(err), str(err)


@pytest.mark.parametrize("text, path, detail", [
    ("training: {steps_per_execution: 0}\n", "training.steps_per_execution",
     "must be 'auto' or an integer in [1, 2147483647], got 0"),
    ("callbacks: {tensorboard: {update_freq: 3000000000}}\n", "callbacks.tensorboard.update_freq",
     "must be epoch, batch or an integer in [1, 2147483647] (batches), got 3000000000"),
])
def test_a_word_or_a_count_names_both(cfg, text, path, detail):
    err = fails(cfg(text))
    assert err.path == path and err.detail == detail, str(err)


@pytest.mark.parametrize("value, path, words", [
    ("{name: adam, learning_rate: fast}", "training.optimizer.learning_rate", ["got 'fast'", "number > 0"]),
    ("{name: adam, learning_rate: {a: 1}}", "training.optimizer.learning_rate", ["{'a': 1}"]),
    ("{name: adam, learning_rate: 0}", "training.optimizer.learning_rate", ["number > 0"]),
    ("{name: adam, learning_rate: .nan}", "training.optimizer.learning_rate", ["NaN"]),
    ("{name: sgd, momentum: [1]}", "training.optimizer.momentum", ["got [1]", "[0, 1]"]),
    ("{name: sgd, momentum: 2}", "training.optimizer.momentum", ["[0, 1]"]),
    ("{name: sgd, clipnorm: -1}", "training.optimizer.clipnorm", ["> 0"]),
    ("{name: sgd, nesterov: 'yes'}", "training.optimizer.nesterov", ["true or false"]),
    ("{name: adam, beta_1: x}", "training.optimizer.beta_1", ["got 'x'"]),
    ("{name: adam, epsilon: -1}", "training.optimizer.epsilon", [">= 0"]),
    ("{name: adam, amsgrad: 1}", "training.optimizer.amsgrad", ["true or false"]),
])
def test_optimizer_argument_types(cfg, value, path, words):
    err = fails(cfg(f"training: {{optimizer: {value}}}\n"))
    assert err.path == path and err.line == 2
    for w in words:
        assert w in str(err), str(err)


def test_optimizer_numbers_become_floats(cfg):
    conf = load_config(cfg("training: {optimizer: {name: sgd, momentum: 1, learning_rate: 1}}\n"))
    assert conf.training.optimizer == {"name": "sgd", "momentum": 1.0, "learning_rate": 1.0}
    assert isinstance(conf.training.optimizer["momentum"], float)


@pytest.mark.parametrize("text, path, words", [
    ("training: {loss: {name: huber, delta: -1}}\n", "training.loss.delta", ["> 0"]),
    ("training: {loss: {name: binary_crossentropy, from_logits: maybe}}\n", "training.loss.from_logits",
     ["true or false"]),
    ("training: {metrics: [accuracy, {name: AUC, num_thresholds: 1000000000}]}\n",
     "training.metrics.1.num_thresholds", ["[2, 1000000]"]),
])
def test_loss_and_metric_argument_types(cfg, text, path, words):
    err = fails(cfg(text))
    assert err.path == path
    for w in words:
        assert w in str(err), str(err)


@pytest.mark.parametrize("layer, path, words", [
    ("{type: Dense, units: abc}", "model.layers.0.units", ["got 'abc'", "an integer"]),
    ("{type: Dense, units: 0}", "model.layers.0.units", ["an integer in [1,"]),
    ("{type: Dense, units: 1.0e+30}", "model.layers.0.units", ["an integer"]),
    ("{type: Dense, units: true}", "model.layers.0.units", ["got True"]),
    ("{type: Conv1D, filters: 4, kernel_size: [3, x]}", "model.layers.0.kernel_size", ["list of them"]),
    ("{type: MaxPooling1D, pool_size: -2}", "model.layers.0.pool_size", ["got -2"]),
    ("{type: Dropout, rate: 1.0}", "model.layers.0.rate", ["[0, 1)"]),
    ("{type: Dropout, rate: high}", "model.layers.0.rate", ["got 'high'"]),
    ("{type: LSTM, units: 4, recurrent_dropout: 2}", "model.layers.0.recurrent_dropout", ["[0, 1)"]),
    ("{type: Dense, units: 4, activation: 5}", "model.layers.0.activation", ["a name (string) or a mapping"]),
    ("{type: Dense, units: 4, kernel_initializer: [1]}", "model.layers.0.kernel_initializer", ["a name"]),
    ("{type: Dense, units: 4, bias_regularizer: 0.1}", "model.layers.0.bias_regularizer", ["a name"]),
    ("{type: Dense, units: 4, use_bias: 'no'}", "model.layers.0.use_bias", ["true or false"]),
    ("{type: Dense, units: 4, kernel_initializer: {type: Constant, value: .inf}}",
     "model.layers.0.kernel_initializer.value", ["NaN and infinite"]),
])
def test_layer_argument_types(cfg, layer, path, words):
    err = fails(cfg(f"model: {{layers: [{layer}]}}\n"))
    assert err.path == path and err.line == 2, str(err)
    for w in words:
        assert w in str(err), str(err)


def test_output_layer_arguments_are_checked_too(cfg):
    err = fails(cfg("model: {output: {type: Dense, units: 1.5}}\n"))
    assert err.path == "model.output.units"


@pytest.mark.parametrize("source, path, words", [
    ("{generator: make_regression, n_samples: 100000000000}", "data.source.n_samples", ["2147483647"]),
    ("{generator: make_regression, n_samples: 1000000, n_features: 100000}", "data.source.n_samples",
     ["at most 1,000,000,000"]),
    ("{generator: make_regression, noise: .nan}", "data.source.noise", ["NaN"]),
    ("{generator: make_blobs, n_samples: [10, -1]}", "data.source.n_samples", ["list of them"]),
    ("{generator: make_classification, random_state: -3}", "data.source.random_state", ["got -3"]),
])
def test_generator_argument_types(cfg, source, path, words):
    err = fails(cfg(f"data: {{source: {source}}}\n", base=False))
    assert err.path == path, str(err)
    for w in words:
        assert w in str(err), str(err)


def test_sane_values_still_pass(cfg):
    text = ("seed: 4294967295\ntraining: {epochs: 1000000, batch_size: 2147483647, class_weight: {0: 0, 1: 2},\n"
            "  optimizer: {name: sgd, learning_rate: 0.1, momentum: 0.9, nesterov: true, clipnorm: null},\n"
            "  metrics: [accuracy, {name: AUC, num_thresholds: 200}]}\n"
            "model: {layers: [{type: Conv1D, filters: 4, kernel_size: [3], strides: 1},\n"
            "  {type: Dropout, rate: 0}, {type: Dense, units: 4, activation: {class_name: relu},\n"
            "   kernel_initializer: {class_name: HeNormal}, kernel_regularizer: l2}]}\n"
            "callbacks: {early_stopping: {baseline: -1.0e+30}}\n")
    conf = load_config(cfg(text))
    assert conf.seed == 2**32 - 1 and conf.training.epochs == 1_000_000


# ------------------------------------------------------------------------------ templates

@pytest.mark.parametrize("template", [
    "epoch{epoch:03d}.h5", "e{epoch}-{val_loss:.4f}.h5", "{epoch:+06.2f}_{loss:e}.h5", "{val_accuracy:.1%}.h5",
    "x.h5", "{{literal}}{epoch}.h5", "{epoch: d}.h5", "{loss:g}.h5", "{epoch:99d}.h5",
])
def test_check_template_accepts(template):
    assert check_template(template) == template


@pytest.mark.parametrize("template, words", [
    ("{epoch.__class__}.h5", ["attribute or index access"]),
    ("{epoch.x.y[3]}.h5", ["attribute or index access"]),
    ("{epoch[0]}.h5", ["attribute or index access"]),
    ("{0}.h5", ["not a plain name"]),
    ("{}.h5", ["an empty field"]),
    ("{epoch!r}.h5", ["conversions"]),
    ("{epoch!s:>10}.h5", ["conversions"]),
    ("{epoch:999999999d}.h5", ["format spec", "999999999d"]),
    ("{epoch:/>20}.h5", ["format spec", "no fill"]),
    ("{epoch:{width}}.h5", ["format spec"]),
    ("{epoch:,}.h5", ["format spec"]),
    ("{val_loss:d}.h5", ["{val_loss:d}", "does not fit a metric"]),
    ("{epoch:.2d}.h5", ["does not fit the epoch"]),
    ("{epoch:99.99f}{loss:99.99f}.h5", ["at most 200 characters"]),
    ("../x.h5", ["inside checkpoints/"]),
    ("a/b.h5", ["inside checkpoints/"]),
    ("a\\b.h5", ["inside checkpoints/"]),
    (".hidden.h5", ["leading '.'"]),
    ("best.h5", ["reserved"]),
    ("last.h5", ["reserved"]),
    ("model.pt", [".h5", ".keras"]),  # .keras names are allowed (native format)
    ("{epoch}", [".h5"]),
    (".h5", ["leading '.'"]),
    ("{epoch.h5", ["not a valid template"]),
    ("epoch}.h5", ["not a valid template"]),
    ("a\x00b.h5", ["control characters"]),
    ("x" * 300 + ".h5", ["at most 200 characters"]),
])
def test_check_template_refuses(template, words):
    with pytest.raises(ValueError) as info:
        check_template(template)
    for w in words:
        assert w in str(info.value), str(info.value)


def test_check_template_with_names():
    assert check_template("{epoch}-{val_auc:.3f}.h5", {"epoch", "val_auc"})
    with pytest.raises(ValueError, match=r"unknown field \{foo\}.*available: epoch, val_auc"):
        check_template("{foo}.h5", {"epoch", "val_auc"})


def test_render_checkpoint_name():
    assert render_checkpoint_name("epoch{epoch:03d}.h5", 7, {"loss": 0.5}) == "epoch007.h5"
    assert render_checkpoint_name("e{epoch}-{val_loss:.2f}.h5", 3, {"val_loss": 0.123}) == "e3-0.12.h5"
    assert render_checkpoint_name("{val_loss:.1f}.h5", 1, {"val_loss": float("nan")}) == "nan.h5"
    with pytest.raises(ValueError, match="unknown field"):
        render_checkpoint_name("{val_loss}.h5", 1, {"loss": 1.0})
    for bad in ("{epoch.__class__}.h5", "../{epoch}.h5", "best.h5"):
        with pytest.raises(ValueError):
            render_checkpoint_name(bad, 1, {})


def test_possible_log_names(cfg):
    conf = load_config(cfg("training: {metrics: [accuracy, {name: AUC}, {name: BinaryAccuracy}, mse]}\n"))
    names = possible_log_names(conf)
    for n in ("loss", "val_loss", "accuracy", "val_accuracy", "auc", "val_auc", "binary_accuracy",
              "val_binary_accuracy", "mse", "learning_rate"):
        assert n in names
    assert possible_log_names(load_config(cfg(""))) >= {"mae", "val_mae", "accuracy", "auc", "val_auc"}
    assert snake_case("RootMeanSquaredError") == "root_mean_squared_error" and snake_case("AUC") == "auc"


@pytest.mark.parametrize("text, words", [
    ("callbacks: {checkpoint: {filename: '{foo}.h5'}}\n", ["unknown field {foo}", "available: epoch"]),
    ("training: {metrics: [accuracy]}\ncallbacks: {checkpoint: {filename: '{val_auc:.2f}.h5'}}\n",
     ["unknown field {val_auc}"]),
    ("callbacks: {checkpoint: {filename: '{epoch.__class__}.h5'}}\n", ["attribute or index access"]),
    ("callbacks: {checkpoint: {filename: '{epoch:999999999d}.h5'}}\n", ["format spec"]),
])
def test_validate_refuses_bad_templates(cfg, text, words):
    err = fails(cfg(text))
    assert err.path == "callbacks.checkpoint.filename" and err.line is not None
    for w in words:
        assert w in str(err), str(err)


def test_template_with_a_configured_metric_passes(cfg):
    conf = load_config(cfg("training: {metrics: [{name: AUC}]}\n"
                           "callbacks: {checkpoint: {filename: 'e{epoch:03d}-{val_auc:.3f}.h5'}}\n"))
    assert conf.callbacks.checkpoint.filename == "e{epoch:03d}-{val_auc:.3f}.h5"


# ------------------------------------------------------------------------------------ --set

def test_set_error_without_a_file_names_the_set_argument():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["training.epochs=abc"], data={"data": {"source": "d.csv", "target": "y"}})
    assert str(info.value) == "--set training.epochs=abc: got 'abc'; expected an integer"
    assert info.value.path == "training.epochs" and "<config>" not in str(info.value)


def test_nested_set_error_without_a_file_names_the_argument_and_key():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["training.optimizer={name: adam, learning_rate: fast}"],
                    data={"data": {"source": "d.csv", "target": "y"}})
    assert str(info.value).startswith("--set training.optimizer={name: adam, learning_rate: fast}: "
                                      "training.optimizer.learning_rate: got 'fast'")


def test_set_error_with_a_file_names_both(cfg):
    err = fails(cfg(""), ["training.epochs=abc"])
    assert "config.yaml" in str(err) and "(set by --set training.epochs=abc)" in str(err)
    assert err.path == "training.epochs"


@pytest.mark.parametrize("override, words", [
    ("training.x=[&a [1,2,3,4,5,6,7,8,9], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], "
     "[*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]]", ["aliases expand"]),
    ("training.epochs=" + "[" * 100_000, ["nested deeper than 50"]),
    ("training.epochs=&a [*a]", ["recursive YAML alias"]),
    ("seed=!!python/object/apply:os.system [id]", ["tag not allowed"]),
    ("training.epochs=2024-01-01", ["date"]),
    ("training.class_weight={yes: 2}", ["boolean", "quote it"]),
    ("training.epochs=\x00", ["NUL"]),
    ("callbacks.checkpoint.filename={foo}.h5", ["malformed YAML", "quote"]),
    ("training.epochs=" + "x" * ((1 << 20) + 1), ["at most"]),
])
def test_hostile_set_values_get_the_file_protections(cfg, override, words):
    err = fails(cfg(""), [override])
    assert isinstance(err, ConfigError)
    assert str(err).startswith("--set ") and "config.yaml" not in str(err)
    for w in words:
        assert w in str(err), str(err)


@pytest.mark.parametrize("override", ["a.²=1", "model.layers.99999999999999999999999.units=1",
                                      ".".join(["a"] * 60) + "=1", "a\nb=1", "=1", "noequals"])
def test_odd_set_keys(cfg, override):
    err = fails(cfg(""), [override])
    assert "--set" in str(err)


def test_set_class_weight_labels_build_a_mapping():
    conf = load_config(None, ["training.class_weight.0=2", "training.class_weight.1=3"],
                       data={"data": {"source": "d.csv", "target": "y"}})
    assert conf.training.class_weight == {0: 2.0, 1: 3.0}


def test_deep_python_data_is_a_config_error():
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(None, data={"data": {"source": "d.csv", "target": "y"},
                                "model": {"layers": [{"type": "Dense", "units": 1, "x": deep}]}})


def test_parse_override_alone_is_safe():
    with pytest.raises(ConfigError):
        parse_override("training.epochs=" + "[" * 10_000)
    assert parse_override("training.class_weight={0: 1.5}") == (("training", "class_weight"), {0: 1.5})


# -------------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("text, args, words", [
    (LAUGHS, [], ["config.yaml", "aliases"]),
    ("[" * 100_000, [], ["config.yaml:1:", "nested deeper"]),
    ("seed: 1\x00\n", [], ["config.yaml:1:", "NUL"]),
    ("? [a, b]\n: 1\n", [], ["config.yaml:1:", "complex key"]),
    (BASE + "callbacks: {checkpoint: {filename: '{epoch.__class__}.h5'}}\n", [],
     ["callbacks.checkpoint.filename", "attribute"]),
    (BASE, ["--set", "training.epochs=abc"], ["training.epochs", "got 'abc'"]),
    (BASE, ["--set", "training.epochs=" + "[" * 5000], ["--set training.epochs=", "nested deeper"]),
])
def test_cli_validate_exits_2_without_traceback(cfg, text, args, words):
    path = cfg(text, base=False)
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["validate", str(path), *args])
    assert time.perf_counter() - start < 2.0
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for w in words:
        assert w in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2
