"""The one output-path policy (nettrain/store/paths.py) and the commands that use it: init --output,
predict --output, lr-find --output. No training here: the checks run before anything is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nettrain.errors import UsageError
from nettrain.store import paths
from nettrain.store.paths import check_output_path


def refused(*needles: str, **kwargs) -> str:
    """Call check_output_path(**kwargs); it must refuse with a message holding every needle."""
    with pytest.raises(UsageError) as info:
        check_output_path(**kwargs)
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def as_file(path, **kwargs):
    return dict(path=path, writer="predict", wanted="a file name ending in .csv", **kwargs)


def as_folder(path, **kwargs):
    return dict(path=path, writer="lr-find", kind="folder", wanted="a folder for lr_find.csv", **kwargs)


@pytest.fixture
def run(tmp_path):
    """tmp_path/run: a run directory (run.json) with checkpoints/ and fold-1/checkpoints/."""
    run = tmp_path / "run"
    (run / "fold-1" / "checkpoints").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "run.json").write_text("{}")
    return run


# ----------------------------------------------------------------------------- places that are fine

def test_a_new_file_or_folder_in_an_ordinary_folder_is_allowed(tmp_path):
    assert check_output_path(**as_file(tmp_path / "out.csv")) == tmp_path / "out.csv"
    assert check_output_path(**as_file(str(tmp_path / "new" / "deeper" / "out.csv"))) == \
        tmp_path / "new" / "deeper" / "out.csv"
    assert check_output_path(**as_folder(tmp_path / "lr")) == tmp_path / "lr"
    (tmp_path / "lr").mkdir()
    assert check_output_path(**as_folder(tmp_path / "lr")) == tmp_path / "lr"


def test_an_existing_file_is_replaced_only_where_the_command_allows_it(tmp_path):
    (tmp_path / "out.csv").write_text("old\n")
    assert check_output_path(**as_file(tmp_path / "out.csv")) == tmp_path / "out.csv"            # predict: always
    assert check_output_path(**as_file(tmp_path / "out.csv", force=True)) == tmp_path / "out.csv"
    refused(f"--output {tmp_path / 'out.csv'} already exists; choose another name, or replace it with --force",
            **as_file(tmp_path / "out.csv", force=False))
    assert (tmp_path / "out.csv").read_text() == "old\n"


# ----------------------------------------------------------------------------- the wrong kind of thing

def test_a_folder_where_a_file_is_wanted_and_a_file_where_a_folder_is(tmp_path):
    (tmp_path / "out.csv").mkdir()
    refused(f"--output {tmp_path / 'out.csv'} is a folder; give a file name ending in .csv",
            **as_file(tmp_path / "out.csv"))
    (tmp_path / "lr").write_text("mine\n")
    refused(f"--output {tmp_path / 'lr'} is a file; give a folder for lr_find.csv", **as_folder(tmp_path / "lr"))


def test_a_fifo_or_a_dangling_link_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    refused("pipe.csv exists and is not a regular file", **as_file(tmp_path / "pipe.csv"))
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    refused("dangling.csv exists and is not a regular file", **as_file(tmp_path / "dangling.csv"))
    assert not (tmp_path / "nowhere.csv").exists()


@pytest.mark.parametrize("depth", [1, 2])
def test_a_file_in_the_way_of_a_folder_is_refused(tmp_path, depth):
    (tmp_path / "existing.csv").write_text("keep me\n")
    under = tmp_path / "existing.csv" / "sub"
    target = under / "out.csv" if depth == 2 else tmp_path / "existing.csv" / "out.csv"
    refused(f"{tmp_path / 'existing.csv'} is a file, not a folder, so nothing can be written inside it",
            **as_file(target))
    refused(f"{tmp_path / 'existing.csv'} is a file, not a folder", **as_folder(under / "lr"))
    assert (tmp_path / "existing.csv").read_text() == "keep me\n"


def test_a_broken_link_in_the_way_is_named(tmp_path):
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    refused(f"{tmp_path / 'gone'} is a broken link, not a folder", **as_file(tmp_path / "gone" / "out.csv"))


# ----------------------------------------------------------------------------- files the command reads

def test_a_file_the_command_reads_is_refused_by_any_name(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    (tmp_path / "link.csv").symlink_to(data)
    os.link(data, tmp_path / "hard.csv")
    (tmp_path / "sub").mkdir()
    words = "the input file; choose another"
    for spelling in (data, tmp_path / "link.csv", tmp_path / "hard.csv", tmp_path / "sub" / ".." / "data.csv"):
        refused(f"--output {spelling} is {words}", **as_file(spelling, not_the=[(data, words)]))
    assert check_output_path(**as_file(tmp_path / "other.csv", not_the=[(data, words)])) == tmp_path / "other.csv"
    assert data.read_text() == "a\n1\n"


# ----------------------------------------------------------------------------- run directories

@pytest.mark.parametrize("inside", ["run.json-next-to", "checkpoints", "fold-1/checkpoints", "new/deeper"])
def test_a_file_anywhere_inside_a_run_is_refused(run, inside):
    folder = run if inside == "run.json-next-to" else run / inside
    message = refused(f"is inside the run directory {run.resolve()} (it holds run.json); predict never writes into "
                      "a run: choose a file outside it", **as_file(folder / "preds.csv"))
    assert message.startswith(f"--output {folder / 'preds.csv'} ")
    assert not (run / "new").exists()


@pytest.mark.parametrize("inside", [".", "lr", "fold-1/checkpoints/lr"])
def test_a_folder_that_is_or_lies_in_a_run_is_refused(run, inside):
    refused(f"is inside the run directory {run.resolve()} (it holds run.json); lr-find never writes into a run: "
            "choose a folder outside it (default X)", **as_folder(run / inside, outside=" (default X)"))


def test_a_run_is_found_through_a_symlinked_folder(run, tmp_path):
    (tmp_path / "alias").symlink_to(run / "checkpoints")
    refused(f"the run directory {run.resolve()}", **as_file(tmp_path / "alias" / "preds.csv"))


def test_a_folder_named_run_json_or_a_run_beside_is_not_a_run(tmp_path, run):
    (tmp_path / "odd" / "run.json").mkdir(parents=True)
    assert check_output_path(**as_file(tmp_path / "odd" / "preds.csv"))
    assert check_output_path(**as_file(tmp_path / "beside" / "preds.csv"))  # next to the run, not in it
    assert check_output_path(**as_folder(tmp_path / "lr"))


# ----------------------------------------------------------------------------- the folder and the OS

def test_a_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    asked = []

    def access(path, mode):
        asked.append((Path(path), mode))
        return False

    monkeypatch.setattr(paths.os, "access", access)
    refused(f"--output {tmp_path / 'new' / 'out.csv'}: the folder {tmp_path} is not writable",
            **as_file(tmp_path / "new" / "out.csv"))
    assert asked == [(tmp_path, os.W_OK | os.X_OK)]  # the nearest folder that exists
    refused(f"--output {tmp_path / 'lr'}: the folder {tmp_path} is not writable", **as_folder(tmp_path / "lr"))
    (tmp_path / "lr").mkdir()
    refused(f"the folder {tmp_path / 'lr'} is not writable", **as_folder(tmp_path / "lr"))


def test_an_os_error_while_looking_is_a_usage_error(tmp_path):
    long = tmp_path / ("x" * 300) / "out.csv"
    refused(f"--output {long}: cannot use this path: ", **as_file(long))


def test_the_flag_is_the_one_given_and_a_kind_is_checked(tmp_path):
    (tmp_path / "out.csv").mkdir()
    refused(f"--to {tmp_path / 'out.csv'} is a folder", flag="--to", **as_file(tmp_path / "out.csv"))
    with pytest.raises(ValueError):
        check_output_path(tmp_path / "x", writer="w", wanted="w", kind="link")


# ----------------------------------------------------------------------------- the commands use it

def test_init_predict_and_lr_find_refuse_a_run_at_any_depth(run):
    """The stricter of the two old rules: the run is found at any depth (init and predict used to
    look at the folder and its parent only, and let run/fold-1/checkpoints/ through)."""
    from nettrain.data.suggest import check_output as init_output
    from nettrain.lifecycle.lrfind import check_output as lr_output
    from nettrain.lifecycle.predict import check_output as predict_output

    deep = run / "fold-1" / "checkpoints"
    for check, target, writer in ((lambda p: init_output(p, run.parent / "d.csv", False), deep / "c.yaml", "init"),
                                  (lambda p: predict_output(p, run.parent / "d.csv"), deep / "p.csv", "predict"),
                                  (lr_output, deep / "lr", "lr-find")):
        with pytest.raises(UsageError) as info:
            check(target)
        assert f"is inside the run directory {run.resolve()} (it holds run.json); {writer} never writes" \
            in str(info.value)


def test_lr_find_now_refuses_a_file_in_the_way_and_a_folder_it_cannot_write(tmp_path, monkeypatch):
    """Rules lr-find gained from init and predict (it used to fail later, after the test ran)."""
    from nettrain.lifecycle.lrfind import check_output

    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(UsageError) as info:
        check_output(tmp_path / "notes.txt" / "lr")
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in str(info.value)
    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)
    with pytest.raises(UsageError) as info:
        check_output(tmp_path / "lr")
    assert f"the folder {tmp_path} is not writable" in str(info.value)


def test_predict_keeps_its_own_words_for_the_input_and_the_kind(tmp_path):
    from nettrain.lifecycle.predict import check_output

    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    with pytest.raises(UsageError) as info:
        check_output(data, data)
    assert str(info.value) == (f"--output {data} is the input file {data}; predict never overwrites its input: "
                               "choose another output file")
    with pytest.raises(UsageError) as info:
        check_output(tmp_path / "p.xlsx", data)
    assert "unknown output type '.xlsx'; allowed: .csv, .parquet" in str(info.value)
    assert check_output(None, data) is None
    assert check_output(tmp_path / "p.csv") == tmp_path / "p.csv"


def test_init_keeps_its_own_words_for_the_data_file_and_force(tmp_path):
    from nettrain.data.suggest import check_output

    data, config = tmp_path / "d.csv", tmp_path / "c.yaml"
    data.write_text("a\n1\n")
    (tmp_path / "d.yaml").symlink_to(data)
    with pytest.raises(UsageError) as info:
        check_output(tmp_path / "d.yaml", data, True)
    assert str(info.value) == f"--output {tmp_path / 'd.yaml'} is the data file; choose another name for the config"
    config.write_text("# mine\n")
    with pytest.raises(UsageError) as info:
        check_output(config, data, False)
    assert "already exists; choose another name, or replace it with --force" in str(info.value)
    assert check_output(config, data, True) == config
