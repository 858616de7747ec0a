"""A `runtime.distribute: multi_worker` run: the chief writes the run, the other workers train in step.

Every process runs the same `nettrain fit CONFIG` with its own `TF_CONFIG` (or `--worker I --workers
LIST`). The order is the same everywhere, so the collective steps pair up:

1. `runtime.setup` joins the cluster: `cluster.gather` waits (interruptibly, at most
   `runtime.worker_timeout`) until every process answers on its port, then TensorFlow forms the cluster
   (`distributed.join_cluster`). A port in use is exit 2, before TensorFlow loads (`cluster.check_port`).
2. Each process loads the data itself, with the same seed: the same split, the same normalization
   statistics and vocabularies (computed from the rows, identically).
3. The chief (the `chief` task, else worker 0) decides what runs: a fresh run, the continuation of
   its run (`--resume RUN_DIR`, read on the chief only), nothing (that run completed), or it stopped
   with an error before training; it broadcasts that plan (`distributed.broadcast_bytes`) with the
   files a worker needs to continue the same run (run.json, config.yaml, metrics.csv, last.h5, best.h5).
4. Every process checks that its data and config agree with the chief's (`distributed.agree`: a
   fingerprint of the rows and of the config without its machine-specific paths); any mismatch stops
   all of them with one line.
5. The same training session everywhere (`orchestrate.train_session`): the chief's in its run directory,
   each worker's in a temporary folder of its own (its checkpoints, metrics.csv and run.json only
   keep its callbacks identical to the chief's), removed when the worker ends, however it ends.
   Workers neither draw plots nor log to MLflow. Their weights are the chief's at the start of the
   session and stay identical (each update is all-reduced). A worker prints no path of its folder.

A process that dies stops the others with one line (`distributed.peers`); the chief's run is then
`failed` (or `interrupted`) after its last complete epoch, and `nettrain fit CONFIG --resume RUN_DIR`
on the chief, with every worker started again, continues it. Nothing here runs for `mirrored`,
which is one process (`orchestrate.fresh_run` and the rest, unchanged).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nettrain.config import cluster as C
from nettrain.config.schema import Config
from nettrain.errors import JobFailed, NettrainError, PeerLost, UsageError
from nettrain.lifecycle import orchestrate as O
from nettrain.lifecycle import resume as R
from nettrain.store import guard, rundir

if TYPE_CHECKING:
    from nettrain.training.fit import FitResult

# The files of a run a worker needs to continue it exactly as the chief does.
RESUME_FILES = (rundir.RUN, rundir.CONFIG, rundir.METRICS_CSV, f"{rundir.CHECKPOINTS}/{rundir.LAST}",
                f"{rundir.CHECKPOINTS}/{rundir.BEST}")
# Agreement codes, all-reduced (the largest wins): what went wrong where.
OK, CONFIG_DIFFERS, DATA_DIFFERS, NOT_READY = 0, 1, 2, 3


def fit(cfg: Config, *, run_dir: Path | None = None, resume: Path | None = None, quiet: bool = False,
        json_output: bool = False, force: bool = False) -> "FitResult":
    """`nettrain fit` under `runtime.distribute: multi_worker`, on one process of the cluster."""
    cluster = C.from_env()
    if cfg.data.split.folds > 1:
        raise cfg.error("runtime.distribute", "multi_worker trains one run; a k-fold run (data.split.folds > 1) "
                        "is not distributed over workers: use distribute: none or mirrored")
    if cluster.is_chief:
        from nettrain.training import tracking

        tracking.preflight(cfg)
        if run_dir is not None:
            rundir.check_run_dir(run_dir, force=force)  # before the slow part
    C.check_port(cluster)  # a port in use: exit 2 before TensorFlow loads
    quiet_native_logs()
    from nettrain.training import runtime  # first: TensorFlow's import chatter is hidden there
    from nettrain.training import distributed as D

    _, strategy = runtime.setup(cfg)  # joins the cluster: waits here until every process has started
    with D.peers(strategy):  # a peer's failure anywhere (a model built, a checkpoint loaded): one line
        if cluster.is_chief:
            return _chief(cfg, cluster, run_dir=run_dir, resume=resume, quiet=quiet, json_output=json_output,
                          force=force)
        return _worker(cfg, cluster, quiet=quiet, json_output=json_output)


def quiet_native_logs() -> None:
    """Before TensorFlow loads: its native log lines and gRPC's off (the collective's errors after a peer
    died, a dataset's warnings), since nettrain says what happened in its own line. TF_CPP_MIN_LOG_LEVEL=0,
    set by the user, keeps them all."""
    if "tensorflow" in sys.modules:
        return  # too late: TensorFlow read them when it loaded
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() != "0":
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")


# ------------------------------------------------------------------------------ the chief

def _chief(cfg: Config, cluster: C.Cluster, *, run_dir: Path | None, resume: Path | None, quiet: bool,
           json_output: bool, force: bool) -> "FitResult":
    from nettrain.training import fit as F
    from nettrain.training import runfiles as RF

    if resume is not None:
        resume = Path(resume)
        plan: dict[str, Any] = {}
        with _telling_failures(cfg, plan), R.opened(resume) as record:
            if R.is_kfold(cfg, record):
                raise UsageError(f"--resume {resume}: a k-fold run is not distributed over workers; resume it "
                                 "with --set runtime.distribute=none (or mirrored) --force")
            R.check_resumable(cfg, resume, record, force)
            prep = F.prepare(cfg, stream=O.recorded_stream(record))
            metrics = R.finished_metrics(resume, record, cfg.training.epochs)
            if metrics is None:
                R.check_same_data(prep, resume, record, force)
                plan.update(kind="resume", files=_pack(resume))
            else:
                plan.update(kind="done")
            _start(cfg, cluster, prep, plan)
            if metrics is not None:
                return O.completed_result(resume, record, metrics, json_output)
            result = _failing_with_resume_hint(resume, lambda: O.continue_run(
                prep, resume, record, quiet=quiet, json_output=json_output))
        _tell_weights(result, cluster, json_output)
        return result
    plan = {"kind": "fresh"}
    with _telling_failures(cfg, plan):
        prep = F.prepare(cfg)
        F.check_monitors(cfg, prep.dataset.schema, prep.has_val)
        prep.feed.class_weight(cfg)  # errors before anything is written
        _start(cfg, cluster, prep, plan)
    # Built after the plan, as on the workers: variables made in the strategy's scope are collective steps.
    model = F.new_model(prep)
    monitors = F.check_monitors(cfg, prep.dataset.schema, prep.has_val)
    with rundir.new_run_dir(cfg.output.dir, cfg.name or "run", run_dir, force=force) as out, guard.deferred():
        record = RF.start_run_dir(prep, model, out, monitors, cluster=_cluster_record(cluster, prep))
        result = _failing_with_resume_hint(out, lambda: O.train_session(
            prep, model, out, record, monitors, last_epoch=cfg.training.epochs, quiet=quiet,
            json_output=json_output))
    _tell_weights(result, cluster, json_output)
    return result


def _tell_weights(result: "FitResult", cluster: C.Cluster, json_output: bool) -> None:
    """The chief's final weights digest, which every worker prints too (the same when all went well)."""
    from nettrain.store import h5
    from nettrain.training import distributed as D
    from nettrain.training import fit as F

    weights = h5.load_model(result.run_dir / rundir.MODEL, restore_optimizer=False).get_weights()
    F.notice(f"{cluster.name()}, the chief: final weights {D.weights_digest(weights)[:16]}")


class _telling_failures:
    """Until the plan is sent: a failure on the chief is sent to the workers as the plan (they stop
    with its message instead of waiting for a peer that is gone), then raised here."""

    def __init__(self, cfg: Config, plan: dict[str, Any]):
        self.cfg, self.plan = cfg, plan

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or self.plan.get("sent"):
            return False
        message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        if isinstance(error, KeyboardInterrupt):
            message = "interrupted"
        try:
            from nettrain.training import distributed as D, runtime

            _, strategy = runtime.setup(self.cfg)
            D.broadcast_bytes(strategy, json.dumps({"kind": "failed", "message": message}).encode())
        except Exception:  # noqa: BLE001 - the workers then notice that the chief is gone
            pass
        return False


def _start(cfg: Config, cluster: C.Cluster, prep, plan: dict[str, Any]) -> None:
    """Send the plan, then check that every process agrees on the config and the data."""
    from nettrain.training import distributed as D

    message = {**plan, "config": _config_digest(cfg), "data": prep.dataset.fingerprint}
    with D.peers(prep.strategy, "starting"):
        D.broadcast_bytes(prep.strategy, json.dumps(message).encode())
        plan["sent"] = True
        _, worst = D.agree(prep.strategy, OK)
    if worst != OK:
        raise JobFailed(f"{_disagreement(int(worst))}; every worker must run the same config on the same data "
                        "(the workers' own output says more)")


def _cluster_record(cluster: C.Cluster, prep) -> dict[str, Any]:
    from nettrain.training import distributed as D

    n = D.replicas(prep.strategy)
    return {"strategy": "multi_worker", "workers": [a for _, _, a in cluster.tasks], "replicas": n,
            "batch_size": prep.cfg.training.batch_size,
            "per_replica_batch": D.per_replica_batch(prep.cfg.training.batch_size, n)}


def _failing_with_resume_hint(out: Path, run):
    """`run()`, a failure of the cluster told with how to continue the run."""
    try:
        return run()
    except PeerLost as e:
        raise PeerLost(f"{e.message}. The run so far is in {out}: start every worker again, the chief with "
                        f"nettrain fit CONFIG --resume {out}") from None


def _pack(run_dir: Path) -> str:
    """RESUME_FILES of the run as a tar archive, hex text (for the plan's JSON)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in RESUME_FILES:
            if (run_dir / name).is_file():
                tar.add(run_dir / name, arcname=name)
    return buffer.getvalue().hex()


def _unpack(text: str, run_dir: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(bytes.fromhex(text)), mode="r") as tar:
        tar.extractall(run_dir, filter="data")


def _config_digest(cfg: Config) -> str:
    """The config as every process must share it: without the paths that differ between machines,
    output and tracking (the chief's only)."""
    data = cfg.to_dict()
    for key in ("source", "train", "validation", "test"):
        if isinstance(data["data"].get(key), str):
            data["data"][key] = Path(data["data"][key]).name
    data.pop("output", None)
    data.pop("tracking", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _disagreement(code: int) -> str:
    return {CONFIG_DIFFERS: "a worker's config differs from the chief's",
            DATA_DIFFERS: "a worker's data differ from the chief's (another file, or other rows)",
            NOT_READY: "a worker could not load its data"}.get(code, "the workers disagree")


# ------------------------------------------------------------------------------ a worker

@dataclass
class WorkerResult:
    """What a worker ends with: the run is the chief's; the metrics are the same as the chief's."""

    status: str
    metrics: dict[str, dict[str, float]]
    worker: str
    chief: str
    weights: str | None = None   # sha256 of the final weights (`distributed.weights_digest`), the chief's too

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": None, "files": [], "worker": self.worker, "chief": self.chief, "weights": self.weights,
                **self.metrics}


def _worker(cfg: Config, cluster: C.Cluster, *, quiet: bool, json_output: bool) -> WorkerResult:
    from nettrain.training import distributed as D
    from nettrain.training import fit as F
    from nettrain.training import runtime

    _, strategy = runtime.setup(cfg)
    me, chief = cluster.name(), cluster.name(0)
    own = _worker_config(cfg)
    folder = _own_folder(cluster)
    try:
        prep, problem = None, None
        try:
            prep = F.prepare(own)
        except NettrainError as e:
            problem = e
        with D.peers(strategy, "starting"):
            plan = json.loads(D.broadcast_bytes(strategy, None).decode())
            if plan["kind"] == "failed":
                raise JobFailed(f"the chief, {chief}, stopped before training: {plan['message']}")
            code = NOT_READY if prep is None else CONFIG_DIFFERS if plan["config"] != _config_digest(cfg) else \
                DATA_DIFFERS if plan["data"] != prep.dataset.fingerprint else OK
            _, worst = D.agree(strategy, code)
        if problem is not None:
            raise problem
        if code != OK:
            raise UsageError(f"{me}: {_disagreement(code).replace('a worker', 'this worker', 1)}, {chief}: run the "
                             "same config on the same data on every worker")
        if worst != OK:
            raise JobFailed(f"{_disagreement(int(worst))}; every worker stops (that worker's output says more)")
        if plan["kind"] == "done":
            F.notice(f"{me}: the chief's run ({chief}) is complete already: nothing to train")
            return WorkerResult("completed", {}, me, chief)
        F.notice(f"{me}: training in step with the chief, {chief}, which writes the run")
        with _hiding(folder):
            result = _train_here(prep, folder / "run", plan, quiet=quiet)
        from nettrain.store import h5

        digest = D.weights_digest(h5.load_model(result.run_dir / rundir.MODEL, restore_optimizer=False).get_weights())
        F.notice(f"{me}: done, final weights {digest[:16]} (the chief prints its own); the chief, {chief}, wrote "
                 "the run")
        return WorkerResult("completed", result.metrics, me, chief, digest)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Hiding(io.TextIOBase):
    """A text stream writing to `target` every line that does not name the worker's temporary folder."""

    def __init__(self, target, hidden: tuple[str, ...]):
        super().__init__()
        self.target, self.hidden, self.pending = target, hidden, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._line(line + "\n")
        return len(text)

    def _line(self, line: str) -> None:
        if not any(h in line for h in self.hidden):
            self.target.write(line)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def end(self) -> None:
        if self.pending:
            self._line(self.pending)
        self.pending = ""
        self.flush()


@contextlib.contextmanager
def _hiding(folder: Path):
    """While a worker trains: no line naming its temporary folder (removed when it ends: the chief's run is
    the one to look at), and nothing on stdout (results only: the worker's own, printed at the end)."""
    hidden = tuple({str(folder), str(folder.resolve())})
    stream = _Hiding(sys.stderr, hidden)
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        try:
            yield
        finally:
            stream.end()


FOLDER_PREFIX = "nettrain-worker-"
PID_FILE = "pid"


def _own_folder(cluster: C.Cluster) -> Path:
    """The worker's temporary folder (removed when it ends); folders left by workers that were killed
    (their process is gone) are removed first."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{FOLDER_PREFIX}*"):
        try:
            pid = int((old / PID_FILE).read_text().strip())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (OSError, ValueError):  # another user's, or being created: left alone
            continue
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{cluster.index if cluster.role == 'worker' else 'c'}-"))
    (folder / PID_FILE).write_text(str(os.getpid()))
    return folder


def _worker_config(cfg: Config) -> Config:
    """The worker's copy of the config: no plots, no MLflow (the chief's)."""
    own = cfg.model_copy(deep=True)
    own.output.plots = False
    own.tracking.mlflow = None
    return own


def _train_here(prep, out: Path, plan: dict[str, Any], *, quiet: bool) -> "FitResult":
    """The worker's session, in its temporary folder `out`; its lines go to stderr."""
    from nettrain.training import fit as F
    from nettrain.training import runfiles as RF

    cfg = prep.cfg
    if plan["kind"] == "resume":
        out.mkdir(parents=True)
        _unpack(plan["files"], out)
        with R.opened(out) as record:
            return O.continue_run(prep, out, record, quiet=True, json_output=True)
    model = F.new_model(prep)
    monitors = F.check_monitors(cfg, prep.dataset.schema, prep.has_val)
    with rundir.new_run_dir(cfg.output.dir, "run", out) as run, guard.deferred():
        record = RF.start_run_dir(prep, model, run, monitors)
        return O.train_session(prep, model, run, record, monitors, last_epoch=cfg.training.epochs, quiet=True,
                        json_output=True)
