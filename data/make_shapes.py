"""Writes data/shapes/: a tiny image folder for configs/shapes-images.yaml (and the tests).

Three classes, one sub-folder each (circle/, square/, triangle/), `PER_CLASS` PNG images of
16x16 pixels: one light shape of random size, place and color on a dark, noisy background.
Deterministic (seeded); about 30 KB. Run it again with: python data/make_shapes.py [FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
PER_CLASS = 30
SIZE = 16


def draw(shape: str, rng: np.random.Generator, size: int = SIZE, mode: str = "RGB") -> Image.Image:
    """One image of `shape` (a class name) in Pillow `mode` (RGB or L)."""
    noise = rng.integers(0, 50, (size, size, 3)).astype(np.uint8)
    im = Image.fromarray(noise).convert(mode)
    pen = ImageDraw.Draw(im)
    side = int(rng.integers(size // 2, size - 2))
    x, y = (int(v) for v in rng.integers(0, size - side, 2))
    color = tuple(int(v) for v in rng.integers(160, 256, 3))
    fill = color if mode == "RGB" else color[0]
    box = [x, y, x + side - 1, y + side - 1]
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(x, y + side - 1), (x + side - 1, y + side - 1), (x + side // 2, y)], fill=fill)
    return im


def make(root: Path, per_class: int = PER_CLASS, size: int = SIZE, mode: str = "RGB", seed: int = 0) -> Path:
    """The folder `root` with one sub-folder per class of `per_class` PNG files each."""
    rng = np.random.default_rng(seed)
    for shape in CLASSES:
        folder = Path(root) / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(shape, rng, size, mode).save(folder / f"{shape}-{i:03d}.png")
    return Path(root)


if __name__ == "__main__":
    make(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "shapes")
