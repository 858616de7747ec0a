"""MODEL.md, the model card of a run: plain Markdown drawn from what the run directory holds.

`write_model_card(run_dir)` reads run.json, metrics.json, config.yaml, features.json, metrics.csv and
exports.json (written by `nettrain export`) and writes MODEL.md atomically; it can be called again at
any time (after an export, say) and draws the same card from the same files. What it says:

1. what the model predicts (task, target, classes, inputs);
2. the data: source, fingerprint, rows per split, class balance per split;
3. the config in brief (layers, loss, optimizer, batch size, epochs, early stopping, seed);
4. the final metrics per split, and the test split's bootstrap 95% interval (metrics.json
   `test_interval`, see `report.interval`);
5. how training ended: epochs done, best epoch, early stop, the epoch whose weights were kept;
6. the export formats written (exports.json), "none yet" without one;
7. the limits seen, one bullet each (`limits`).

Nothing here imports TensorFlow: the card is text from files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from nettrain.report.tables import format_value
from nettrain.store import atomic, rundir
from nettrain.words import clip, one_line

EXPORTS = "exports.json"       # written by `nettrain export`: [{"format", "path", "max_abs_diff", ...}]

# the limits worth a bullet
FEW_TRAIN_ROWS = 20            # a class with fewer training rows
FEW_TEST_ROWS = 5              # a class with fewer test rows
SMALL_TEST = 100               # a test split with fewer rows: wide intervals
EARLY_STOP_SOON = 2            # an early stop at or before this epoch


def write_model_card(run_dir: str | Path) -> Path:
    """Draw MODEL.md from the run directory's files and write it there atomically; its path."""
    run_dir = Path(run_dir)
    path = run_dir / rundir.MODEL_CARD
    atomic.write_text(path, render(run_dir))
    return path


# ------------------------------------------------------------------------------ reading the run

def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _config(run_dir: Path) -> dict:
    try:
        return rundir.read_run_config(run_dir)
    except Exception:  # noqa: BLE001 - a card is drawn from what there is
        return {}


def _history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / rundir.METRICS_CSV
    if not path.is_file():
        return []
    try:
        return rundir.MetricsCSV(path).read()
    except Exception:  # noqa: BLE001 - a card is drawn from what there is
        return []


class _Run:
    """What the card reads, each file once."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.record = _mapping(_json(run_dir / rundir.RUN))
        self.metrics = _mapping(_json(run_dir / rundir.METRICS_JSON))
        self.features = _mapping(_json(run_dir / rundir.FEATURES))
        self.config = _config(run_dir)
        self.history = _history(run_dir)
        exports = _json(run_dir / EXPORTS)
        self.exports = [e for e in exports if isinstance(e, dict)] if isinstance(exports, list) else []
        self.data = _mapping(self.record.get("data"))

    @property
    def rows(self) -> dict[str, int]:
        rows = _mapping(self.data.get("rows"))
        return {s: int(rows[s]) for s in rundir.SPLITS if isinstance(rows.get(s), int)}

    @property
    def class_counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: rows}}: run.json `data.class_counts` (or a stream's shares times its rows)."""
        counts = _mapping(self.data.get("class_counts"))
        if counts:
            return {s: {str(k): int(v) for k, v in _mapping(counts.get(s)).items()} for s in rundir.SPLITS
                    if counts.get(s)}
        shares, rows = _mapping(self.data.get("class_shares")), self.rows
        return {s: {str(k): round(float(v) * rows.get(s, 0)) for k, v in _mapping(shares[s]).items()}
                for s in rundir.SPLITS if shares.get(s)}

    @property
    def interval(self) -> dict[str, Any]:
        return _mapping(self.metrics.get("test_interval"))

    @property
    def kfold(self) -> bool:
        folds = self.record.get("folds")
        return isinstance(folds, int) and folds > 1 and self.record.get("fold") is None


# ------------------------------------------------------------------------------ the card

def render(run_dir: str | Path) -> str:
    """The card's Markdown for the run in `run_dir`."""
    run = _Run(Path(run_dir))
    parts = [_title(run), _predicts(run), _data(run), _configuration(run), _metrics(run), _training(run),
             _exports(run), _limits_section(run)]
    return "\n\n".join(p.rstrip() for p in parts if p) + "\n"


def _cell(value: Any, limit: int = 80) -> str:
    """A value for a table cell or an inline code span: one line, clipped, no `|` or backtick breaking it."""
    return clip(one_line(value), limit).replace("|", "\\|").replace("`", "'")


def _code(value: Any, limit: int = 80) -> str:
    return f"`{_cell(value, limit)}`"


def _table(header: list[str], rows: list[list[Any]], numbers: bool = True) -> str:
    """A Markdown table; with `numbers`, every column but the first right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 or not numbers else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _title(run: _Run) -> str:
    rec = run.record
    name = rec.get("name") or run.dir.name
    where = []
    for key, label in (("status", "status"), ("started", "started"), ("ended", "ended")):
        if rec.get(key):
            where.append(f"{label} {_cell(rec[key])}")
    version = _mapping(rec.get("versions")).get("nettrain")
    if version:
        where.append(f"nettrain {_cell(version)}")
    kind = "k-fold run" if run.kfold else ("fold " + str(rec["fold"]) + " of a k-fold run"
                                           if rec.get("fold") is not None else "run")
    head = f"# Model card: {_cell(name)}\n\nA nettrain {kind} in `{_cell(run.dir.name)}`"
    return head + (f" ({', '.join(where)})." if where else ".")


def _predicts(run: _Run) -> str:
    feats, rec = run.features, run.record
    task = rec.get("task") or feats.get("task")
    target = feats.get("target")
    names = feats.get("class_names") or []
    lines = ["## What it predicts", ""]
    what = f"`{_cell(target)}`" if target else "the target"
    if task == "regression":
        lines.append(f"- Task: regression of {what}.")
    elif task:
        lines.append(f"- Task: {_cell(task)} classification of {what} into {len(names)} classes: "
                     + ", ".join(_code(n, 40) for n in names[:20]) + (" ..." if len(names) > 20 else "") + ".")
    columns = [c for c in feats.get("columns") or [] if isinstance(c, dict)]
    if columns:
        shown = ", ".join(f"`{_cell(c.get('name'), 40)}` ({_cell(c.get('kind'))})" for c in columns[:30])
        lines.append(f"- Inputs: {len(columns)} feature(s): {shown}" + (" ..." if len(columns) > 30 else "") + ".")
    if feats.get("id_column"):
        lines.append(f"- Identifier column (never a feature): `{_cell(feats['id_column'])}`.")
    if rec.get("label_mode"):
        lines.append(f"- Label encoding: {_cell(rec['label_mode'])}.")
    lines.append(f"- Model file: `{rundir.MODEL}` (preprocessing inside: it takes raw feature values).")
    return "\n".join(lines)


def _data(run: _Run) -> str:
    data = run.data
    lines = ["## Data", ""]
    lines.append(f"- Source: `{_cell(data.get('source'), 120)}`" + (" (streamed)" if data.get("stream") else ""))
    lines.append(f"- Fingerprint: `{_cell(data.get('fingerprint') or 'not recorded')}`")
    rows, counts = run.rows, run.class_counts
    if not rows:
        return "\n".join(lines + ["- Rows per split: not recorded"])
    classes = list(dict.fromkeys(c for split in counts.values() for c in split))
    header = ["split", "rows"] + [f"class {_cell(c, 30)}" for c in classes]
    table = []
    for split in rundir.SPLITS:
        if split not in rows:
            continue
        n = rows[split]
        row: list[Any] = [split, n]
        for c in classes:
            k = counts.get(split, {}).get(c)
            row.append("-" if k is None else f"{k} ({100 * k / n:.1f}%)" if n else str(k))
        table.append(row)
    fold = " (as run.json records them: train and validation are one fold's rows; each fold's card has its own)" \
        if run.kfold else ""
    lines += ["", "Rows per split" + (" and class balance" if classes else "") + fold + ":", "", _table(header, table)]
    return "\n".join(lines)


def _layer(layer: Any) -> str:
    if not isinstance(layer, dict):
        return _cell(layer, 40)
    args = ", ".join(f"{k}={_cell(v, 20)}" for k, v in layer.items() if k != "type" and v is not None)
    return f"{_cell(layer.get('type'), 30)}({args})"


def _named(value: Any) -> str:
    if isinstance(value, dict):
        name = value.get("name") or value.get("type")
        args = ", ".join(f"{k}={_cell(v, 20)}" for k, v in value.items() if k not in ("name", "type"))
        return f"{_cell(name, 30)}({args})" if args else _cell(name, 30)
    return _cell(value, 40)


def _configuration(run: _Run) -> str:
    cfg = run.config
    if not cfg:
        return "## Configuration\n\nconfig.yaml could not be read."
    model, training = _mapping(cfg.get("model")), _mapping(cfg.get("training"))
    data, pre = _mapping(cfg.get("data")), _mapping(cfg.get("preprocessing"))
    callbacks, runtime = _mapping(cfg.get("callbacks")), _mapping(cfg.get("runtime"))
    split = _mapping(data.get("split"))
    layers = model.get("layers") or []
    rows: list[list[Any]] = [
        ["model.layers", "; ".join(_layer(x) for x in layers[:12]) + (" ..." if len(layers) > 12 else "") or "none"],
        ["training.loss", _named(training.get("loss"))],
        ["training.optimizer", _named(training.get("optimizer"))],
        ["training.metrics", _named(training.get("metrics")) if not isinstance(training.get("metrics"), list)
         else ", ".join(_named(m) for m in training["metrics"])],
        ["training.epochs", training.get("epochs")],
        ["training.batch_size", training.get("batch_size")],
        ["training.class_weight", _named(training.get("class_weight"))],
        ["data.split", ", ".join(f"{k} {_cell(split[k])}" for k in ("test", "validation", "folds", "refit")
                                 if k in split and (k in ("test", "validation") or (split.get("folds") or 1) > 1))],
        ["preprocessing", ", ".join(f"{k} {_cell(pre[k])}" for k in ("numeric", "categorical", "missing", "target")
                                    if k in pre and (k != "target" or run.record.get("task") == "regression"))],
        ["callbacks.early_stopping", _early_stopping(callbacks.get("early_stopping"))],
        ["callbacks.lr_schedule", _named(callbacks.get("lr_schedule")) if callbacks.get("lr_schedule") else "none"],
        ["seed", cfg.get("seed")],
        ["runtime", ", ".join(f"{k} {_cell(runtime[k])}" for k in ("device", "distribute", "mixed_precision")
                              if k in runtime)],
    ]
    return "## Configuration (in brief)\n\nThe whole config is `config.yaml`.\n\n" + _table(["key", "value"], rows,
                                                                                         numbers=False)


def _early_stopping(es: Any) -> str:
    if not isinstance(es, dict):
        return "off"
    return (f"monitor {_cell(es.get('monitor'))}, patience {_cell(es.get('patience'))}"
            + (", restore_best_weights" if es.get("restore_best_weights") else ""))


def _split_table(metrics: Mapping[str, Any]) -> str | None:
    splits = [s for s in rundir.SPLITS if isinstance(metrics.get(s), dict)]
    if not splits:
        return None
    names = list(dict.fromkeys(m for s in splits for m in metrics[s]))
    return _table(["metric", *splits], [[m, *(format_value(metrics[s].get(m)) for s in splits)] for m in names])


def _metrics(run: _Run) -> str:
    m = run.metrics
    lines = ["## Metrics", ""]
    if not m:
        return "\n".join(lines + ["No metrics.json: the run did not complete."])
    if run.kfold:
        mean, std = _mapping(m.get("mean")), _mapping(m.get("std"))
        folds = m.get("folds") if isinstance(m.get("folds"), list) else []
        splits = [s for s in rundir.SPLITS if isinstance(mean.get(s), dict)]
        names = list(dict.fromkeys(k for s in splits for k in mean[s]))
        lines += [f"Mean ± std over {len(folds)} folds:", "",
                  _table(["metric", *splits], [[k, *(f"{format_value(mean[s].get(k))} ± "
                                                     f"{format_value(_mapping(std.get(s)).get(k))}"
                                                     for s in splits)] for k in names])]
        refit = _mapping(m.get("refit"))
        if refit:
            members = _mapping(run.record.get("refit")).get("members")
            what = (f"The ensemble model (`model.h5`, the mean of the {members} fold models' predictions):" if members
                    else "The refit model (`model.h5`, trained on all the non-test rows):")
            lines += ["", what, "", _split_table(refit) or "none"]
    else:
        lines.append(_split_table(m) or "none")
    lines += ["", _interval(run)]
    return "\n".join(lines)


def _interval(run: _Run) -> str:
    iv = run.interval
    found = _mapping(iv.get("metrics"))
    if not found:
        if run.rows.get("test"):
            return "Test split, 95% interval: not computed."
        if run.kfold and not _mapping(run.metrics.get("refit")):
            return "Test split, 95% interval: not computed (a k-fold run without a refit model; see each fold's MODEL.md)."
        return "Test split, 95% interval: none (the run has no test split)."
    level = iv.get("level", 0.95)
    pct = f"{100 * float(level):.0f}%"
    rows_used, of_rows = iv.get("rows"), iv.get("of_rows")
    on = f"{rows_used} test rows" if rows_used == of_rows or of_rows is None else \
        f"{rows_used} of the {of_rows} test rows"
    text = [f"Test split, bootstrap {pct} interval ({iv.get('resamples')} resamples of the {on}, seed {iv.get('seed')}; "
            "computed from the model's outputs):", ""]
    table = [[name, format_value(v.get("value")), f"{format_value(v.get('low'))} – {format_value(v.get('high'))}"]
             for name, v in found.items() if isinstance(v, dict)]
    return "\n".join(text + [_table(["metric", "test", f"{pct} interval"], table)])


def _training(run: _Run) -> str:
    rec = run.record
    lines = ["## Training", ""]
    if run.kfold:
        lines.append(f"- Folds: {rec.get('folds_done', rec.get('folds'))} of {rec.get('folds')} done "
                     "(each fold is a run in `fold-<i>/` with its own MODEL.md).")
        refit = _mapping(rec.get("refit"))
        if refit.get("members"):
            lines.append(f"- Ensemble: `model.h5` averages the {refit.get('members')} fold models' predictions "
                         f"(data.split.refit: ensemble); nothing more was trained.")
            return "\n".join(lines)
        if refit:
            lines.append(f"- Refit: {refit.get('epochs')} epoch(s), the mean of the folds' best epochs "
                         f"{refit.get('fold_best_epochs')}, on {refit.get('rows')} rows.")
        else:
            return "\n".join(lines)
    lines.append(f"- Epochs: {rec.get('epochs_done')} done of {rec.get('epochs')} planned.")
    best = rec.get("best_epoch")
    monitor = rec.get("monitor")
    if best is not None:
        value = next((r.get(monitor) for r in run.history if _int(r.get("epoch")) == best), None) if monitor else None
        lines.append(f"- Best epoch: {best}" + (f" ({_cell(monitor)} {format_value(value)})" if monitor else "") + ".")
    else:
        lines.append("- Best epoch: none (no finite monitored value).")
    stopped = rec.get("stopped_epoch")
    lines.append(f"- Early stop: at epoch {stopped}." if stopped else "- Early stop: no.")
    kept = rec.get("weights_epoch")
    if kept is not None and kept != rec.get("epochs_done"):
        lines.append(f"- The model keeps the weights of epoch {kept} (early stopping's restore_best_weights).")
    retrains = rec.get("retrains")
    if isinstance(retrains, list) and retrains:
        lines.append(f"- Retrained {len(retrains)} time(s) (`nettrain retrain`).")
    return "\n".join(lines)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _exports(run: _Run) -> str:
    if not run.exports:
        return "## Exports\n\nnone yet (`nettrain export RUN` writes them)."
    rows = [[e.get("format"), e.get("path"), format_value(e.get("max_abs_diff")), format_value(e.get("rows_compared")),
             e.get("written_at")] for e in run.exports]
    return "## Exports\n\n" + _table(["format", "path", "max abs diff", "rows compared", "written"], rows)


def limits(run_dir: str | Path) -> list[str]:
    """The limits seen in the run, one sentence each (the card's last section)."""
    return _limits(_Run(Path(run_dir)))


def _limits(run: _Run) -> list[str]:
    rec, rows = run.record, run.rows
    out = []
    counts = run.class_counts
    for split, few in (("train", FEW_TRAIN_ROWS), ("test", FEW_TEST_ROWS)):
        for name, n in counts.get(split, {}).items():
            if n < few:
                out.append(f"Class `{_cell(name, 40)}` has {n} {split} row(s) (fewer than {few}): its metrics "
                           "are unreliable.")
    test = rows.get("test")
    if test is not None and 0 < test < SMALL_TEST:
        out.append(f"The test split has {test} rows (fewer than {SMALL_TEST}): the intervals are wide.")
    elif not test and not run.kfold:
        out.append("There is no test split: the metrics are those of rows used to train or choose the model.")
    iv = run.interval
    if iv.get("rows") is not None and iv.get("of_rows") is not None and iv["rows"] < iv["of_rows"]:
        out.append(f"The test interval is computed on {iv['rows']} of the {iv['of_rows']} test rows.")
    stopped, best, done = rec.get("stopped_epoch"), rec.get("best_epoch"), rec.get("epochs_done")
    if isinstance(stopped, int) and stopped <= EARLY_STOP_SOON:
        out.append(f"Early stopping ended training at epoch {stopped}: the model may have barely trained.")
    if isinstance(best, int) and isinstance(done, int) and best == done and not stopped and done > 0 \
            and not run.kfold:
        out.append(f"The best epoch is the last one ({best}): the model may be undertrained (more epochs may help).")
    for note in rec.get("notes") or []:
        out.append(f"Note from training: {_cell(note, 200)}")
    return out


def _limits_section(run: _Run) -> str:
    found = _limits(run)
    return "## Limits seen\n\n" + ("\n".join(f"- {x}" for x in found) if found else "none seen")
