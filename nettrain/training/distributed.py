"""Training under a distribution strategy: `runtime.distribute: mirrored` and `multi_worker`.

The strategy (`make_strategy`): `tf.distribute.MirroredStrategy` over all local GPUs or the devices
of `runtime.devices` (`[cpu:0, cpu:1]` splits the CPU into logical devices, to try a mirrored config
on a laptop), or `tf.distribute.MultiWorkerMirroredStrategy` with the cluster of `TF_CONFIG`. The
model, its optimizer and its metrics are built in the strategy's scope (`fit.Prepared.scope`).

The training step is Keras's own `model.train_step`, run by `strategy.run` on every replica inside a
`tf.function` of nettrain's: the strategy branch of `engine.Loop` (`Replicas` here is what the branch
needs besides the step), because Keras 3's `model.fit` and `model.evaluate` fail under
`MultiWorkerMirroredStrategy` (keras-team/keras#20585: the symbolic build reduces a batch of
`PerReplica` values eagerly; measured with Keras 3.15.1 and TensorFlow 2.21). One code path serves
both strategies:

- Batches. `training.batch_size` is the global batch. Rows in memory (`engine.Shares`): every process
  holds all the training rows and draws the same (seed, epoch) permutation as the one-device run;
  replica r of R takes rows [r * ceil(B / R), (r + 1) * ceil(B / R)) of each global batch of B,
  gathered inside the graph (no per-batch input pipeline). That is data sharding of each global
  batch, with the one-device run's batches. Streamed rows (`data.stream`, `engine.DistributedBatches`):
  the feed's `tf.data` batches distributed with data sharding (`keras_compat.distribute_dataset`:
  every worker reads the file and keeps its replicas' share of each global batch). Validation and the
  final evaluation use the same distributed datasets, with `model.test_step`.
- Loss scaling. Keras divides each replica's mean loss by the number of replicas
  (`keras.losses.Loss` -> `scale_loss_for_distribution`) and the optimizer sums the replicas'
  gradients (`optimizer.apply_gradients` all-reduces them in the replica context), so an update is
  the mean gradient over the global batch when its replicas' shares are equal: the one-device
  update. The last, partial batch of an epoch is split unevenly (e.g. 7 rows as 4 + 3): each share's
  mean counts 1/R, as under Keras's own `fit` with a strategy.
- Metrics. Keras's metric variables are sum-aggregated on read (`synchronization=ON_READ`), so the
  logs read outside `strategy.run` (`model.get_metrics_result()`) are the global values, the same on
  every worker; early stopping, schedules, checkpoints and the NaN guard therefore decide the same
  on every worker. A worker's stop is all-reduced at the end of each epoch all the same.
- Multi-worker. Variables are created from the chief's initial values (the strategy broadcasts them)
  and are broadcast again from the chief before the first step (`sync_from_chief`), so a resumed or
  retrained model starts identical everywhere; `broadcast_bytes` carries the chief's plan to the
  workers (`nettrain.lifecycle.worker`). A peer that never starts is found before TensorFlow joins the
  cluster (`join_cluster`, `cluster.gather`); a peer that dies is noticed by TensorFlow's coordination
  service heartbeat (about 10 s) or by the collective timeout (`runtime.worker_timeout`, a hung peer),
  and `peers` turns the error into a `PeerLost` (a `JobFailed`) naming the peer.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Iterator

import numpy as np
import tensorflow as tf

import keras

from nettrain import keras_compat
from nettrain.config.schema import Config
from nettrain.errors import JobFailed, PeerLost
from nettrain.training import engine

# ------------------------------------------------------------------------------ the strategy

WORKER_TIMEOUT = 600.0  # seconds, runtime.worker_timeout's default
_STRATEGIES: dict[Any, tf.distribute.Strategy] = {}  # one per process and settings (TensorFlow allows one MWMS)


def make_strategy(cfg: Config) -> tf.distribute.Strategy | None:
    """The strategy of `runtime.distribute` (None for `none`), made once per process."""
    rt = cfg.runtime
    if rt.distribute == "none":
        return None
    key = (rt.distribute, tuple(rt.devices or ()), rt.worker_timeout, os.environ.get("TF_CONFIG"))
    if key in _STRATEGIES:
        return _STRATEGIES[key]
    if rt.distribute == "mirrored":
        strategy = tf.distribute.MirroredStrategy(devices=mirrored_devices(cfg))
    else:
        if any(isinstance(s, tf.distribute.MultiWorkerMirroredStrategy) for s in _STRATEGIES.values()):
            raise cfg.error("runtime.distribute", "multi_worker: this process already joined a cluster with "
                            "other settings; start a new process for each multi_worker run")
        strategy = join_cluster(rt.worker_timeout or WORKER_TIMEOUT)
    _STRATEGIES[key] = strategy
    return strategy


def join_cluster(timeout: float) -> tf.distribute.MultiWorkerMirroredStrategy:
    """The multi-worker strategy of TF_CONFIG's cluster, once every process answers on its port
    (`cluster.gather`: a port in use is exit 2, a peer that never starts exit 1 after `timeout`, and
    signals work while it waits). TensorFlow's own bring-up then holds the interpreter (no signal, no
    Python timer): a peer that dies just then ends this process with exit 1 after `timeout` + `GRACE`
    seconds (`_bring_up_watchdog`)."""
    from nettrain.config import cluster as C
    from nettrain.training.progress import notice

    cluster = C.from_env()  # a missing or malformed TF_CONFIG: one line, exit 2
    C.gather(cluster, timeout, notice)
    options = keras_compat.collective_timeout(timeout)
    try:
        with _bring_up_watchdog(timeout + GRACE):
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except tf.errors.UnknownError as e:
        if "grpc server" in str(e).lower():  # the port was taken between the check and TensorFlow's start
            raise C.port_in_use(cluster) from None
        raise


GRACE = 30.0  # seconds for TensorFlow's bring-up once every process answers (it takes about one)
_WATCH = ("import os, select, sys\n"
          "if not select.select([0], [], [], float(sys.argv[1]))[0]:\n"
          "    os.write(2, sys.argv[2].encode() + b'\\n')\n")


@contextlib.contextmanager
def _bring_up_watchdog(seconds: float) -> Iterator[None]:
    """Exit 1 with one line if the block still runs after `seconds`. While TensorFlow's bring-up holds the
    interpreter only native threads run: `faulthandler`'s timer ends the process (its thread report goes
    to /dev/null) and a small helper process, which ends with the block, prints the line just before."""
    import faulthandler
    import subprocess
    import sys

    line = (f"error: joining the cluster took more than {seconds:g} s after every worker had answered: a worker "
            "stopped while the cluster formed, or was given another cluster list; start every worker again with "
            "the same --workers list (or TF_CONFIG cluster)")
    sys.stderr.flush()
    helper = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCH, str(seconds), line],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    sink = open(os.devnull, "w")  # noqa: SIM115 - open as long as the timer may fire
    faulthandler.dump_traceback_later(seconds + 1.0, exit=True, file=sink)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        sink.close()
        helper.stdin.close()  # the helper sees the end of its input and exits without a word
        helper.wait()


def mirrored_devices(cfg: Config) -> list[str] | None:
    """TensorFlow device names for `runtime.devices` (None: all local GPUs, else the CPU). CPU devices
    beyond the one physical CPU device become logical devices (possible only before TensorFlow starts)."""
    devices = cfg.runtime.devices
    if not devices:
        return None
    kinds = {d.split(":")[0] for d in devices}
    indexes = [int(d.split(":")[1]) for d in devices]
    if kinds == {"gpu"}:
        gpus = tf.config.list_physical_devices("GPU")
        missing = [d for d, i in zip(devices, indexes) if i >= len(gpus)]
        if missing:
            raise cfg.error("runtime.devices", f"{', '.join(missing)}: TensorFlow sees {len(gpus)} GPU(s)"
                            + (f" (gpu:0..gpu:{len(gpus) - 1})" if gpus else " (install the CUDA build: "
                               "pip install 'nettrain[gpu]', or use cpu:N devices)"))
        return [f"/gpu:{i}" for i in indexes]
    logical_cpus(max(indexes) + 1, cfg)
    return [f"/cpu:{i}" for i in indexes]


def logical_cpus(count: int, cfg: Config | None = None) -> None:
    """At least `count` logical CPU devices (the physical CPU split), when TensorFlow has not started yet."""
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0]) or []
    if len(current) >= count:
        return
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # TensorFlow started already: its devices are fixed
        have = tf.config.list_logical_devices("CPU")
        if len(have) < count:
            message = (f"cpu:{count - 1} needs {count} logical CPU devices, but TensorFlow already started in this "
                       f"process with {len(have)}; run nettrain in a new process")
            if cfg is None:
                raise JobFailed(message) from None
            raise cfg.error("runtime.devices", message) from None


def replicas(strategy: tf.distribute.Strategy | None) -> int:
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run (the chief of a cluster, or the only process)."""
    return strategy is None or bool(strategy.extended.should_checkpoint)


def per_replica_batch(batch_size: int, count: int) -> int:
    return -(-batch_size // max(1, count))


def describe(strategy: tf.distribute.Strategy | None, batch_size: int) -> str:
    """'mirrored over 2 replicas (cpu:0, cpu:1), batch 32 = 16 per replica' (for run.json and validate)."""
    if strategy is None:
        return "one device"
    n = replicas(strategy)
    batch = f"global batch {batch_size} = {per_replica_batch(batch_size, n)} per replica"
    devices = ", ".join(_short(d) for d in strategy.extended.worker_devices)
    if is_multi_worker(strategy):
        workers = _workers(strategy)
        return (f"multi_worker over {n} replica(s): {workers} worker(s) x {n // max(1, workers)} ({devices}), "
                f"{batch}")
    return f"mirrored over {n} replica(s) ({devices}), {batch}"


def describe_config(cfg: Config) -> str:
    """What `runtime.distribute` will train on, without starting a strategy (`validate --build`): the
    strategy, the replicas and the per-replica batch."""
    rt, batch = cfg.runtime, cfg.training.batch_size
    if rt.distribute == "none":
        return f"distribute: none (one device: {rt.device}), batch {batch}"
    gpus = [] if rt.device == "cpu" else tf.config.list_physical_devices("GPU")
    if rt.distribute == "mirrored":
        devices = list(rt.devices or []) or [f"gpu:{i}" for i in range(len(gpus))] or ["cpu:0"]
        n = len(devices)
        return (f"distribute: mirrored over {n} replica(s) ({', '.join(devices)}), global batch {batch} = "
                f"{per_replica_batch(batch, n)} per replica")
    from nettrain.config import cluster as C

    cluster = C.from_env()
    local = 1 if rt.device.startswith("gpu:") else max(1, len(gpus))
    n = cluster.size * local
    return (f"distribute: multi_worker over {n} replica(s): {cluster.size} worker(s) x {local} "
            f"{'GPU' if gpus else 'CPU'} replica(s) (cluster from TF_CONFIG; this process is {cluster.name()}"
            f"{', the chief' if cluster.is_chief else ''}), global batch {batch} = {per_replica_batch(batch, n)} "
            "per replica")


def _workers(strategy: tf.distribute.Strategy) -> int:
    spec = strategy.cluster_resolver.cluster_spec().as_dict() if strategy.cluster_resolver else {}
    return max(1, sum(len(v) for k, v in spec.items() if k in ("chief", "worker")))


def _short(device: str) -> str:
    m = re.search(r"device:([A-Z]+):(\d+)$", device)
    return f"{m.group(1).lower()}:{m.group(2)}" if m else device


# ------------------------------------------------------------------------------ failures of peers

_PEER = re.compile(r"/job:(chief|worker)/(?:replica:\d+/)?task:(\d+)")
_ADDRESS = re.compile(r"ipv[46]:([^\s,;]+:\d+)")


def peer_failure(error: BaseException) -> str | None:
    """What a collective's error says about the other processes, in one line; None when it is not one."""
    if not isinstance(error, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                              tf.errors.CancelledError, tf.errors.InternalError, tf.errors.FailedPreconditionError)):
        return None
    text = str(error)
    lower = text.lower()
    if not any(w in lower for w in ("collective", "coordination", "heartbeat", "rpc", "connect", "unhealthy",
                                    "socket", "peer")):
        return None
    who = _who(text)
    if isinstance(error, tf.errors.DeadlineExceededError) or "timed out" in lower:
        return (f"{who or 'a peer'} did not take part in a collective step within runtime.worker_timeout "
                f"(it hangs or is far behind)")
    if "unhealthy" in lower or "heartbeat" in lower:
        return f"{who or 'a peer'} stopped (no heartbeat: it was killed, crashed or lost its network)"
    if any(w in lower for w in ("connection reset", "connection refused", "failed to connect", "socket closed",
                                "coordination service", "connection aborted", "broken pipe")):
        return f"{who or 'a peer'} stopped or cannot be reached (killed, crashed or off the network)"
    return f"a collective step with {who or 'the other workers'} failed ({_first_line(text)})"


def _who(text: str) -> str | None:
    """'worker 1 (host:port)': the first other process the error names."""
    from nettrain.config import cluster as C

    try:
        cluster = C.from_env()
    except Exception:  # noqa: BLE001 - the message is still useful without names
        return None
    for m in _PEER.finditer(text):
        rank = cluster.rank_of(m.group(1), int(m.group(2)))
        if rank is not None and rank != cluster.rank:
            return cluster.name(rank)
    for m in _ADDRESS.finditer(text):
        rank = cluster.rank_of_address(m.group(1))
        if rank is not None and rank != cluster.rank:
            return cluster.name(rank)
    return None


def _first_line(text: str) -> str:
    m = re.search(r"aborted by: ([^\n]+)", text)
    if m:
        return m.group(1).strip()[:200]
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("{{") and not line.endswith("error:") and "Detected at node" not in line:
            return line[:200]
    return text.strip()[:200]


@contextlib.contextmanager
def peers(strategy: tf.distribute.Strategy | None, doing: str = "training") -> Iterator[None]:
    """Turns the failure of another process of the cluster into one `PeerLost` line."""
    try:
        yield
    except tf.errors.OpError as e:
        why = peer_failure(e) if is_multi_worker(strategy) else None
        if why is None:
            raise
        raise PeerLost(f"{doing} stopped: {why}; a multi_worker run cannot go on without every worker") from None


# ------------------------------------------------------------------------------ collectives of the cluster

_COLLECTIVES: dict[tuple[int, str], Any] = {}  # (id of a strategy, op) -> its graph function


def _collective(strategy: tf.distribute.Strategy, op: str):
    """A graph function over all replicas: "SUM" sums a tensor, "GATHER" stacks one per replica, "FIRST"
    sums replica 0's tensor with zeros from the others (a broadcast from the chief). Traced once per
    strategy and op (and shape kind), not at every call."""
    key = (id(strategy), op)
    if key not in _COLLECTIVES:
        def replica(v):
            ctx = tf.distribute.get_replica_context()
            v = tf.identity(v)
            if op == "GATHER":
                return ctx.all_gather(tf.expand_dims(v, 0), axis=0)
            if op == "FIRST":
                v = tf.where(tf.equal(ctx.replica_id_in_sync_group, 0), v, tf.zeros_like(v))
            return ctx.all_reduce("SUM", v)

        @tf.function(reduce_retracing=True)
        def run(v):
            return strategy.run(replica, args=(v,))

        _COLLECTIVES[key] = run
    return _COLLECTIVES[key]


def _all_reduce(strategy: tf.distribute.Strategy, value, op: str) -> np.ndarray:
    out = _collective(strategy, op)(tf.convert_to_tensor(value))
    return keras_compat.local_results(strategy, out)[0].numpy()


def broadcast_bytes(strategy: tf.distribute.Strategy, payload: bytes | None) -> bytes:
    """The chief's `payload` on every process (the others pass None or anything: it is ignored)."""
    chief = is_chief(strategy)
    data = (payload or b"") if chief else b""
    size = int(_all_reduce(strategy, np.int64(len(data)), "FIRST"))
    if not size:
        return b""
    buf = np.zeros(-(-size // 4) * 4, np.uint8)
    if chief:
        buf[:size] = np.frombuffer(data, np.uint8)
    summed = _all_reduce(strategy, buf.view(np.int32), "FIRST")  # only the chief's first replica counts
    return summed.view(np.uint8)[:size].tobytes()


def agree(strategy: tf.distribute.Strategy, value: float) -> tuple[float, float]:
    """(min, max) of `value` over all processes (equal when they agree)."""
    out = _all_reduce(strategy, np.float64(value), "GATHER")
    return float(np.min(out)), float(np.max(out))


def sync_from_chief(strategy: tf.distribute.Strategy, variables: list) -> None:
    """Every variable set to the chief's value on every worker (a multi-worker strategy only)."""
    if not is_multi_worker(strategy) or not variables:
        return
    values = [v.value if hasattr(v, "value") and not isinstance(v, tf.Variable) else v for v in variables]

    @tf.function
    def run():
        def replica():
            ctx = tf.distribute.get_replica_context()
            first = tf.equal(ctx.replica_id_in_sync_group, 0)
            return [ctx.all_reduce("SUM", tf.where(first, tf.identity(v), tf.zeros_like(v))) for v in values]

        return strategy.run(replica)

    with peers(strategy, "starting"):
        synced = run()
    for var, value in zip(values, synced):
        var.assign(keras_compat.local_results(strategy, value)[0])


def weights_digest(weights: list[np.ndarray]) -> str:
    """sha256 of a model's weights (`model.get_weights()`), to show that two processes hold the same."""
    import hashlib

    h = hashlib.sha256()
    for w in weights:
        w = np.ascontiguousarray(w)
        h.update(f"{w.dtype}{w.shape}".encode())
        h.update(w.tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------ the strategy branch

class Replicas:
    """What `engine.Loop`'s strategy branch needs besides its step (Keras's `train_step` through
    `strategy.run`): the session around the training (peers watched, the model's state built from
    `first`, a few training rows (x, y), and synced from the chief), the validation by an `Evaluator`,
    and the stop agreed by all workers."""

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy, first: tuple):
        self.model, self.strategy, self.first = model, strategy, first
        self.count = replicas(strategy)
        self.evaluate = Evaluator(model, strategy)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        with peers(self.strategy):
            build_state(self.model, self.strategy, self.first)
            sync_from_chief(self.strategy, list(self.model.variables) + _optimizer_variables(self.model))
            yield

    def stop(self) -> bool:
        """Whether any worker stops (all do then); on one machine, model.stop_training."""
        stop = bool(self.model.stop_training)
        if is_multi_worker(self.strategy):
            stop = agree(self.strategy, 1.0 if stop else 0.0)[1] > 0
            self.model.stop_training = stop
        return stop


def build_state(model: keras.Model, strategy: tf.distribute.Strategy, batch: tuple) -> None:
    """The compiled loss's, the metrics' and the optimizer's variables created now, in the strategy's
    scope, from one eager inference pass on `batch` (x, y), as Keras's fit does before its first step
    (with symbolic tensors): created inside the training step's graph, under a strategy, they break
    its loop. The metrics it touched are reset; no weight changes."""
    x, y = batch[0], batch[1]
    with strategy.scope():
        y_pred = model(x, training=False)
        model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        model.compute_metrics(x, y, y_pred)
        model.reset_metrics()
        opt = getattr(model, "optimizer", None)
        if opt is not None and not getattr(opt, "built", False):
            opt.build(model.trainable_variables)


def _optimizer_variables(model: keras.Model) -> list:
    opt = getattr(model, "optimizer", None)
    return list(opt.variables) if opt is not None and getattr(opt, "built", False) else []


class Evaluator:
    """`model.evaluate(dataset, return_dict=True)` under `strategy`: Keras's `test_step` on every
    replica of a distributed dataset, the metrics read once at the end (summed over all replicas and
    workers, so every worker gets the same logs). One per model: its graph functions are traced once."""

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy):
        self.model, self.strategy = model, strategy

        def step(batch):
            strategy.run(model.test_step, args=(batch,))

        self._step = tf.function(step, reduce_retracing=True)
        self._results = tf.function(model.get_metrics_result)

    def __call__(self, dataset: tf.data.Dataset, callbacks: list[keras.callbacks.Callback] = ()) -> dict[str, float]:
        model = self.model
        cbs = keras.callbacks.CallbackList(list(callbacks), add_history=False, add_progbar=False, model=model,
                                           verbose=0)
        with peers(self.strategy, "evaluation"):
            model.reset_metrics()
            cbs.on_test_begin()
            for i, batch in enumerate(keras_compat.distribute_dataset(self.strategy, dataset)):
                cbs.on_test_batch_begin(i)
                self._step(batch)
                cbs.on_test_batch_end(i, {})
            logs = engine.as_floats(self._results())
            cbs.on_test_end(logs)
        return logs


def evaluate_feed(model: keras.Model, feed,
                  callbacks: list[keras.callbacks.Callback] = ()) -> dict[str, dict[str, float]]:
    """The final metrics {split: {metric: value}} of `feed.evaluation` under the model's strategy."""
    evaluate = Evaluator(model, model.distribute_strategy)
    return {name: evaluate(ds, callbacks) for name, ds in feed.evaluation(model).items()}


def needs_own_evaluation(model: keras.Model) -> bool:
    """Whether the model was built under a strategy of nettrain's: Keras's `model.evaluate` fails under
    a multi-worker strategy (keras-team/keras#20585) and, with string inputs (a categorical or text
    column), under a mirrored one too (its symbolic build reduces the batch); an `Evaluator` does not."""
    return isinstance(model.distribute_strategy, (tf.distribute.MirroredStrategy,
                                                  tf.distribute.MultiWorkerMirroredStrategy))


def session_loop(session, cursor, *, batch_size: int, steps_per_call: int, class_weight: dict[int, float] | None,
                 mode: str) -> engine.Loop | None:
    """The `engine.Loop` that trains `session` under its strategy (its `Replicas`): rows in memory in
    `engine.Shares` or a stream's batches in `engine.DistributedBatches` (the feed's batches of the
    epoch `cursor` says); None for a feed of another kind."""
    from nettrain.training.feed import ArrayFeed, StreamFeed

    model, strategy, feed = session.model, session.strategy, session.feed
    if isinstance(feed, ArrayFeed):
        x, y = feed.train_tensors(model)
        first = {k: v[:2] for k, v in x.items()}, y[:2]
        return engine.ArrayLoop(model, x, y, batch_size=batch_size, seed=session.prep.cfg.seed,
                                steps_per_call=steps_per_call, class_weight=class_weight, mode=mode,
                                replicas=Replicas(model, strategy, first))
    if isinstance(feed, StreamFeed):
        dataset = feed.training(model, cursor)
        if class_weight:
            dataset = dataset.map(_weighting(class_weight, mode))
        replicas = Replicas(model, strategy, _first_stream_rows(feed, model))
        batches = engine.DistributedBatches(keras_compat.distribute_dataset(strategy, dataset), steps=feed.steps)
        return engine.Loop(model, batches, steps=feed.steps, steps_per_call=steps_per_call, replicas=replicas)
    return None


def _first_stream_rows(feed, model: keras.Model) -> tuple:
    """The first 2 training rows of a stream (file order, read apart from the epochs and their cache)."""
    from nettrain.model.compile import encode_targets
    from nettrain.training.feed import model_inputs

    rows = feed.dataset.reader.rows(feed.dataset.codes["train"], limit=2)
    try:
        first = next(rows)
    finally:
        rows.close()
    return model_inputs(model, first.inputs), tf.constant(encode_targets(first.y, feed.mode, feed.n_classes))


def _weighting(class_weight: dict[int, float], mode: str):
    """(x, y) -> (x, y, the rows' class weights), as Keras's `fit(class_weight=...)` adds them."""
    table = np.ones(int(max(class_weight)) + 1, np.float32)
    for k, w in class_weight.items():
        table[int(k)] = float(w)
    table_t = tf.constant(table)

    def add(x, y):
        labels = tf.argmax(y, axis=-1) if mode == "one_hot" else tf.reshape(tf.cast(y, tf.int64), [-1])
        known = labels < len(table)
        return x, y, tf.where(known, tf.gather(table_t, tf.where(known, labels, 0)), 1.0)

    return add
