"""Progress of the long passes over data (issue 25): on stderr only, plain lines in a log, silenced by
--quiet; the first pass, evaluate and predict all show it."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from nettrain.cli import app
from nettrain.data.stream import progress as PR
from tests.helpers import regression_csv

runner = CliRunner()
EVERY = {PR.MODE_ENV: "plain", PR.EVERY_ENV: "0"}   # a line at every step, as a CI log shows them every ~10 s


def test_plain_lines_go_to_stderr_with_counts_rate_and_eta(monkeypatch, capsys):
    monkeypatch.setenv(PR.MODE_ENV, "plain")
    monkeypatch.setenv(PR.EVERY_ENV, "0")
    with PR.Meter("first pass over d.csv", 1000, approx=True) as meter:
        meter.add(250)
        meter.add(250)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("first pass over d.csv: 250 rows of about 1,000 rows (25%), ")
    assert "rows/s" in lines[0] and "ETA ~" in lines[0]
    assert lines[-1].startswith("first pass over d.csv: done, 500 rows in ")


def test_nothing_is_shown_for_a_short_pass_or_when_quiet(monkeypatch, capsys):
    monkeypatch.setenv(PR.MODE_ENV, "plain")
    monkeypatch.delenv(PR.EVERY_ENV, raising=False)
    with PR.Meter("quick", 10) as meter:   # done well before SILENT_FOR seconds
        meter.add(10)
    monkeypatch.setenv(PR.EVERY_ENV, "0")
    with PR.quiet(), PR.Meter("hushed", 10) as meter:
        meter.add(5)
    monkeypatch.setenv(PR.MODE_ENV, "off")
    with PR.Meter("off", 10) as meter:
        meter.add(5)
    assert capsys.readouterr().err == ""


def test_a_log_gets_a_line_at_most_every_interval(monkeypatch, capsys):
    monkeypatch.setenv(PR.MODE_ENV, "plain")
    monkeypatch.setenv(PR.EVERY_ENV, "3600")
    meter = PR.Meter("slow", 100)
    meter.start -= 10                  # as if the pass had run 10 s: past SILENT_FOR
    for _ in range(5):
        meter.add(1)
    meter.finish()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("slow: 1 rows of 100 rows (1%)") and "done, 5 rows" in lines[1]


def test_an_interrupted_pass_says_where_it_stopped(monkeypatch, capsys):
    monkeypatch.setenv(PR.MODE_ENV, "plain")
    monkeypatch.setenv(PR.EVERY_ENV, "0")
    with pytest.raises(KeyboardInterrupt):
        with PR.Meter("first pass over big.csv", 40) as meter:
            meter.add(12)
            raise KeyboardInterrupt
    err = capsys.readouterr().err
    assert "first pass over big.csv: interrupted after 12 rows of 40 rows" in err
    seen = list(PR.metered(iter([[1, 2], [3]]), PR.Meter("pairs", 3)))   # metered: counts len() of each item
    assert seen == [[1, 2], [3]] and "pairs: done, 3 rows" in capsys.readouterr().err


def test_the_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv(PR.MODE_ENV, "auto")
    monkeypatch.setenv("CI", "true")
    assert PR.mode() == "plain"        # a CI log: plain lines, never a live bar
    monkeypatch.setenv(PR.MODE_ENV, "rich")
    assert PR.mode() == "rich"
    with PR.quiet():
        assert PR.mode() == "off"


CONFIG = """
    data: {source: r.csv, target: y, stream: true}
    model: {layers: [{type: Dense, units: 4}]}
    training: {epochs: 1, batch_size: 32}
"""


def test_validate_build_shows_the_first_pass_on_stderr_only(tmp_path):
    regression_csv(tmp_path / "r.csv", n=300)
    (tmp_path / "c.yaml").write_text(textwrap.dedent(CONFIG))
    result = runner.invoke(app, ["validate", str(tmp_path / "c.yaml"), "--build"], env=EVERY)
    assert result.exit_code == 0, result.output
    assert "first pass over r.csv: 300 rows of 300 rows (100%)" in result.stderr
    assert "first pass" not in result.stdout


@pytest.mark.slow
def test_fit_quiet_has_no_progress_and_predict_and_evaluate_show_theirs(tmp_path):
    regression_csv(tmp_path / "r.csv", n=300)
    (tmp_path / "c.yaml").write_text(textwrap.dedent(CONFIG))
    run = tmp_path / "run"
    result = runner.invoke(app, ["fit", str(tmp_path / "c.yaml"), "--run-dir", str(run), "--quiet"], env=EVERY)
    assert result.exit_code == 0, result.output
    assert "first pass" not in result.stderr            # --quiet silences it
    result = runner.invoke(app, ["predict", str(run), str(tmp_path / "r.csv")], env=EVERY)
    assert result.exit_code == 0, result.output
    assert f"predict {tmp_path / 'r.csv'}: " in result.stderr and "rows/s" not in result.stdout
    assert f"predict {tmp_path / 'r.csv'}: done, 300 rows" in result.stderr
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(tmp_path / "r.csv"), "--json"], env=EVERY)
    assert result.exit_code == 0, result.output
    assert f"evaluate {tmp_path / 'r.csv'}: done, 300 rows" in result.stderr and result.stdout.lstrip().startswith("{")
