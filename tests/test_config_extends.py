"""`extends:`: merge rules, chains, cycles, paths relative to the file that wrote them, and every
error naming the file and line where the offending value was written (base or child)."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.config import load_config
from nettrain.errors import ConfigError

runner = CliRunner()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def team(tmp_path):
    """base/root.yaml <- base/classifier.yaml <- exp/child.yaml (two levels), data beside root."""
    write(tmp_path, "base/d.csv", "a,y\n1,0\n2,1\n")
    write(tmp_path, "base/root.yaml",
          "seed: 7\n"                                        # 1
          "data:\n"                                          # 2
          "  source: d.csv\n"                                # 3
          "  target: y\n"                                    # 4
          "training:\n"                                      # 5
          "  epochs: 5\n"                                    # 6
          "  batch_size: 16\n"                               # 7
          "  optimizer: {name: adam, learning_rate: 0.01}\n"  # 8
          "  metrics: [accuracy, auc]\n"                     # 9
          "model:\n"                                         # 10
          "  layers:\n"                                      # 11
          "    - {type: Dense, units: 8}\n"                  # 12
          "    - {type: Dense, units: 4}\n")                 # 13
    write(tmp_path, "base/classifier.yaml",
          "extends: root.yaml\n"
          "training:\n"
          "  optimizer: {learning_rate: 0.1}\n"
          "  metrics: [accuracy]\n")
    return write(tmp_path, "exp/child.yaml",
                 "extends: ../base/classifier.yaml\n"
                 "seed: null\n"
                 "training:\n"
                 "  batch_size: 4\n"
                 "model:\n"
                 "  layers: [{type: Dense, units: 2}]\n")


def test_mappings_merge_deeply_lists_and_scalars_replace_null_removes(team):
    cfg = load_config(team)
    assert cfg.training.optimizer == {"name": "adam", "learning_rate": 0.1}  # merged across two levels
    assert cfg.training.epochs == 5 and cfg.training.batch_size == 4      # inherited; replaced
    assert cfg.training.metrics == ["accuracy"]                           # a list replaces whole
    assert [layer.units for layer in cfg.model.layers] == [2]             # a list replaces whole
    assert cfg.seed == 42                                                 # null: the default again
    assert cfg.name == "child"                                            # the file's own stem
    assert cfg.data.target == "y"


def test_a_base_path_is_relative_to_the_base_file(team, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "exp")
    assert load_config(team).data.source == str(tmp_path / "base" / "d.csv")
    # written in the child, the same text is relative to the child
    write(tmp_path, "exp/d.csv", "a,y\n1,0\n")
    child = write(tmp_path, "exp/own.yaml", "extends: ../base/root.yaml\ndata: {source: d.csv}\n")
    assert load_config(child).data.source == str(tmp_path / "exp" / "d.csv")
    # and --set is relative to the current directory, the last layer
    cfg = load_config(child, ["data.source=other.csv", "training.epochs=2"])
    assert cfg.data.source == str(tmp_path / "exp" / "other.csv") and cfg.training.epochs == 2


def test_an_error_in_a_base_names_the_base_file_and_line(team, tmp_path):
    write(tmp_path, "base/root.yaml", (tmp_path / "base/root.yaml").read_text().replace("epochs: 5", "epochs: 0"))
    with pytest.raises(ConfigError) as info:
        load_config(team)
    assert str(info.value).startswith(f"{tmp_path / 'base' / 'root.yaml'}:6: training.epochs: got 0")
    # an inherited value overridden by the child is the child's: its line
    text = team.read_text().replace("  batch_size: 4\n", "  batch_size: 4\n  epochs: -1\n")
    write(tmp_path, "exp/child.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(team)
    assert (info.value.file, info.value.line, info.value.path) == (str(team), 5, "training.epochs")


def test_an_unknown_key_in_the_middle_base_names_it(team, tmp_path):
    write(tmp_path, "base/classifier.yaml", "extends: root.yaml\ntraining:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(team)
    err = info.value
    assert (err.file, err.line) == (str(tmp_path / "base" / "classifier.yaml"), 3)
    assert "did you mean 'epochs'" in str(err)


def test_a_cycle_is_refused_naming_the_files(tmp_path):
    a = write(tmp_path, "a.yaml", "extends: b.yaml\ndata: {source: sklearn:iris}\n")
    write(tmp_path, "b.yaml", "extends: [c.yaml]\n")
    write(tmp_path, "c.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(a)
    text = str(info.value)
    assert "cycle" in text and "a.yaml -> " in text and "b.yaml -> " in text and text.count("a.yaml") >= 2
    assert info.value.file == str(tmp_path / "c.yaml") and info.value.line == 1
    self_ref = write(tmp_path, "self.yaml", "extends: self.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(self_ref)


def test_a_diamond_is_no_cycle_and_later_bases_win(tmp_path):
    write(tmp_path, "root.yaml", "data: {source: sklearn:iris}\ntraining: {epochs: 3}\n")
    write(tmp_path, "left.yaml", "extends: root.yaml\ntraining: {epochs: 4, batch_size: 8}\n")
    write(tmp_path, "right.yaml", "extends: root.yaml\ntraining: {epochs: 6}\n")
    child = write(tmp_path, "child.yaml", "extends: [left.yaml, right.yaml]\n")
    cfg = load_config(child)
    assert (cfg.training.epochs, cfg.training.batch_size) == (6, 8)


@pytest.mark.parametrize("value, words", [
    ("missing.yaml", "no such file"), ("[]", None), ("3", "expected a config file's path"),
    ("[a.yaml, 3]", "expected a config file's path"), ("''", "expected a config file's path")])
def test_a_bad_extends_names_the_line(tmp_path, value, words):
    write(tmp_path, "a.yaml", "training: {epochs: 2}\n")
    child = write(tmp_path, "child.yaml", f"data: {{source: sklearn:iris}}\nextends: {value}\n")
    if words is None:  # an empty list extends nothing
        assert load_config(child).data.source == "sklearn:iris"
        return
    with pytest.raises(ConfigError) as info:
        load_config(child)
    assert info.value.file == str(child) and info.value.line == 2 and words in str(info.value)


def test_a_base_that_is_not_a_mapping_is_refused_naming_it(tmp_path):
    base = write(tmp_path, "list.yaml", "- 1\n- 2\n")
    child = write(tmp_path, "child.yaml", "extends: list.yaml\ndata: {source: sklearn:iris}\n")
    with pytest.raises(ConfigError) as info:
        load_config(child)
    assert info.value.file == str(base) and "mapping" in str(info.value)


def test_a_long_chain_loads(tmp_path):
    write(tmp_path, "c0.yaml", "data: {source: sklearn:iris}\ntraining: {epochs: 1}\n")
    for i in range(1, 12):
        write(tmp_path, f"c{i}.yaml", f"extends: c{i - 1}.yaml\ntraining: {{epochs: {i + 1}}}\n")
    assert load_config(tmp_path / "c11.yaml").training.epochs == 12


def test_cli_validate_with_extends_and_set_errors_name_the_right_place(team, tmp_path):
    result = runner.invoke(app, ["validate", str(team)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", str(team), "--set", "training.epochs=0"])
    assert result.exit_code == 2 and "--set training.epochs=0" in result.output and "Traceback" not in result.output
    write(tmp_path, "base/root.yaml", (tmp_path / "base/root.yaml").read_text().replace("units: 4", "units: -4"))
    write(tmp_path, "exp/child.yaml", "extends: ../base/classifier.yaml\n")
    result = runner.invoke(app, ["validate", str(team)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'base' / 'root.yaml'}:13: model.layers.1.units" in result.output


def test_the_example_config_extends_two_levels():
    root = Path(__file__).resolve().parent.parent / "configs"
    child = root / "iris-team.yaml"
    assert "extends" in yaml.safe_load(child.read_text())
    base = (child.parent / yaml.safe_load(child.read_text())["extends"]).resolve()
    assert "extends" in yaml.safe_load(base.read_text())  # two levels
    cfg = load_config(child)
    assert cfg.data.source.endswith("iris.csv") and cfg.source.files  # some keys come from the bases
