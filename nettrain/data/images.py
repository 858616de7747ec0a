"""Image folders: `data.source: FOLDER/` with one sub-folder per class, read file by file.

No TensorFlow: the files are listed per class, split by the project's own rules (`split.split_rows`:
seeded, stratified), and decoded with Pillow in chunks of `CHUNK` images (`image_rows`), so a set
never sits in memory whole. One first pass decodes every file once: a bad image (truncated, not an
image, a mode that cannot become RGB/grayscale) is found before a run exists, and refused naming
it (`data.images.bad: error`, the default) or left out with a count (`skip`). Pixels stay 0..255:
the model's first layer rescales them (`model.build`), so predict takes raw images.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from nettrain.data.kinds import is_image_config  # noqa: F401 - the one rule, also images'
from nettrain.data.rows import Rows
from nettrain.data.split import fingerprint, split_rows
from nettrain.data.task import class_type, infer_task
from nettrain.data.types import Dataset, FeatureSchema, Split
from nettrain.errors import DataError
from nettrain.store.meta import IMAGE_INPUT  # the model's one input: (height, width, channels) pixels 0..255
from nettrain.words import list_names, reason

PATH_COLUMN = "path"           # the id column: each row's file
LABEL = "label"                # the target's name: the class sub-folder
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")  # what Keras's image_dataset_from_directory reads
CHUNK = 256                    # images decoded at a time
NAMED = 5                      # bad files named in a message
DECODERS = min(8, os.cpu_count() or 1)  # threads that decode a chunk
DEFAULT_SIZE = (256, 256)      # Keras's image_dataset_from_directory default
# data keys of a table that an image folder cannot use (the folder names the classes)
TABLE_KEYS = ("target", "features", "drop", "id", "columns")


@dataclass(frozen=True)
class ImageSpec:
    """How a file becomes a model input: resized to `size` (height, width), `color` rgb or grayscale."""

    size: tuple[int, int] = DEFAULT_SIZE
    color: str = "rgb"
    bad: str = "error"

    @property
    def channels(self) -> int:
        return 3 if self.color == "rgb" else 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.size, self.channels)

    @classmethod
    def of(cls, images: Any) -> "ImageSpec":
        """From `data.images` (an ImagesConfig, its dict in a saved config, or None: the defaults)."""
        if images is None:
            return cls()
        get = images.get if isinstance(images, dict) else lambda k, d=None: getattr(images, k, d)
        return cls(tuple(get("size", DEFAULT_SIZE)), get("color", "rgb"), get("bad", "error"))


def is_image_model(target: Any) -> bool:
    """Whether a trained model (a lifecycle Target: its features, its saved config) takes image files:
    its one input is IMAGE_INPUT, whether or not its image folder is still there."""
    features = getattr(target, "features", None) or {}
    config = getattr(target, "config", None)
    return features.get("inputs") == [IMAGE_INPUT] or bool(config and is_image_config(config))


class BadImage(Exception):
    """A file that is not a readable image (its reason in words)."""


# ------------------------------------------------------------------------------ files

def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


# Folders that tools leave beside the data and that hold no data: a zip made on macOS (`__MACOSX/`, its
# `._name` files), besides hidden folders (`.ipynb_checkpoints/`, `.thumbnails/`), which are never read.
NOT_DATA = ("__MACOSX",)


def _kept_folder(name: str) -> bool:
    return not name.startswith(".") and name not in NOT_DATA


def image_files(folder: Path) -> list[Path]:
    """The image files under `folder`, at any depth, in sorted path order; none in a hidden folder or
    a NOT_DATA one."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p)
                  and all(_kept_folder(part) for part in p.relative_to(folder).parts[:-1]))


def class_files(folder: Path) -> dict[str, list[Path]]:
    """{class: its files} of an image folder: one sub-folder per class (sorted by name), its image files
    at any depth. A folder without class sub-folders, or a class without images, is a DataError."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and _kept_folder(p.name))
    if not classes:
        loose = len([p for p in folder.iterdir() if p.is_file() and is_image_file(p)])
        raise DataError(f"{folder}: no class sub-folders; an image folder holds one sub-folder per class "
                        f"(cats/, dogs/, ...) with that class's images{f' (it holds {loose} images directly)' if loose else ''}")
    files = {name: image_files(folder / name) for name in classes}
    empty = [name for name, found in files.items() if not found]
    if empty:
        raise DataError(f"{folder}: class sub-folder{'s' if len(empty) > 1 else ''} {list_names(empty, quote=True)} "
                        f"hold{'' if len(empty) > 1 else 's'} no image files ({', '.join(IMAGE_EXTENSIONS)}); "
                        "remove it or add images")
    return files


def listed_files(path: Path) -> list[Path]:
    """What predict takes: an image folder (its image files at any depth, class sub-folders too), one
    image file, or a .txt file listing image paths one per line (relative to the list's folder)."""
    if path.is_dir():
        found = image_files(path)
        if not found:
            raise DataError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in it or its sub-folders")
        return found
    if not path.is_file():
        raise DataError(f"input not found: {path}")
    if is_image_file(path):
        return [path]
    if path.suffix.lower() == ".txt":
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read the list of images: {reason(e)}") from None
        files = [(path.parent / line.strip()) for line in lines if line.strip() and not line.startswith("#")]
        if not files:
            raise DataError(f"{path}: the list names no image files (one path per line)")
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise DataError(f"{path}: {len(missing)} listed file{'s' if len(missing) > 1 else ''} not found: "
                            f"{list_names(missing[:NAMED])}")
        return files
    raise DataError(f"{path}: an image model predicts an image folder, an image file "
                    f"({', '.join(IMAGE_EXTENSIONS)}) or a .txt list of image files, not a {path.suffix or 'file'}")


# ------------------------------------------------------------------------------ decoding

def decode(path: Path, spec: ImageSpec) -> np.ndarray:
    """One image as uint8 (height, width, channels), resized (bilinear) and converted to `spec.color`;
    BadImage when it cannot be read."""
    from PIL import Image

    _quiet_pillow()
    try:
        with Image.open(path) as im:
            im.load()  # a truncated file fails here, not at open
            if im.mode.startswith("I"):  # 16-bit grey (I;16, or I holding it): scaled to 8 bits, as
                # TensorFlow's decode_png does; Pillow's own conversion clips it (nearly all white)
                wide = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), "L")
            im = im.convert("RGB" if spec.color == "rgb" else "L")
            if im.size != (spec.size[1], spec.size[0]):
                im = im.resize((spec.size[1], spec.size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(im, dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds; each is one bad file
        raise BadImage(reason(e)) from None
    return pixels.reshape(spec.shape)


_PILLOW_QUIET: list[bool] = []


def _quiet_pillow() -> None:
    """Pillow's own warnings (a large image, odd EXIF data) are not the user's: filtered once for the
    process, by the module that warns. (`warnings.catch_warnings` around each decode is not safe
    while several threads decode: one thread's restore could leave everything ignored.)"""
    if not _PILLOW_QUIET:
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        _PILLOW_QUIET.append(True)


def _attempt(path: Path, spec: ImageSpec) -> np.ndarray | str:
    try:
        return decode(path, spec)
    except BadImage as e:
        return str(e)


def decoded(paths: list[Path], spec: ImageSpec) -> tuple[np.ndarray, list[int], list[tuple[Path, str]]]:
    """(float32 (n, h, w, c) pixels 0..255 of the good files, their positions, [(bad file, why)]), decoded
    by a few threads (Pillow decodes without the GIL); the order is the files'."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(DECODERS, len(paths)))) as pool:
        results = list(pool.map(lambda p: _attempt(p, spec), paths))
    out, good, bad = [], [], []
    for i, (p, result) in enumerate(zip(paths, results)):
        if isinstance(result, str):
            bad.append((p, result))
        else:
            out.append(result)
            good.append(i)
    pixels = np.stack(out).astype(np.float32) if out else np.zeros((0, *spec.shape), np.float32)
    return pixels, good, bad


def bad_message(bad: list[tuple[Path, str]], total: int) -> str:
    named = "; ".join(f"{p} ({why})" for p, why in bad[:NAMED])
    more = f"; and {len(bad) - NAMED} more" if len(bad) > NAMED else ""
    return f"{len(bad)} of {total} image files cannot be read: {named}{more}"


def refuse_bad(bad: list[tuple[Path, str]], total: int) -> DataError:
    return DataError(f"{bad_message(bad, total)}; remove or fix them, or set data.images.bad: skip to leave "
                     "unreadable files out")


def image_rows(paths: list[Path], spec: ImageSpec, where: str, labels: np.ndarray | None = None,
               skipped: list | None = None) -> Rows:
    """`paths` as Rows of decoded images, `CHUNK` at a time, in order: inputs {IMAGE_INPUT: pixels}, ids
    the paths, y `labels`. A bad file is a DataError (spec.bad error) or left out and added to `skipped`."""
    names = np.asarray([str(p) for p in paths], dtype=object)

    def produce() -> Iterator[Split]:
        left_out: list[tuple[Path, str]] = []
        for lo in range(0, len(paths), CHUNK):
            pixels, good, bad = decoded(paths[lo:lo + CHUNK], spec)
            if bad and spec.bad != "skip":
                raise refuse_bad(bad, len(paths))
            left_out.extend(bad)
            if not good:
                continue
            at = lo + np.asarray(good, dtype=np.int64)
            yield Split(inputs={IMAGE_INPUT: pixels}, y=None if labels is None else labels[at], ids=names[at],
                        row_index=at)
        if skipped is not None:
            skipped.extend(left_out)
        elif left_out:
            warnings.warn(f"{where}: {bad_message(left_out, len(paths))}; left out (data.images.bad: skip)",
                          stacklevel=2)

    return Rows(where, produce, total=len(paths))


def labelled_rows(folder: Path, class_names: list[str], spec: ImageSpec) -> Rows:
    """The images of a labelled folder (one sub-folder per class, named as the run's classes: `evaluate
    --data FOLDER`), decoded chunk by chunk with their class indices."""
    per_class = class_files(folder)
    unknown = [name for name in per_class if name not in class_names]
    if unknown:
        raise DataError(f"{folder}: sub-folder{'s' if len(unknown) > 1 else ''} {list_names(unknown, quote=True)} "
                        f"{'are' if len(unknown) > 1 else 'is'} not a class of the model; its classes: "
                        f"{list_names(class_names, quote=True)}")
    index = {name: i for i, name in enumerate(class_names)}
    files = [p for name in per_class for p in per_class[name]]
    labels = np.asarray([index[name] for name in per_class for _ in per_class[name]], dtype=np.int64)
    return image_rows(files, spec, str(folder), labels=labels)


# ------------------------------------------------------------------------------ the data set

@dataclass
class ImageDataset(Dataset):
    """A `Dataset` of image files: each split's `inputs[IMAGE_INPUT]` holds the file paths (object
    array), decoded chunk by chunk when read (`split_rows`)."""

    spec: ImageSpec = field(default_factory=ImageSpec)

    def split_rows(self, split: Split, where: str | None = None) -> Rows:
        """The decoded images of `split` (a split of this dataset), in its order."""
        paths = [Path(p) for p in split.inputs[IMAGE_INPUT]]
        return image_rows(paths, self.spec, where or self.source, labels=split.y)


def check_keys(cfg) -> None:
    """The data keys an image folder cannot use are refused, never ignored."""
    data = cfg.data
    for key in TABLE_KEYS:
        value = getattr(data, key)
        if value not in (None, [], {}):
            raise cfg.error(f"data.{key}", f"does not apply to an image folder ({data.source}): the class of each "
                            "image is its sub-folder's name; remove it")
    if data.split.folds > 1:
        raise cfg.error("data.split.folds", "k-fold cross-validation is not supported for an image folder; "
                        "set folds: 1")
    if data.stream is True:
        raise cfg.error("data.stream", "an image folder is always read file by file; remove data.stream")
    if cfg.runtime.distribute != "none":
        raise cfg.error("runtime.distribute", f"{cfg.runtime.distribute}: an image folder trains on one device for "
                        "now; set runtime.distribute: none")


def scan(folder: Path, spec: ImageSpec, notes: list[str]) -> tuple[list[Path], np.ndarray, list[str], str]:
    """The first pass: every file decoded once. (good files, their class names, the classes, a sha256 of
    the files' bytes in order); bad files refused or left out with a note, as `spec.bad` says."""
    per_class = class_files(folder)
    files = [p for name in per_class for p in per_class[name]]
    labels = [name for name in per_class for _ in per_class[name]]
    h = hashlib.sha256()
    kept: list[tuple[Path, str]] = []
    bad: list[tuple[Path, str]] = []
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(DECODERS, len(files)))) as pool:
        # decoded by a few threads (Pillow decodes without the GIL), looked at in the files' order
        for p, label, got in zip(files, labels, pool.map(lambda f: _attempt(f, spec), files)):
            why = got if isinstance(got, str) else None  # pixels, or why the file cannot be read
            if why is None:
                try:
                    h.update(p.read_bytes())
                except OSError as e:
                    why = reason(e)
            if why is None:
                kept.append((p, label))
            else:
                bad.append((p, why))
    if bad and spec.bad != "skip":
        raise refuse_bad(bad, len(files))
    if bad:
        note = f"{folder}: {bad_message(bad, len(files))}; left out (data.images.bad: skip)"
        notes.append(note)
        warnings.warn(note, stacklevel=3)
    if not kept:
        raise DataError(f"{folder}: no readable images left")
    files, labels = [p for p, _ in kept], [label for _, label in kept]
    return files, np.asarray(labels, dtype=object), list(per_class), h.hexdigest()


def load_images(cfg) -> ImageDataset:
    """`load_dataset` for an image folder: files, classes, task, the seeded stratified split."""
    check_keys(cfg)
    folder = Path(cfg.data.source)
    spec = ImageSpec.of(cfg.data.images)
    notes: list[str] = []
    files, names, classes, digest = scan(folder, spec, notes)
    series = pd.Series(names, name=LABEL)
    task, class_names = infer_task(cfg, series, LABEL, None)
    if task == "regression":
        raise cfg.error("data.task", "an image folder's sub-folders name classes; regression is not supported")
    index = {name: i for i, name in enumerate(class_names)}
    y = np.asarray([index[str(n)] for n in names], dtype=np.int64)
    schema = FeatureSchema(task=task, target=LABEL, columns=[], class_names=class_names, id_column=PATH_COLUMN,
                           class_type=class_type(series))
    train_pos, val_pos, test_pos = split_rows(cfg, len(files), y.astype(str), task, notes)
    paths = np.asarray([str(p) for p in files], dtype=object)

    def part(pos: np.ndarray) -> Split | None:
        if not len(pos):
            return None
        return Split(inputs={IMAGE_INPUT: paths[pos]}, y=y[pos], ids=paths[pos], row_index=pos)

    train, validation, test = part(train_pos), part(val_pos), part(test_pos)
    rel = [os.path.relpath(p, folder) for p in paths]
    table = pd.DataFrame({PATH_COLUMN: rel, LABEL: names.astype(str)})
    assignment = {name: pos for name, pos in (("train", train_pos), ("validation", val_pos), ("test", test_pos))
                  if len(pos)}
    return ImageDataset(schema=schema, train=train, validation=validation, test=test,
                        fingerprint=fingerprint({"source": table, "bytes": pd.DataFrame({"sha256": [digest]})},
                                                assignment),
                        source=str(folder), n_rows=len(files), notes=notes, stats=_stats(y, len(class_names), train),
                        spec=spec)


def _stats(y: np.ndarray, n_classes: int, train: Split | None):
    """The training rows' statistics the model stage reads: rows and class counts (no columns)."""
    from nettrain.data.stats import TrainStats

    rows = train.y if train is not None else y[:0]
    return TrainStats(rows=len(rows), numeric=None, categories={}, texts={},
                      class_counts=np.bincount(rows, minlength=n_classes).astype(np.int64), target=None, missing={})
