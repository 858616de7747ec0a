"""Config loading: defaults, overrides, paths, and one clear error per mistake."""

import pytest

from nettrain.config import load_config
from nettrain.errors import ConfigError, UsageError

MINIMAL = "data: {source: sklearn:iris}\n"


def test_minimal_config_fills_every_default(write_config):
    cfg = load_config(write_config(MINIMAL, "my-exp.yaml"))
    assert cfg.name == "my-exp"
    assert cfg.seed == 42
    assert cfg.training.epochs == 20 and cfg.training.batch_size == 32
    assert cfg.training.optimizer == "adam" and cfg.training.loss == "auto"
    assert cfg.preprocessing.numeric == "standard" and cfg.preprocessing.missing == "error"
    assert cfg.data.split.test == 0.2 and cfg.data.split.validation == 0.2
    assert cfg.callbacks.checkpoint.enabled and cfg.callbacks.checkpoint.filename == "epoch{epoch:03d}.h5"
    assert cfg.model.layers[0].type == "Dense" and cfg.model.layers[0].kwargs() == {"units": 64, "activation": "relu"}
    assert cfg.output.dir.endswith("runs")
    dumped = cfg.to_dict()
    assert dumped["callbacks"]["terminate_on_nan"] is True


def test_paths_resolve_relative_to_the_config_file(tmp_path, write_config):
    sub = tmp_path / "configs"
    sub.mkdir()
    path = sub / "c.yaml"
    path.write_text("data: {source: ../data/x.csv, target: y}\noutput: {dir: out}\n")
    cfg = load_config(path)
    assert cfg.data.source == str(tmp_path / "data" / "x.csv")
    assert cfg.output.dir == str(sub / "out")


def test_set_paths_resolve_relative_to_cwd(tmp_path, write_config, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write_config(MINIMAL), ["data.source=other.csv", "data.target=y"])
    assert cfg.data.source == str(tmp_path / "other.csv")


def test_overrides_by_dotted_path_and_list_index(write_config):
    text = MINIMAL + "model:\n  layers:\n    - {type: Dense, units: 8}\n"
    cfg = load_config(write_config(text), ["training.epochs=5", "model.layers.0.units=32",
                                           "training.optimizer={name: sgd, learning_rate: 0.1}"])
    assert cfg.training.epochs == 5
    assert cfg.model.layers[0].kwargs()["units"] == 32
    assert cfg.training.optimizer == {"name": "sgd", "learning_rate": 0.1}


@pytest.mark.parametrize("override, path, words", [
    ("training.optimzer=adam", "training.optimzer", ["did you mean 'optimizer'"]),
    ("model.layers.0.unit=3", "model.layers.0.unit", ["did you mean 'units'"]),
    ("model.layers.0.type=Dens", "model.layers.0.type", ["no layer 'Dens'", "did you mean 'Dense'"]),
    ("training.epochs=ten", "training.epochs", ["integer"]),
    ("data.split.test=1.5", "data.split.test", ["[0, 1)"]),
    ("training.loss=binary_crossentropyy", "training.loss", ["did you mean 'binary_crossentropy'"]),
    ("training.optimizer=adamm", "training.optimizer", ["no optimizer 'adamm'"]),
    ("training.metrics=[acuracy]", "training.metrics.0", ["no metric 'acuracy'", "did you mean"]),
    ("callbacks.lr_schedule={type: step_decay, dropp: 0.5}", "callbacks.lr_schedule.dropp", ["did you mean 'drop'"]),
    ("callbacks.lr_schedule={type: linear}", "callbacks.lr_schedule", ["step_decay"]),
    ("preprocessing.numeric=zscore", "preprocessing.numeric", ["'standard'", "'minmax'"]),
    ("training.optimizer={name: adam, learning_rat: 0.1}", "training.optimizer.learning_rat",
     ["did you mean 'learning_rate'"]),
    ("callbacks.checkpoint.filename=../x.h5", "callbacks.checkpoint.filename", ["inside checkpoints/"]),
    ("callbacks.checkpoint.filename=model.pt", "callbacks.checkpoint.filename", [".h5", ".keras"]),
    ("model.layers.0={type: Lambda}", "model.layers.0.type", ["refused"]),
    ("model.layers.0={type: Dense}", "model.layers.0", ["needs the argument 'units'"]),
    ("data.source={generator: make_blobs, n_sample: 3}", "data.source.n_sample", ["did you mean 'n_samples'"]),
    ("training.loss=5", "training.loss", ["a string or a mapping"]),
    ("runtime.device=tpu", "runtime.device", ["auto, cpu, gpu"]),
    ("data.split={test: 0.5, validation: 0.999999999999999999}", "data.split.validation", ["[0, 1)"]),
])
def test_mistakes_name_the_key_and_what_is_allowed(write_config, override, path, words):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(MINIMAL + "model: {layers: [{type: Dense, units: 4}]}\n"), [override])
    err = info.value
    assert err.exit_code == 2
    assert err.path == path
    assert "config.yaml" in str(err)
    for w in words:
        assert w in str(err)


def test_unknown_key_in_file_reports_its_line(write_config):
    text = "data:\n  source: sklearn:iris\ntraining:\n  epochs: 3\n  batchsize: 8\n"
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    assert info.value.line == 5
    assert "config.yaml:5: training.batchsize: unknown key 'batchsize'; did you mean 'batch_size'?" in str(info.value)


def test_unknown_key_inside_a_layer_mapping_reports_its_line(write_config):
    text = MINIMAL + "model:\n  layers:\n    - type: Dense\n      units: 4\n      activaton: relu\n"
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    assert info.value.path == "model.layers.0.activaton"
    assert info.value.line == 6
    assert "did you mean 'activation'" in str(info.value)


def test_malformed_yaml_names_file_and_line(write_config):
    with pytest.raises(ConfigError) as info:
        load_config(write_config("data:\n  source: [unclosed\n  target: y\n"))
    assert "malformed YAML" in str(info.value)
    assert info.value.line is not None


def test_python_object_tag_is_refused(write_config):
    text = "data: !!python/object/apply:os.system ['echo hacked']\n"
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    assert "tag not allowed" in str(info.value)


def test_duplicate_key_is_refused(write_config):
    with pytest.raises(ConfigError) as info:
        load_config(write_config("seed: 1\nseed: 2\ndata: {source: sklearn:iris}\n"))
    assert "appears twice" in str(info.value)


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("- a\n- b\n", "mapping"),
    ("seed: 3\n", "data"),
    ("data: {source: sklearn:iris}\n---\nseed: 2\n", "one YAML document"),
])
def test_bad_documents(write_config, text, words):
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    assert words in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "not found" in str(info.value) and "nope.yaml" in str(info.value)


@pytest.mark.parametrize("bad", ["training.epochs", "=3", "a..b=1"])
def test_malformed_set(write_config, bad):
    with pytest.raises(UsageError):
        load_config(write_config(MINIMAL), [bad])


def test_checkpoint_can_be_turned_off(write_config):
    cfg = load_config(write_config(MINIMAL + "callbacks: {checkpoint: false}\n"))
    assert cfg.callbacks.checkpoint.enabled is False


def test_config_error_points_later_stages_at_the_line(write_config):
    cfg = load_config(write_config("data:\n  source: sklearn:iris\n  target: species\n"))
    err = cfg.error("data.target", "column 'species' not found")
    assert err.line == 3 and "config.yaml:3: data.target: column 'species' not found" in str(err)


def test_set_inside_a_named_optimizer_turns_it_into_a_mapping(write_config):
    cfg = load_config(write_config(MINIMAL + "training: {optimizer: sgd}\n"),
                      ["training.optimizer.learning_rate=0.1", "training.optimizer.momentum=0.9"])
    assert cfg.training.optimizer == {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}


def test_set_inside_the_default_optimizer(write_config):
    cfg = load_config(write_config(MINIMAL), ["training.optimizer.learning_rate=0.01"])
    assert cfg.training.optimizer == {"name": "adam", "learning_rate": 0.01}
