"""Commands that must stay light: --help, validate, schema never import TensorFlow."""

import json
import subprocess
import sys
import textwrap

from typer.testing import CliRunner

from nettrain.cli import app

runner = CliRunner()

PROBE = textwrap.dedent("""
    import sys
    from nettrain.cli import app
    try:
        app(prog_name="nettrain", args=sys.argv[1:])
    except SystemExit as e:
        code = e.code
    heavy = [m for m in ("tensorflow", "keras", "sklearn", "matplotlib") if m in sys.modules]
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
    sys.exit(code)
""")


def _probe(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=cwd)


def heavy(proc) -> list[str]:
    """The heavy modules the probe saw imported: its last stderr line is HEAVY=name,name."""
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("HEAVY="), proc.stderr[-2000:]
    return [name for name in lines[-1][len("HEAVY="):].split(",") if name]


def test_help_imports_no_tensorflow():
    proc = _probe("--help")
    assert proc.returncode == 0
    assert "fit" in proc.stdout and "validate" in proc.stdout
    assert heavy(proc) == []


def test_validate_imports_no_tensorflow(write_config):
    path = write_config("data: {source: sklearn:iris}\nmodel: {layers: [{type: Dense, units: 8}]}\n")
    proc = _probe("validate", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
    assert not {"tensorflow", "keras"} & set(heavy(proc)), heavy(proc)


def test_validate_error_exits_2_without_traceback(write_config):
    path = write_config("data: {source: sklearn:iris}\ntraining: {epoch: 3}\n")
    proc = _probe("validate", str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "training.epoch: unknown key 'epoch'; did you mean 'epochs'?" in proc.stderr


def test_schema_is_json_schema():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "nettrain experiment config"
    assert {"data", "model", "training", "callbacks", "runtime", "output"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("nettrain ")


def test_validate_via_clirunner_reports_set_errors(write_config):
    path = write_config("data: {source: sklearn:iris}\n")
    result = runner.invoke(app, ["validate", str(path), "--set", "training.epochs=0"])
    assert result.exit_code == 2
    assert "training.epochs" in result.stderr


def test_missing_config_file_exits_2(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "not found" in result.stderr


def test_set_json_and_debug_are_one_option_each_everywhere():
    """--set, --json and --debug come from one definition in cli.py: the same flag, kind and
    default on every command, and --set's and --debug's help start alike."""
    import typer.main

    from nettrain.cli import SET_HELP

    seen: dict[str, list] = {"--set": [], "--json": [], "--debug": []}
    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            flag = next((o for o in param.opts if o in seen), None)
            if flag is not None:
                seen[flag].append((name, param.opts, param.default, param.multiple, param.help))
    assert len(seen["--debug"]) == 17 and len(seen["--set"]) == 7 and len(seen["--json"]) == 11, seen
    for name, opts, default, multiple, help in seen["--set"]:
        assert opts == ["--set"] and multiple and help.startswith(SET_HELP), name
    for flag in ("--json", "--debug"):
        for name, opts, default, multiple, help in seen[flag]:
            assert opts == [flag] and default is False and not multiple, (flag, name)
    assert len({h for *_, h in seen["--debug"]}) == 1


def test_validate_names_a_data_file_no_reader_takes(write_config, tmp_path):
    """A file type nettrain cannot read is a config mistake validate sees from the name alone (fit refused
    it, validate said 'valid'); a file not there yet, or a name without an extension (an image folder to
    come), is not: validate says no decision on streaming was made."""
    (tmp_path / "book.xlsx").write_bytes(b"PK")
    path = write_config("data: {source: book.xlsx, target: y}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "data.source: unknown data file type '.xlsx'" in result.stderr and ".csv, .tsv, .parquet" in result.stderr
    path = write_config("data: {train: a.csv, test: b.txt, target: y}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "data.test: unknown data file type '.txt'" in result.stderr, result.output
    for source in ("later.csv", "pictures"):
        path = write_config(f"data: {{source: {source}, target: y}}\n")
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, result.output
    assert "no file later.csv (yet)" in runner.invoke(
        app, ["validate", str(write_config("data: {source: later.csv, target: y}\n"))]).stdout


def test_a_url_where_a_file_goes_is_refused_as_written(write_config, tmp_path):
    """A URL was joined to the config's folder ('data file not found: /cfg/dir/http:/host/a.csv');
    nothing is downloaded, and the key is named with the URL as written."""
    path = write_config("data: {source: 'https://host.example/a.csv', target: y}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "data.source: 'https://host.example/a.csv' is a URL; nettrain reads local files only" in result.stderr
    result = runner.invoke(app, ["validate", str(write_config("data: {source: a.csv, target: y}\n")),
                                 "--set", "data.test=s3://bucket/t.parquet"])
    assert result.exit_code == 2 and "data.test: 's3://bucket/t.parquet' is a URL" in result.stderr
    result = runner.invoke(app, ["init", "http://host.example/a.csv", "--target", "y"])
    assert result.exit_code == 2 and "a URL? nettrain reads local files only" in result.stderr, result.output


def test_validate_names_column_names_that_contradict_each_other(write_config):
    """The target also a feature, the id or dropped; a feature also dropped or the id; a name listed twice:
    fit refused each, validate said 'valid' (the check needs the config alone). Still without TensorFlow."""
    cases = {"features: [a, y]": "data.features.1: 'y' is the target; it cannot also be a feature",
             "id: y": "data.id: 'y' is the target",
             "drop: [y]": "data.drop.0: 'y' is the target and cannot be dropped",
             "features: [a], drop: [a]": "data.features.0: 'a' is listed in both data.features and data.drop",
             "id: a, features: [a, c]": "data.features.0: 'a' is the id column (data.id)",
             "drop: [a, a]": "data.drop.1: 'a' is listed twice",
             "features: []": "data.features: an empty list leaves no feature column",
             "columns: {y: {type: categorical}}": "data.columns.y: 'y' is the target"}
    for extra, said in cases.items():
        path = write_config(f"data: {{source: d.csv, target: y, {extra}}}\n")
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 2 and said in result.stderr, (extra, result.output)
    proc = _probe("validate", str(write_config("data: {source: d.csv, target: y, drop: [y]}\n")))
    assert proc.returncode == 2 and not {"tensorflow", "keras"} & set(heavy(proc)), proc.stderr
