"""docs/config.md documents every config key, its allowed values and default, and every command.

Convention in the doc: keys are dotted paths in backticks in the first cell of a
`| key | type / allowed values | default | meaning |` table row. A mapping keyed by the user's
names (`data.columns`) continues as `data.columns.<name>.KEY`, a list item as
`model.layers.<i>.KEY`. lr_schedule keys of every variant hang off `callbacks.lr_schedule.`.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from nettrain import errors
from nettrain.config.schema import Config

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"
README = Path(__file__).resolve().parents[1] / "README.md"
KEY_HEADER = "| key | type / allowed values | default | meaning |"
CONTRACT_COMMANDS = {
    "fit": ["--set", "--run-dir", "--resume", "--quiet", "--json"],
    "evaluate": ["--data", "--split", "--json", "--fail-under"],
    "baseline": ["--json", "--set"],
    "predict": ["--output", "--proba"],
    "retrain": ["--epochs", "--set", "--data"],
    "validate": ["--build"],
    "init": ["--target"],
    "schema": [],
    "runs": ["--json", "--sort", "--filter", "--last"],
    "plot": ["--metric", "--output"],
    "compare": [],
    "sweep": ["--trials", "--storage", "--study", "--jobs", "--set", "--json", "--fail-under"],
    "inspect": ["--batch", "--json"],
    "lr-find": ["--min", "--max", "--steps", "--set"],
}


# ------------------------------------------------------------------------ the schema side

def _unwrap(annotation) -> list:
    """The alternatives of an annotation: Optional/Union/Annotated flattened."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _children(annotation) -> list[tuple[type[BaseModel], str]]:
    """(model, path suffix) for every pydantic model reachable inside `annotation`."""
    out = []
    for alt in _unwrap(annotation):
        origin = typing.get_origin(alt)
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            out.append((alt, ""))
        elif origin in (list, typing.List):
            out += [(m, ".<i>" + s) for m, s in _children(typing.get_args(alt)[0])]
        elif origin in (dict, typing.Dict):
            out += [(m, ".<name>" + s) for m, s in _children(typing.get_args(alt)[1])]
    return out


def _literals(annotation) -> list:
    values = []
    for alt in _unwrap(annotation):
        if typing.get_origin(alt) is typing.Literal:
            values.extend(typing.get_args(alt))
    return values


def schema_keys(model: type[BaseModel] = Config, prefix: str = "") -> dict[str, list]:
    """Every dotted key path -> the pydantic FieldInfo objects behind it (several for lr_schedule)."""
    keys: dict[str, list] = {}
    for name, field in model.model_fields.items():
        path = prefix + (field.alias or name)  # as a config file spells it (`int`, not the field `integer`)
        keys.setdefault(path, []).append(field)
        for sub, suffix in _children(field.annotation):
            for k, fields in schema_keys(sub, f"{path}{suffix}.").items():
                keys.setdefault(k, []).extend(fields)
    return keys


KEYS = schema_keys()


def test_walker_reaches_nested_models():
    # guard against a walker that silently finds nothing below the top level
    for key in ("data.source.generator", "data.columns.<name>.embedding_dim", "data.split.folds",
                "model.layers.<i>.type", "model.output.type", "callbacks.lr_schedule.type",
                "callbacks.lr_schedule.drop", "callbacks.lr_schedule.warmup_start",
                "callbacks.lr_schedule.min_lr", "callbacks.checkpoint.enabled",
                "callbacks.tensorboard.write_graph", "training.steps_per_execution", "output.plots"):
        assert key in KEYS, key
    assert len(KEYS["callbacks.lr_schedule.decay_steps"]) == 3  # exponential, cosine, warmup_cosine


# --------------------------------------------------------------------------- the doc side

def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def doc_rows() -> dict[str, list[list[str]]]:
    """Key -> rows (cells) of every key table in the doc."""
    rows: dict[str, list[list[str]]] = {}
    in_key_table = False
    for line in doc_text().splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            in_key_table = False
            continue
        if stripped == KEY_HEADER:
            in_key_table = True
            continue
        if not in_key_table or set(stripped) <= set("|-: "):
            continue
        cells = [c.strip() for c in stripped.strip("|").split(" | ")]
        assert len(cells) == 4, f"key table row must have 4 cells (no '|' inside a cell): {line}"
        m = re.fullmatch(r"`([^`]+)`", cells[0])
        assert m, f"first cell must be one key in backticks: {line}"
        rows.setdefault(m.group(1), []).append(cells)
    return rows


def backticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def yaml_form(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def test_every_config_key_is_documented():
    rows = doc_rows()
    missing = [k for k in KEYS if k not in rows]
    assert not missing, f"keys without a row in docs/config.md: {missing}"
    text = doc_text()
    for key in KEYS:
        assert f"`{key}`" in text


def test_doc_has_no_stale_keys():
    stale = [k for k in doc_rows() if k not in KEYS]
    assert not stale, f"docs/config.md documents keys the schema does not have: {stale}"


def test_allowed_values_are_documented():
    rows = doc_rows()
    problems = []
    for key, fields in KEYS.items():
        allowed = set()
        for cells in rows.get(key, []):
            allowed.update(backticked(cells[1]))
        for field in fields:
            for value in _literals(field.annotation):
                if yaml_form(value) not in allowed:
                    problems.append(f"{key}: `{yaml_form(value)}`")
    assert not problems, f"allowed values missing from the type column: {problems}"


def _expected_default(field):
    if field.default_factory is not None:
        return "factory"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return None  # described in words ("the whole run", "none", ...)
    return field.default


def test_defaults_match_the_schema():
    rows = doc_rows()
    problems = []
    for key, fields in KEYS.items():
        cells_list = rows.get(key, [])
        defaults = [cells[2] for cells in cells_list]
        for field in fields:
            expected = _expected_default(field)
            if expected in (None, "factory"):
                continue
            if expected == "required":
                if not any("required" in d for d in defaults):
                    problems.append(f"{key}: should say required, has {defaults}")
                continue
            ok = False
            for d in defaults:
                for token in backticked(d):
                    try:
                        value = yaml.safe_load(token)
                    except yaml.YAMLError:
                        continue
                    if type(value) is bool or type(expected) is bool:
                        ok |= type(value) is type(expected) and value == expected
                    else:
                        ok |= value == expected
            if not ok:
                problems.append(f"{key}: default {yaml_form(expected)!r}, doc has {defaults}")
    assert not problems, "defaults in docs/config.md disagree with the schema:\n" + "\n".join(problems)


def test_each_section_has_a_yaml_example():
    text = doc_text()
    for section in ("data", "preprocessing", "model", "training", "callbacks", "runtime", "output"):
        m = re.search(rf"^## {section}\n(.*?)(?=^## )", text, re.S | re.M)
        assert m, f"no '## {section}' section"
        assert f"```yaml\n{section}:" in m.group(1), f"section {section} has no YAML example"


# ------------------------------------------------------------------------------ commands

def _command_section(text: str, name: str) -> str:
    m = re.search(rf"^#+ nettrain {name}\n(.*?)(?=^#+ |\Z)", text, re.S | re.M)
    assert m, f"no heading 'nettrain {name}' in docs/config.md"
    return m.group(1)


def registered_commands() -> dict:
    import typer

    from nettrain.cli import app

    return typer.main.get_command(app).commands


def test_registered_commands_and_their_options_are_documented():
    text = doc_text()
    commands = registered_commands()
    assert {"fit", "validate", "runs"} <= set(commands)
    for name, command in commands.items():
        section = _command_section(text, name)
        assert f"nettrain {name}" in section, f"no synopsis line for {name}"
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in section, f"nettrain {name}: option {opt} undocumented"


@pytest.mark.parametrize("name, options", CONTRACT_COMMANDS.items())
def test_contract_commands_are_documented(name, options):
    section = _command_section(doc_text(), name)
    for opt in options:
        assert opt in section, f"nettrain {name}: option {opt} undocumented"


def test_exit_codes_are_documented():
    text = doc_text()
    m = re.search(r"^## Exit codes\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m
    codes = {int(c) for c in re.findall(r"^\| `(\d+)` \|", m.group(1), re.M)}
    expected = {errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_GATE, errors.EXIT_INTERRUPTED}
    assert codes == expected


def _section(text: str, heading: str) -> str:
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"no '## {heading}' section"
    return m.group(1)


def readme_command_rows() -> dict[str, list[str]]:
    """Command name -> cells of its row in the README's "## Commands" table."""
    rows: dict[str, list[str]] = {}
    for line in _section(README.read_text(encoding="utf-8"), "Commands").splitlines():
        m = re.match(r"^\| `nettrain ([a-z][a-z-]*)\b[^`]*` \|", line.strip())
        if m:
            rows[m.group(1)] = [c.strip() for c in line.strip().strip("|").split(" | ")]
    return rows


def test_readme_command_table_lists_every_command():
    rows = readme_command_rows()
    commands = registered_commands()
    missing = sorted(set(commands) - set(rows))
    assert not missing, f"commands missing from the README's command table: {missing}"
    stale = sorted(set(rows) - set(commands))
    assert not stale, f"the README's command table lists commands that do not exist: {stale}"
    for name, cells in rows.items():
        assert len(cells) == 3, f"README row for {name}: expected | synopsis | what it does | example |"
        examples = backticked(cells[2])
        assert examples and examples[0].startswith(f"nettrain {name}"), f"README row for {name} has no example"


def test_readme_command_table_catches_a_missing_command(monkeypatch, tmp_path):
    # the check above must fail when a registered command has no row
    text = README.read_text(encoding="utf-8")
    cut = "\n".join(line for line in text.splitlines() if not line.startswith("| `nettrain compare"))
    monkeypatch.setattr(sys.modules[__name__], "README", tmp_path / "README.md")
    (tmp_path / "README.md").write_text(cut, encoding="utf-8")
    with pytest.raises(AssertionError, match="compare"):
        test_readme_command_table_lists_every_command()


def test_app_options_and_shell_completion_are_documented():
    import typer

    from nettrain.cli import app

    group = typer.main.get_command(app)
    opts = [o for p in group.params for o in getattr(p, "opts", []) if o.startswith("--") and o != "--help"]
    assert {"--version", "--install-completion", "--show-completion"} <= set(opts)
    commands_doc = _section(doc_text(), "Commands")
    readme = _section(README.read_text(encoding="utf-8"), "Commands")
    for opt in opts:
        assert opt in commands_doc, f"nettrain {opt} undocumented in docs/config.md (## Commands)"
    for opt in ("--install-completion", "--show-completion"):
        assert opt in readme, f"nettrain {opt} missing from the README's Commands section"


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_to_a_section_of_the_docs_finds_its_heading():
    """`config.md#anchor` links (README, docs) and `](#anchor)` links inside a doc name a heading that exists."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    anchors = {p.name: {_slug(h) for h in re.findall(r"^#+ (.+)$", p.read_text(), re.M)} for p in docs.glob("*.md")}
    assert "output-streams" in anchors["config.md"] and "tracking" in anchors["config.md"]  # the walker works
    broken = []
    for page in [README, *docs.glob("*.md")]:
        text = page.read_text()
        for target, anchor in re.findall(r"\]\((?:[\w./-]*/)?([\w-]+\.md)?#([\w-]+)\)", text):
            name = target or page.name
            if name in anchors and anchor not in anchors[name]:
                broken.append(f"{page.name}: {name}#{anchor}")
    assert not broken, f"links to headings that do not exist: {broken}"
