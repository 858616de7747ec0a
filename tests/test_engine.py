"""`training.engine`: nettrain's own epoch loops train exactly what `model.fit` trains on the same
batches (the same weights bit for bit, the same logs, the same optimizer steps), and a stream's
cache of prepared rows gives the same rows as parsing the file again."""

import textwrap
import warnings

import numpy as np
import pytest

import keras
import tensorflow as tf

from nettrain.config.loader import load_config
from nettrain.data import chunks as C
from nettrain.data import stream as S
from nettrain.training import engine, feed as FD
from nettrain.training import fit as F


@pytest.fixture(autouse=True)
def determinism():
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()


def _model(spe: int, loss="binary_crossentropy", out_activation="sigmoid", units=1, **adam):
    keras.utils.set_random_seed(1)
    inp = keras.Input((5,), name="numeric")
    hidden = keras.layers.Dense(8, activation="relu")(inp)
    model = keras.Model({"numeric": inp}, keras.layers.Dense(units, activation=out_activation)(hidden))
    model.compile(keras.optimizers.Adam(0.01, **adam), loss, metrics=["accuracy"], steps_per_execution=spe)
    return model


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.epoch = [], 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((epoch, {k: float(v) for k, v in logs.items()}))


def _same(a: keras.Model, b: keras.Model) -> None:
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)
    assert int(a.optimizer.iterations.numpy()) == int(b.optimizer.iterations.numpy())


def _data(n=1000):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype("float32")
    return x, (x.sum(axis=1, keepdims=True) > 0).astype("float32")


@pytest.mark.parametrize("spe", [1, 4, 7])
def test_array_loop_trains_what_fit_trains_on_the_feeds_batches(spe):
    x, y = _data()
    a, ra, cursor = _model(spe), Record(), FD.EpochCursor(1)
    train = FD.training_dataset({"numeric": tf.constant(x)}, y, batch_size=64, seed=7, cursor=cursor)
    val = FD.evaluation_dataset({"numeric": tf.constant(x[:200])}, y[:200], 64)
    a.fit(train, epochs=3, validation_data=val, callbacks=[cursor, ra], verbose=0, shuffle=False)
    b, rb = _model(spe), Record()
    engine.ArrayLoop(b, {"numeric": tf.constant(x)}, tf.constant(y), batch_size=64, seed=7,
                     steps_per_call=spe).fit(initial_epoch=0, epochs=3, callbacks=[rb], validation_data=val)
    _same(a, b)
    assert ra.epochs == rb.epochs
    assert set(rb.epochs[-1][1]) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_held_rows_validate_as_fit_validates_and_every_step_is_traced_once(monkeypatch):
    """The validation of rows in memory (`HeldRows`: Keras's test_step in one traced graph) logs what
    `fit`'s validation logs, bit for bit; the training step and the test step are each traced once
    (state built before the loop's trace), and one evaluation graph serves splits of any length."""
    x, y = _data()
    a, ra, cursor = _model(4), Record(), FD.EpochCursor(1)
    train = FD.training_dataset({"numeric": tf.constant(x)}, y, batch_size=64, seed=7, cursor=cursor)
    val = FD.evaluation_dataset({"numeric": tf.constant(x[:200])}, y[:200], 64)
    a.fit(train, epochs=3, validation_data=val, callbacks=[cursor, ra], verbose=0, shuffle=False)
    b, rb = _model(4), Record()
    traces = {"train": 0, "test": 0}
    for name in traces:
        step = getattr(type(b), f"{name}_step")

        def counted(self, data, _step=step, _name=name):
            traces[_name] += 1  # runs only while a graph is traced
            return _step(self, data)
        monkeypatch.setattr(type(b), f"{name}_step", counted)
    held = engine.HeldRows({"numeric": tf.constant(x[:200])}, tf.constant(y[:200]), batch_size=64)
    engine.ArrayLoop(b, {"numeric": tf.constant(x)}, tf.constant(y), batch_size=64, seed=7,
                     steps_per_call=4).fit(initial_epoch=0, epochs=3, callbacks=[rb], validation_data=held)
    _same(a, b)
    assert ra.epochs == rb.epochs
    assert traces == {"train": 1, "test": 1}
    got = {n: engine.HeldRows({"numeric": tf.constant(x[:n])}, tf.constant(y[:n]), batch_size=64).evaluate(b)
           for n in (1, 130, 1000)}  # other splits, other lengths: the same graph
    assert traces == {"train": 1, "test": 1}
    for n, logs in got.items():
        assert logs == b.evaluate(x[:n], y[:n], batch_size=64, verbose=0, return_dict=True)


def test_a_model_compiled_and_never_run_is_evaluated_by_one_trace(monkeypatch):
    """`HeldRows` on a model whose metrics were never built (a k-fold ensemble, compiled and evaluated):
    the state is built eagerly first, so two splits share one graph traced once (not three traces),
    and the metrics are `evaluate`'s."""
    x, y = _data()
    model = _model(1)
    traces = []
    step = type(model).test_step

    def counted(self, data):
        traces.append(1)  # runs only while a graph is traced
        return step(self, data)
    monkeypatch.setattr(type(model), "test_step", counted)
    got = [engine.HeldRows({"numeric": tf.constant(x[:n])}, tf.constant(y[:n]), batch_size=64).evaluate(model)
           for n in (300, 1000)]
    assert len(traces) == 1
    monkeypatch.setattr(type(model), "test_step", step)
    for n, logs in zip((300, 1000), got):
        assert logs == model.evaluate(x[:n], y[:n], batch_size=64, verbose=0, return_dict=True)


def test_the_loop_ends_as_fit_ends_with_the_ema_weights_swapped_in():
    """`use_ema`: fit puts the moving averages into the weights after the last epoch
    (`finalize_variable_values`); the own loop does too, so the final weights are the same."""
    x, y = _data()
    a, cursor = _model(4, use_ema=True, ema_momentum=0.9), FD.EpochCursor(1)
    a.fit(FD.training_dataset({"numeric": tf.constant(x)}, y, batch_size=64, seed=2, cursor=cursor),
          epochs=2, callbacks=[cursor], verbose=0, shuffle=False)
    b = _model(4, use_ema=True, ema_momentum=0.9)
    before = []
    engine.ArrayLoop(b, {"numeric": tf.constant(x)}, tf.constant(y), batch_size=64, seed=2, steps_per_call=4).fit(
        initial_epoch=0, epochs=2, callbacks=[keras.callbacks.LambdaCallback(
            on_epoch_end=lambda e, logs: before.append(b.get_weights()))])
    _same(a, b)
    assert not np.array_equal(before[-1][0], b.get_weights()[0])  # the averages, not the last step's weights


def test_array_loop_resumes_at_an_epoch_as_fit_does():
    x, y = _data()
    a, cursor = _model(4), FD.EpochCursor(1)
    a.fit(FD.training_dataset({"numeric": tf.constant(x)}, y, batch_size=64, seed=3, cursor=cursor),
          epochs=3, callbacks=[cursor], verbose=0, shuffle=False)
    b = _model(4)
    loop = engine.ArrayLoop(b, {"numeric": tf.constant(x)}, tf.constant(y), batch_size=64, seed=3, steps_per_call=4)
    loop.fit(initial_epoch=0, epochs=1, callbacks=[])
    loop.fit(initial_epoch=1, epochs=3, callbacks=[])
    _same(a, b)


def test_class_weights_become_the_sample_weights_fit_would_use():
    x, y = _data()
    weight = {0: 0.25, 1: 3.0}
    a, cursor = _model(2), FD.EpochCursor(1)
    a.fit(FD.training_dataset({"numeric": tf.constant(x)}, y, batch_size=64, seed=1, cursor=cursor),
          epochs=2, callbacks=[cursor], verbose=0, shuffle=False, class_weight=weight)
    b = _model(2)
    engine.ArrayLoop(b, {"numeric": tf.constant(x)}, tf.constant(y), batch_size=64, seed=1, steps_per_call=2,
                     class_weight=weight, mode="binary").fit(initial_epoch=0, epochs=2, callbacks=[])
    _same(a, b)
    one_hot = np.eye(3, dtype="float32")[[0, 2, 1, 2]]
    np.testing.assert_array_equal(engine.class_sample_weights(one_hot, "one_hot", {0: 1.0, 1: 2.0, 2: 5.0}),
                                  [1.0, 5.0, 2.0, 5.0])
    assert engine.class_sample_weights(one_hot, "one_hot", None) is None


def test_a_stop_request_ends_the_epoch_after_the_current_call():
    x, y = _data()

    class StopAtSecondCall(keras.callbacks.Callback):
        calls = 0

        def on_train_batch_end(self, batch, logs=None):
            StopAtSecondCall.calls += 1
            if StopAtSecondCall.calls == 2:
                self.model.stop_training = True

    model, record = _model(4), Record()
    engine.ArrayLoop(model, {"numeric": tf.constant(x)}, tf.constant(y), batch_size=64, seed=1,
                     steps_per_call=4).fit(initial_epoch=0, epochs=5, callbacks=[StopAtSecondCall(), record])
    assert int(model.optimizer.iterations.numpy()) == 8  # two calls of 4 batches
    assert [e for e, _ in record.epochs] == [0]         # the epoch still ends (logs, checkpoints)


def test_stream_loop_trains_what_fit_trains_on_rebatched_chunks():
    """Chunks of uneven sizes, cut into batches across their ends exactly like `Dataset.rebatch`."""
    x, y = _data()
    cuts = [0, 300, 350, 777, 1000]

    def chunks(epoch):
        order = np.random.default_rng(epoch).permutation(len(x))
        for lo, hi in zip(cuts, cuts[1:]):
            yield {"numeric": x[order[lo:hi]]}, y[order[lo:hi]]

    a, ra = _model(4), Record()
    spec = ({"numeric": tf.TensorSpec((None, 5), tf.float32)}, tf.TensorSpec((None, 1), tf.float32))
    ds = tf.data.Dataset.from_tensors(0).flat_map(
        lambda _: tf.data.Dataset.from_generator(lambda: chunks(ra.epoch), output_signature=spec)).rebatch(64)
    a.fit(ds.apply(tf.data.experimental.assert_cardinality(16)), epochs=3, callbacks=[ra], verbose=0, shuffle=False)
    b, rb = _model(4), Record()
    engine.StreamLoop(b, chunks, steps=16, batch_size=64, steps_per_call=4).fit(initial_epoch=0, epochs=3,
                                                                              callbacks=[rb])
    _same(a, b)
    assert int(b.optimizer.iterations.numpy()) == 3 * 16
    assert ra.epochs == rb.epochs


def test_stream_loop_trains_the_same_on_windows_served_in_their_order():
    """(x, y, order) pieces (a shuffle window held once, its rows served in `order`, a graph call's
    rows taken at a time) train exactly what the permuted copies (x[order], y[order]) train, batches
    running across piece ends alike; class weights follow their rows."""
    x, y = _data()
    cuts = [0, 300, 350, 777, 1000]

    def windows(epoch):
        rng = np.random.default_rng(epoch)
        for lo, hi in zip(cuts, cuts[1:]):
            yield {"numeric": x[lo:hi]}, y[lo:hi], rng.permutation(hi - lo)

    def permuted(epoch):
        for xs, ys, order in windows(epoch):
            yield {"numeric": xs["numeric"][order]}, ys[order]

    weight = {0: 0.5, 1: 2.0}
    for spe in (1, 4, 7):
        a, ra = _model(spe), Record()
        engine.StreamLoop(a, permuted, steps=16, batch_size=64, steps_per_call=spe, class_weight=weight,
                          mode="binary").fit(initial_epoch=0, epochs=2, callbacks=[ra])
        b, rb = _model(spe), Record()
        engine.StreamLoop(b, windows, steps=16, batch_size=64, steps_per_call=spe, class_weight=weight,
                          mode="binary").fit(initial_epoch=0, epochs=2, callbacks=[rb])
        _same(a, b)
        assert ra.epochs == rb.epochs and int(b.optimizer.iterations.numpy()) == 2 * 16


# ------------------------------------------------------------------------------ the stream's cache

def _stream_config(tmp_path, text_column=False):
    rng = np.random.default_rng(5)
    n = 1500
    rows = ["a,b,c,label" + (",note" if text_column else "")]
    for i in range(n):
        a, b, c = rng.normal(size=3)
        rows.append(f"{a:.5f},{b:.5f},{c:.5f},{int(a + b > 0)}" + (f",word{i % 7} other" if text_column else ""))
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent("""
        seed: 4
        data: {source: d.csv, target: label, stream: true}
        model: {layers: [{type: Dense, units: 8, activation: relu}]}
        training: {epochs: 2, batch_size: 32}
    """))
    if text_column:
        cfg.write_text(cfg.read_text().replace("stream: true", "stream: true, columns: {note: {type: text}}"))
    return load_config(cfg)


def _rows(reader, codes, **kw):
    return [(part.inputs, part.y) for part in reader.rows(codes, **kw)]


def _equal_rows(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.keys() == xb.keys()
        for k in xa:
            np.testing.assert_array_equal(xa[k], xb[k])
        np.testing.assert_array_equal(ya, yb)


def test_the_cache_gives_the_rows_of_the_file_and_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "CHUNK_ROWS", 100)
    monkeypatch.setattr(C, "BLOCK_BYTES", 2048)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = S.load_stream(_stream_config(tmp_path))
    codes = ds.codes["train"]
    cache = S.SplitCache(tmp_path / "run" / ".cache" / "train.bin")
    plain = _rows(ds.reader, codes, shuffle=(4, 1))
    first = _rows(ds.reader, codes, shuffle=(4, 1), cache=cache)
    assert cache.complete and cache.path.stat().st_size > 0
    again = _rows(ds.reader, codes, shuffle=(4, 1), cache=cache)
    _equal_rows(plain, first)
    _equal_rows(plain, again)
    _equal_rows(_rows(ds.reader, codes, shuffle=(4, 2)), _rows(ds.reader, codes, shuffle=(4, 2), cache=cache))
    cache.remove()
    assert not cache.path.exists() and not cache.path.parent.exists()


def test_a_pass_stopped_early_leaves_no_cache_file_and_text_rows_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "CHUNK_ROWS", 100)
    monkeypatch.setattr(C, "BLOCK_BYTES", 2048)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = S.load_stream(_stream_config(tmp_path))
    cache = S.SplitCache(tmp_path / "c" / "train.bin")
    rows = ds.reader.rows(ds.codes["train"], cache=cache)
    next(rows)
    rows.close()
    assert not cache.complete and not cache.path.exists()
    assert len(_rows(ds.reader, ds.codes["train"], cache=cache)) > 1 and cache.complete  # a later whole pass

    (tmp_path / "t").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = S.load_stream(_stream_config(tmp_path / "t", text_column=True))
    cache = S.SplitCache(tmp_path / "t" / "c" / "train.bin")
    _equal_rows(_rows(text.reader, text.codes["train"]), _rows(text.reader, text.codes["train"], cache=cache))
    assert cache.disabled and not cache.complete and not cache.path.exists()


@pytest.mark.slow
def test_a_streamed_session_trains_what_fit_on_the_stream_feed_trains(tmp_path, monkeypatch):
    """nettrain's StreamLoop (with its cache from the second epoch on) against model.fit over the
    StreamFeed's tf.data pipeline: the same weights bit for bit."""
    monkeypatch.setattr(C, "CHUNK_ROWS", 100)
    monkeypatch.setattr(C, "BLOCK_BYTES", 2048)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prep = F.prepare(_stream_config(tmp_path))
    assert isinstance(prep.feed, FD.StreamFeed)
    keras.utils.set_random_seed(4)
    a, cursor = F.new_model(prep), FD.EpochCursor(1)
    a.fit(prep.feed.training(a, cursor), epochs=3, callbacks=[cursor], verbose=0, shuffle=False)
    keras.utils.set_random_seed(4)
    b = F.new_model(prep)
    with prep.feed.caching(tmp_path / "cache"):
        engine.StreamLoop(b, lambda epoch: prep.feed.epoch_arrays(b, epoch), steps=prep.feed.steps,
                          batch_size=32, steps_per_call=int(b.steps_per_execution), mode=prep.mode).fit(
            initial_epoch=0, epochs=3, callbacks=[], validation_data=prep.feed.validation(b))
        assert (tmp_path / "cache" / "train.bin").stat().st_size > 0   # epochs 2 and 3 read it
        assert (tmp_path / "cache" / "validation.bin").stat().st_size > 0
    assert not (tmp_path / "cache" / "train.bin").exists()   # evaluate's rows stay (data.stream.keep), not these
    assert {p.name for p in (tmp_path / "cache").iterdir()} <= {"validation.bin", "validation.json", "test.bin",
                                                                "test.json"}
    _same(a, b)


def test_predict_rows_gives_what_predict_gives_across_slices(monkeypatch):
    x, _ = _data(1000)
    model = _model(1)
    monkeypatch.setattr(engine, "PREDICT_ROWS", 300)  # 4 slices, the last short
    polls = []
    out = engine.predict_rows(model, {"numeric": tf.constant(x)}, between=lambda: polls.append(1))
    np.testing.assert_allclose(out, model.predict({"numeric": x}, verbose=0), rtol=1e-6, atol=1e-6)
    assert out.shape == (1000, 1) and len(polls) == 4


# ------------------------------------------------------------------------------ one engine, TensorBoard a callback

@pytest.mark.slow
def test_tensorboard_is_a_callback_on_the_own_loop_and_use_ema_ends_as_fit(tmp_path, monkeypatch):
    """`nettrain fit` with `use_ema`, with and without TensorBoard, saves in model.h5 what model.fit on
    the feed's batches ends with (the averaged weights, not last.h5's); model.fit never trains; the
    event files hold the epoch scalars, the histograms and the training step's graph."""
    from typer.testing import CliRunner

    from nettrain.cli import app
    from nettrain.store import h5
    from tests.helpers import regression_csv

    regression_csv(tmp_path / "reg.csv")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent("""
        data: {source: reg.csv, target: y}
        model: {layers: [{type: Dense, units: 8, activation: relu}]}
        training: {epochs: 2, batch_size: 16, optimizer: {name: adam, use_ema: true, ema_momentum: 0.9}}
        output: {plots: false}
    """))
    prep = F.prepare(load_config(cfg))
    plain, cursor = F.new_model(prep), FD.EpochCursor(1)
    plain.fit(prep.feed.training(plain, cursor), epochs=2, callbacks=[cursor], verbose=0, shuffle=False)

    def no_fit(*args, **kwargs):
        raise AssertionError("model.fit trained: the engine switched")

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    for name, extra in (("own", []), ("tb", ["--set", "callbacks.tensorboard={histogram_freq: 1, write_graph: true}"])):
        result = CliRunner().invoke(app, ["fit", str(cfg), "--run-dir", str(tmp_path / name), "--quiet", *extra])
        assert result.exit_code == 0, result.output
        saved = h5.load_model(tmp_path / name / "model.h5", restore_optimizer=False).get_weights()
        for p, q in zip(saved, plain.get_weights()):
            np.testing.assert_array_equal(p, q)
        last = h5.load_model(tmp_path / name / "checkpoints" / "last.h5", restore_optimizer=False).get_weights()
        assert not np.array_equal(last[0], saved[0])  # epoch 2's checkpoint: before the averages went in

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train = EventAccumulator(str(tmp_path / "tb" / "tensorboard" / "train"), size_guidance={"tensors": 0})
    train.Reload()
    assert [e.step for e in train.Tensors("epoch_loss")] == [0, 1]
    tags = train.Tags()["tensors"]
    assert "epoch_learning_rate" in tags and any(t.endswith("kernel/histogram") for t in tags)
    ops = {n.op for n in train.Graph().node}  # the step: forward, gradients, the optimizer's updates
    assert {"MatMul", "ReluGrad", "AssignVariableOp"} <= ops
    val = EventAccumulator(str(tmp_path / "tb" / "tensorboard" / "validation"), size_guidance={"tensors": 0})
    val.Reload()
    assert [e.step for e in val.Tensors("epoch_loss")] == [0, 1]


# ------------------------------------------------------------------------------ the strategy branch

def test_shares_give_each_replica_its_ceil_share_of_every_batch(monkeypatch):
    """Under a strategy of R replicas, replica r takes rows [r * ceil(B / R), (r + 1) * ceil(B / R)) of
    each batch of the one-device order (the epoch's last batch is short: a replica may get none), and
    together the shares are the one-device batch, in order."""
    n, b = 23, 7
    arrays = engine.Arrays({"numeric": tf.reshape(tf.range(n, dtype=tf.float32), (n, 1))},
                           tf.range(n, dtype=tf.float32), batch_size=b, seed=3)
    order = FD.epoch_order(n, 3, 1)
    for replicas, sizes in ((2, [[4, 3]] * 3 + [[2, 0]]), (3, [[3, 3, 1]] * 3 + [[2, 0, 0]])):
        shares = engine.Shares(arrays, replicas)
        assert shares.steps == 4
        for i, want in enumerate(sizes):
            i = tf.constant(i, tf.int64)
            positions = shares.batch(order, i)
            got = []
            for r in range(replicas):
                context = type("Context", (), {"replica_id_in_sync_group": r})()
                monkeypatch.setattr(tf.distribute, "get_replica_context", lambda c=context: c)
                xb, yb = shares.share(positions)
                np.testing.assert_array_equal(xb["numeric"].numpy()[:, 0], yb.numpy())
                got.append(yb.numpy())
            monkeypatch.undo()
            assert [len(g) for g in got] == want
            np.testing.assert_array_equal(np.concatenate(got), arrays.batch(order, i)[1].numpy())


@pytest.mark.parametrize("source", ["shares", "distributed dataset"])
def test_the_strategy_branch_trains_what_one_device_trains(source):
    """The same `Loop` with its strategy branch (`replicas`) on one replica (a MirroredStrategy over
    this process's CPU): Keras's train_step through `strategy.run` on `Shares` of the arrays, or on a
    distributed dataset's batches, validation by the `Evaluator`, ends where the one-device loop ends."""
    from nettrain import keras_compat
    from nettrain.training import distributed as D

    x, y = _data(512)
    weight = {0: 0.5, 1: 2.0} if source == "shares" else None
    val = FD.evaluation_dataset({"numeric": tf.constant(x[:128])}, y[:128], 64)
    a, ra = _model(3), Record()
    engine.ArrayLoop(a, {"numeric": tf.constant(x)}, tf.constant(y), batch_size=64, seed=5, steps_per_call=3,
                     class_weight=weight, mode="binary").fit(initial_epoch=0, epochs=2, callbacks=[ra],
                                                             validation_data=val)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        b = _model(3)
    rb, callbacks = Record(), []
    replicas = D.Replicas(b, strategy, ({"numeric": tf.constant(x[:2])}, tf.constant(y[:2])))
    if source == "shares":
        loop = engine.ArrayLoop(b, {"numeric": tf.constant(x)}, tf.constant(y), batch_size=64, seed=5,
                                steps_per_call=3, class_weight=weight, mode="binary", replicas=replicas)
        assert isinstance(loop.batches, engine.Shares)
    else:
        cursor = FD.EpochCursor(1)
        callbacks = [cursor]
        dataset = FD.training_dataset({"numeric": tf.constant(x)}, y, batch_size=64, seed=5, cursor=cursor)
        loop = engine.Loop(b, engine.DistributedBatches(keras_compat.distribute_dataset(strategy, dataset), steps=8),
                           steps=8, steps_per_call=3, replicas=replicas)
    loop.fit(initial_epoch=0, epochs=2, callbacks=callbacks + [rb], validation_data=val)
    assert int(b.optimizer.iterations.numpy()) == int(a.optimizer.iterations.numpy()) == 16
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    assert [e for e, _ in ra.epochs] == [e for e, _ in rb.epochs] == [0, 1]
    for (_, la), (_, lb) in zip(ra.epochs, rb.epochs):
        assert la.keys() == lb.keys() == {"loss", "accuracy", "val_loss", "val_accuracy"}
        for k in la:
            assert la[k] == pytest.approx(lb[k], rel=1e-5, abs=1e-6), k


@pytest.mark.parametrize("batch, images, expected", [
    (32, False, 256), (128, False, 1024), (512, False, 1024), (2048, False, 2048), (1, False, 8), (0, False, 8),
    (32, True, 32), (128, True, 128)])
def test_evaluation_batch_grows_the_training_batch_for_tables_only(batch, images, expected):
    assert FD.evaluation_batch(batch, images=images) == expected


def test_validation_and_final_metrics_are_batched_by_the_evaluation_batch(tmp_path):
    """fit's validation after each epoch and its final metrics run at `evaluation_batch` rows a batch,
    and `evaluate RUN` gives the same numbers as metrics.json."""
    import json

    from nettrain import api

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 3))
    (tmp_path / "d.csv").write_text("a,b,c,y\n" + "\n".join(
        f"{a:.5f},{b:.5f},{c:.5f},{a - 2 * b + 0.1 * c:.5f}" for a, b, c in x))
    (tmp_path / "c.yaml").write_text(textwrap.dedent(f"""\
        data: {{source: {tmp_path / 'd.csv'}, target: y, split: {{validation: 0.3, test: 0.3}}}}
        model: {{layers: [{{type: Dense, units: 8, activation: relu}}]}}
        training: {{epochs: 2, batch_size: 16}}
        """))
    seen = []
    original = engine.HeldRows.__init__

    def spy(self, x, y, *, batch_size):
        seen.append(batch_size)
        original(self, x, y, batch_size=batch_size)

    engine.HeldRows.__init__ = spy
    try:
        result = api.fit(tmp_path / "c.yaml", run_dir=tmp_path / "run", quiet=True)
    finally:
        engine.HeldRows.__init__ = original
    assert seen and set(seen) == {FD.evaluation_batch(16)} == {128}
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    again = api.evaluate(tmp_path / "run")
    assert again.keras_metrics.keys() & saved["test"].keys()
    assert {k: again.keras_metrics[k] for k in saved["test"] if k in again.keras_metrics} == \
        {k: v for k, v in saved["test"].items() if k in again.keras_metrics}
    assert result.metrics["test"] == saved["test"]
