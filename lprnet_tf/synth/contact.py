"""Contact sheets: a grid of images with a (possibly multi-line) label under each.

Used for synthetic-data previews and, elsewhere, error galleries (``"truth\\npred 0.93"``).
Labels are drawn with the bundled Noto Sans CJK subset, so Chinese plate texts render; a
character missing from it shows as the font's .notdef box.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image, ImageDraw

from lprnet_tf.synth import glyphs

_BG = (32, 32, 32)
_FG = (235, 235, 235)
_PAD = 4


def _as_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 from a grey, RGB or RGBA image (floats in [0, 1] or [0, 255] accepted)."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(a + 0.5, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return a[..., :3]


def _fit(img: np.ndarray, h: int, w: int, stretch: bool) -> np.ndarray:
    """``img`` resized to exactly h x w (stretch) or letterboxed into it (aspect kept)."""
    if stretch:
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR)
    s = min(h / img.shape[0], w / img.shape[1])
    nh, nw = max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.full((h, w, 3), _BG, np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y:y + nh, x:x + nw] = small
    return out


def contact_sheet(images: list, labels: list | None = None, cols: int = 8, cell_hw: tuple = (48, 150),
                  font_px: int = 13, stretch: bool = False) -> np.ndarray:
    """A uint8 RGB grid of ``images`` (each fitted into ``cell_hw``) with ``labels`` below.

    Labels may contain newlines; every cell gets room for the longest label. ``stretch=True``
    resizes each image to exactly the cell size (as a model input would be) instead of
    letterboxing it.
    """
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels")
    ch, cw = int(cell_hw[0]), int(cell_hw[1])
    cols = max(1, min(int(cols), max(1, len(images))))
    rows = max(1, -(-len(images) // cols))
    lines = max((str(t).count("\n") + 1 for t in labels), default=0) if labels else 0
    line_h = font_px + 3
    cell_h, cell_w = ch + lines * line_h + 2 * _PAD, cw + 2 * _PAD
    sheet = np.full((rows * cell_h, cols * cell_w, 3), _BG, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y, x = r * cell_h + _PAD, c * cell_w + _PAD
        sheet[y:y + ch, x:x + cw] = _fit(_as_rgb(img), ch, cw, stretch)
    if lines:
        pil = Image.fromarray(sheet)
        draw = ImageDraw.Draw(pil)
        font = glyphs.pil_font("cjk", font_px)
        for i, label in enumerate(labels):
            r, c = divmod(i, cols)
            for k, line in enumerate(str(label).split("\n")):
                draw.text((c * cell_w + _PAD, r * cell_h + _PAD + ch + 1 + k * line_h), line, font=font, fill=_FG)
        sheet = np.asarray(pil).copy()
    return sheet


def save_contact_sheet(path: str, images: list, labels: list | None = None, cols: int = 8, **kwargs) -> str:
    """Write :func:`contact_sheet` to ``path`` (PNG by extension); returns ``path``."""
    sheet = contact_sheet(images, labels, cols, **kwargs)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    if not cv2.imwrite(path, sheet[..., ::-1]):
        raise OSError(f"could not write contact sheet {path}")
    return path
