"""`cfg.source`: where a loaded config came from (file, YAML lines, --set keys), public and read-only."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
from pathlib import Path

import pytest

from nettrain.config import Config, ConfigSource, load_config
from nettrain.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DATA = {"data": {"source": "d.csv", "target": "y"}}


@pytest.fixture()
def config_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("data: {source: d.csv, target: y}\n"
                    "model:\n"
                    "  layers:\n"
                    "    - {type: Dense, units: 8}\n"
                    "training:\n"
                    "  epochs: 3\n")
    return path


def test_a_loaded_config_knows_its_file_lines_and_overrides(config_file):
    cfg = load_config(config_file, ["training.batch_size=8", "model.layers.0.units=4"])
    src = cfg.source
    assert isinstance(src, ConfigSource)
    assert src.file == str(config_file)
    assert src.lines["training.epochs"] == 6 and src.lines["model.layers.0"] == 4
    assert src.overrides == ("training.batch_size", "model.layers.0.units")
    assert src.line_of("model.layers.0.activation") == 4  # the nearest key with a line
    assert src.override_of("model.layers.0") == "model.layers.0.units"
    assert src.override_of("training.epochs") is None


def test_error_names_the_file_and_line_or_the_set_argument(config_file):
    cfg = load_config(config_file, ["training.batch_size=8"])
    err = cfg.error("training.epochs", "too many")
    assert (err.file, err.line, err.path) == (str(config_file), 6, "training.epochs")
    assert str(err) == f"{config_file}:6: training.epochs: too many"
    err = cfg.error("training.batch_size", "too big")
    assert str(err) == f"{config_file}: training.batch_size: too big (set by --set training.batch_size=...)"
    assert cfg.source.error("training.epochs", "too many").line == 6


def test_the_source_is_read_only(config_file):
    cfg = load_config(config_file)
    with pytest.raises(AttributeError):
        cfg.source = ConfigSource(file="elsewhere")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.source.file = "elsewhere"  # type: ignore[misc]


def test_the_source_survives_copies_and_assignments(config_file):
    cfg = load_config(config_file, ["training.batch_size=8"])
    cfg.training.epochs = 5
    cfg.training = cfg.training.model_copy()
    for other in (cfg, cfg.model_copy(), cfg.model_copy(deep=True), copy.deepcopy(cfg), pickle.loads(pickle.dumps(cfg))):
        assert other.source == cfg.source


def test_a_config_built_in_code_has_an_empty_source():
    cfg = Config(**DATA)
    assert cfg.source == ConfigSource(file=None, lines={}, overrides=())
    assert str(cfg.error("training.epochs", "bad")) == "training.epochs: bad"


def test_model_validate_takes_a_source_as_context():
    src = ConfigSource(file="from-somewhere.yaml", lines={"data": 1})
    cfg = Config.model_validate(DATA, context={"source": src})
    assert cfg.source is src
    assert Config.model_validate(DATA).source == ConfigSource()
    with pytest.raises(TypeError, match="ConfigSource"):
        Config.model_validate(DATA, context={"source": "file.yaml"})


def test_data_without_a_file_is_named_config():
    cfg = load_config(None, data=copy.deepcopy(DATA))
    assert cfg.source.file == "<config>" and cfg.source.lines == {}


def test_origin_names_the_model_file_a_config_came_from(tmp_path):
    model = tmp_path / "run" / "model.h5"
    cfg = load_config(None, ["training.epochs=7"], data=copy.deepcopy(DATA), origin=model)
    assert cfg.source.file == str(model) and cfg.source.overrides == ("training.epochs",)
    assert str(cfg.error("data.target", "no such column")) == f"{model}: data.target: no such column"
    # a bad --set still names the --set argument, not the model file
    with pytest.raises(ConfigError) as info:
        load_config(None, ["training.epochs=abc"], data=copy.deepcopy(DATA), origin=model)
    assert str(info.value) == "--set training.epochs=abc: got 'abc'; expected an integer"
    # other mistakes in the saved config name the model file
    with pytest.raises(ConfigError) as info:
        load_config(None, data={"data": {"source": "d.csv", "target": "y"}, "training": {"epochs": 0}}, origin=model)
    assert str(info.value).startswith(f"{model}: training.epochs: ")


def test_origin_anchors_no_paths(tmp_path):
    cfg = load_config(None, data=copy.deepcopy(DATA), origin=tmp_path / "elsewhere" / "model.h5")
    assert cfg.data.source == str(Path.cwd() / "d.csv")


def test_no_module_reaches_into_the_config_provenance_privately():
    """The old private attributes are gone and nobody writes the new one from outside schema.py."""
    pattern = re.compile(r"\.\s*_(file|lines|overridden|source)\b")
    offenders = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
                 for p in sorted((ROOT / "nettrain").rglob("*.py")) if p.name != "schema.py"
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not offenders, "use cfg.source (nettrain.config.ConfigSource):\n" + "\n".join(offenders)
