"""Process-wide TensorFlow settings: quiet logs, seeds, determinism, device, precision, strategy."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

# TensorFlow's native start-up lines (oneDNN, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL.
# The allocator's out-of-memory report follows its log line without a prefix.
_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following instructions|"
                    r"This TensorFlow binary is optimized|If the cause is memory fragmentation|"
                    r"Current allocation summary follows|(Limit|InUse|MaxInUse|NumAllocs|MaxAllocSize|Reserved|"
                    r"PeakReserved|LargestFreeBlock|Stats):\s|[*_]+$|Bin \(|Chunk |Free at |InUse at |"
                    r"Sum Total of in-use|Next region|Summary of in-use)")


@contextlib.contextmanager
def quiet_native_stderr():
    """Hide TensorFlow's native start-up chatter; anything else written to stderr is replayed."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode("utf-8", "replace").splitlines():
                if line and not _NOISE.match(line):
                    print(line, file=sys.stderr)


with quiet_native_stderr():
    import tensorflow as tf  # noqa: E402

    import keras  # noqa: E402

import absl.logging  # noqa: E402

absl.logging.set_verbosity(absl.logging.ERROR)  # Keras warns about the legacy .h5 format at every save
tf.get_logger().setLevel("ERROR")  # retracing notices when several models train in one process (k-fold)

from nettrain import keras_compat  # noqa: E402
from nettrain.config.schema import Config  # noqa: E402
from nettrain.words import first_line


def setup(cfg: Config):
    """Apply cfg.runtime and the seed. Returns (device description, distribution strategy or None
    for one device). A strategy's `scope()` is entered wherever a model is built or loaded."""
    rt = cfg.runtime
    with quiet_native_stderr():
        gpus = tf.config.list_physical_devices("GPU")
    if rt.device == "cpu":
        gpus = []
    elif rt.device.startswith("gpu"):
        if not gpus:
            raise cfg.error("runtime.device", f"'{rt.device}' asked for a GPU but TensorFlow sees none "
                            "(install the CUDA build: pip install 'nettrain[gpu]'), or use device: auto or cpu")
        if ":" in rt.device:
            index = int(rt.device.split(":")[1])
            if index >= len(gpus):
                raise cfg.error("runtime.device", f"'{rt.device}': only {len(gpus)} GPU(s) visible (gpu:0..gpu:{len(gpus) - 1})")
            try:
                tf.config.set_visible_devices([gpus[index]], "GPU")
                gpus = [gpus[index]]
            except RuntimeError as e:  # TensorFlow had already started every GPU in this process
                _tell(f"runtime.device {rt.device}: could not limit TensorFlow to that GPU ({first_line(e)[:200]}); "
                      f"all {len(gpus)} stay visible")
    if rt.distribute == "mirrored" and rt.devices and rt.devices[0].startswith("cpu"):
        from nettrain.training import distributed

        distributed.logical_cpus(max(int(d.split(":")[1]) for d in rt.devices) + 1, cfg)  # before TensorFlow starts
    if rt.mixed_precision:
        keras.mixed_precision.set_dtype_policy(rt.mixed_precision)
    else:
        keras.mixed_precision.set_dtype_policy("float32")
    keras.utils.set_random_seed(cfg.seed)
    problems = apply_device_and_determinism(rt.device, rt.deterministic)
    if rt.device == "cpu" and any("GPU" in p for p in problems):
        gpus = tf.config.list_physical_devices("GPU")  # still visible: the record says so
    device = f"gpu x{len(gpus)}" if gpus else "cpu"
    if problems:
        device += " (" + "; ".join(problems) + ")"
    if rt.distribute != "none":  # mirrored, multi_worker: see training.distributed
        from nettrain.training import distributed

        strategy = distributed.make_strategy(cfg)
        return f"{device}, {distributed.describe(strategy, cfg.training.batch_size)}", strategy
    return device, None


def apply_device_and_determinism(device: str | None, deterministic: bool) -> list[str]:
    """The settings shared by training and by loading a model to evaluate or predict: `cpu` hides
    the GPUs, and op determinism. Never fails: what could not be applied is warned about and
    returned (training records it in run.json's `device`)."""
    problems = []
    with quiet_native_stderr():
        gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu" and gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError as e:  # the GPUs were started earlier in this process
            problems.append(f"GPUs not hidden: {first_line(e)[:200]}")
    if deterministic:
        try:
            keras_compat.enable_op_determinism()
        except Exception as e:  # noqa: BLE001 - an older TensorFlow without it
            problems.append(f"op determinism not enabled: {first_line(e)[:200]}")
    for problem in problems:
        _tell(f"runtime: {problem}")
    return problems


def _tell(message: str) -> None:
    import warnings

    warnings.warn(message, stacklevel=3)


