"""`nettrain init FOLDER`: a small CNN config for an image folder (one sub-folder per class).

The image size is the median height and width of a sample of the images (their headers only),
kept under `MAX_SIDE` a side with the aspect ratio; the color is grayscale when every sampled image
is, else rgb. The model is Conv2D/MaxPooling2D blocks (one per halving the size allows, at most
three), GlobalAveragePooling2D and a Dense layer, the head added by nettrain. Comments say why.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nettrain.data.images import class_files
from nettrain.errors import DataError

SAMPLE = 200            # image headers read to choose the size and color
MAX_SIDE = 128          # a starting size: larger images are scaled down to this many pixels a side
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_stats(files: list[Path]) -> tuple[int, int, str, int]:
    """(median height, median width, 'rgb' or 'grayscale', images sampled) of up to SAMPLE files."""
    from PIL import Image

    step = max(1, len(files) // SAMPLE)
    sizes, modes = [], set()
    for p in files[::step][:SAMPLE]:
        try:
            with Image.open(p) as im:
                sizes.append((im.height, im.width))
                modes.add(im.mode)
        except Exception:  # noqa: BLE001 - a bad file is fit's business (data.images.bad); init only samples
            continue
    if not sizes:
        raise DataError(f"{files[0].parent.parent}: none of the {min(len(files), SAMPLE)} sampled files is a "
                        "readable image")
    h, w = (int(np.median([s[i] for s in sizes])) for i in (0, 1))
    color = "grayscale" if modes <= set(GRAY_MODES) else "rgb"
    return h, w, color, len(sizes)


def capped(h: int, w: int) -> tuple[int, int]:
    """(h, w) scaled down so that the longer side is at most MAX_SIDE, the aspect ratio kept."""
    scale = min(1.0, MAX_SIDE / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def suggest_images(folder: Path, source: str, output: Path | None) -> tuple[str, str]:
    """(the config's YAML text, a one-line summary) for the image folder `folder`, written as `source`."""
    per_class = class_files(folder)
    files = [p for found in per_class.values() for p in found]
    mh, mw, color, sampled = image_stats(files)
    h, w = capped(mh, mw)
    blocks = min(3, max(0, int(np.log2(max(1, min(h, w)))) - 2))  # each halves the size; keep >= 4 pixels
    counts = ", ".join(f"{name} {len(found)}" for name, found in per_class.items())
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in folder.name) or "images"
    size_why = (f"the median size of {sampled} sampled images ({mh}x{mw})"
                + ("" if (h, w) == (mh, mw) else f", scaled down to at most {MAX_SIDE} a side"))
    lines = [
        f"# nettrain config for the image folder {folder}: {len(per_class)} classes, {len(files)} images ({counts}).",
        "# Each sub-folder is a class; images are resized as data.images says and rescaled to 0..1 inside the model,",
        "# so `nettrain predict RUN FOLDER` takes raw image files.",
        *(["# paths are relative to the current directory; save this file here or use --output"]
          if output is None else []),
        f"name: {name}",
        "seed: 42",
        "data:",
        f"  source: {source}",
        "  images:",
        f"{f'    size: [{h}, {w}]':<24}# [height, width]: {size_why}",
        f"{f'    color: {color}':<24}# "
        f"{'every sampled image is grayscale' if color == 'grayscale' else 'the images have color'}",
        f"{'    bad: error':<24}# an unreadable image stops fit naming it; skip leaves such files out",
        "  split: {test: 0.2, validation: 0.2}   # seeded and stratified by class",
        "model:",
        "  layers:",
        "    # augmentation (active only in training), uncomment to use:",
        "    # - {type: RandomFlip, mode: horizontal}",
        "    # - {type: RandomRotation, factor: 0.1}",
    ]
    for i in range(blocks):
        lines += [f"    - {{type: Conv2D, filters: {32 * 2 ** i}, kernel_size: 3, padding: same, activation: relu}}",
                  "    - {type: MaxPooling2D}" + ("   # each block halves the size" if i == 0 else "")]
    if not blocks:
        lines.append("    - {type: Conv2D, filters: 32, kernel_size: 3, padding: same, activation: relu}"
                     "   # too small to pool")
    lines += [
        "    - {type: GlobalAveragePooling2D}   # one value per channel, whatever the size",
        "    - {type: Dropout, rate: 0.2}",
        "    - {type: Dense, units: 64, activation: relu}",
        "  output: auto         # Dense with one unit per class (sigmoid for two)",
        "training:",
        "  optimizer: {name: adam, learning_rate: 0.001}",
        "  epochs: 30",
        "  batch_size: 32",
        "callbacks:",
        "  early_stopping: {monitor: val_loss, patience: 5, restore_best_weights: true}",
        "output:",
        "  dir: runs",
    ]
    summary = (f"{folder}: {len(per_class)} classes, {len(files)} images; size [{h}, {w}] ({size_why}), {color}")
    return "\n".join(lines) + "\n", summary


def source_text(folder: Path, output: Path | None) -> str:
    """The folder as the config at `output` must write it (relative to its folder), or as typed."""
    if output is None or folder.is_absolute():
        return str(folder)
    return Path(os.path.relpath(os.path.abspath(folder), os.path.abspath(output.parent))).as_posix()
