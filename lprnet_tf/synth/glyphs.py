"""Bundled fonts and cached glyph bitmaps for the plate renderer and the contact sheets.

Fonts are named, not pathed: ``cjk`` is the Noto Sans CJK SC Bold subset (plate alphabets of
every shipped format, printable ASCII, ``·``), ``cjk_black`` / ``cjk_medium`` the same characters
in its Black and Medium weights, ``latin`` the DejaVu Sans Condensed Bold subset
(printable ASCII, ``·``), ``mono`` / ``mono_book`` the DejaVu Sans Mono Bold / Book subsets (same
characters). ``fonts/README.md`` says where they come from and how they are cut.

Glyphs are rasterised once per (font, text) at a large master size with PIL, cropped to their
ink, and then resized with OpenCV to whatever box a plate asks for; both steps are cached, so a
training input pipeline pays the FreeType cost only for the first few hundred samples.
"""

from __future__ import annotations

import functools
import os

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fonts")
FONTS = {
    "cjk": "NotoSansCJKsc-Bold.subset.otf",
    "cjk_black": "NotoSansCJKsc-Black.subset.otf",
    "cjk_medium": "NotoSansCJKsc-Medium.subset.otf",
    "latin": "DejaVuSansCondensed-Bold.subset.ttf",
    "mono": "DejaVuSansMono-Bold.subset.ttf",
    "mono_book": "DejaVuSansMono.subset.ttf",
}
# The character drawn for a digit 1 shaped as a bare vertical stroke (Chinese plates): the font's
# "I" where it has no serifs, "|" in the Mono faces (their "I" has bars top and bottom).
BARE_STROKE = {"mono": "|", "mono_book": "|"}
# The character drawn for the digit 0 where the font's own is marked (the Mono faces dot their 0): "O", the same
# oval without the dot. Only for alphabets without the letter O (Chinese plates).
PLAIN_ZERO = {"mono": "O", "mono_book": "O"}
MASTER_PX = 96  # font size of the master rasterisation
# Ink aspect (width / height) a "normal-width" glyph is scaled to: the mean over these digits.
_REFERENCE_GLYPHS = "0235689"
_NOT_IN_ANY_FONT = "\ue000"  # a private-use code point: renders as the font's .notdef glyph


def font_path(name: str) -> str:
    """File of the bundled font ``name`` (a key of ``FONTS``)."""
    if name not in FONTS:
        raise ValueError(f"unknown font '{name}'; bundled fonts: {sorted(FONTS)}")
    return os.path.join(FONT_DIR, FONTS[name])


@functools.lru_cache(maxsize=None)
def pil_font(name: str, size: int = MASTER_PX) -> ImageFont.FreeTypeFont:
    """The bundled font ``name`` at ``size`` pixels (cached)."""
    return ImageFont.truetype(font_path(name), size)


@functools.lru_cache(maxsize=None)
def master(name: str, text: str) -> np.ndarray:
    """uint8 coverage bitmap of ``text`` at the master size, cropped to its ink.

    Returns a (0, 0) array when ``text`` leaves no ink (a space, say).
    """
    font = pil_font(name)
    left, top, right, bottom = font.getbbox(text)
    pad = 4
    img = Image.new("L", (max(1, right - left) + 2 * pad, max(1, bottom - top) + 2 * pad), 0)
    ImageDraw.Draw(img).text((pad - left, pad - top), text, font=font, fill=255)
    a = np.asarray(img)
    rows = np.flatnonzero(a.max(axis=1))
    cols = np.flatnonzero(a.max(axis=0))
    if rows.size == 0:
        return np.zeros((0, 0), np.uint8)
    return np.ascontiguousarray(a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])


def notdef(name: str) -> np.ndarray:
    """Master bitmap of the font's .notdef glyph (what a missing character renders as)."""
    return master(name, _NOT_IN_ANY_FONT)


def has_glyph(name: str, ch: str) -> bool:
    """True when ``ch`` renders with ink in font ``name`` and is not the .notdef box."""
    a, nd = master(name, ch), notdef(name)
    if a.size == 0 or a.max() < 128:
        return False
    return a.shape != nd.shape or not np.array_equal(a, nd)


def is_cjk(ch: str) -> bool:
    """CJK ideographs fill their whole character box; Latin glyphs keep their proportions."""
    return len(ch) == 1 and ord(ch) >= 0x2E80


@functools.lru_cache(maxsize=None)
def reference_aspect(name: str) -> float:
    """Mean ink width / height of the reference digits in font ``name``."""
    shapes = [master(name, c).shape for c in _REFERENCE_GLYPHS]
    return float(np.mean([w / h for h, w in shapes]))


# Letters drawn the way the Chinese plate font (GB 2017) draws them, built from the font's own glyphs: C, G and
# Q share the narrow oval of the digit 0 (C = the 0 with a mouth cut on the right, G = that C with a bar turned
# in, Q = the 0 with a short tail), and M has vertical sides with a V of thin strokes meeting half way down.
# The bold faces draw wide-mouthed C/G, long-tailed Q and heavy M, and a model trained on them alone reads the
# real letters as 0 and H (on the real CN crops, of the plates holding a C, Q, M, G: 82/82, 31/34, 68/70,
# 61/74 misread).
# W, 3 and 5 (added later, so formats opt in with the style key ``plate_shapes_chars``): W is that M upside down
# (its middle peak reaches half way up, not the top as in the bundled faces); 5 has a bowl that curls back almost to
# its stem (the bundled faces leave it wide open; the 22,000-step CN model read the real 5s as 6 on 43 of the real
# crops, and these 5s as 6 on 43 of 200 synthetic plates while reading the faces' 5s right on 197:
# benchmarks/glyph_probe.py); 3 has a flat top and a diagonal down to its bowl (the real 3s are drawn so).
# O (for alphabets with the letter O): the narrow oval of the font's 0, as condensed plate fonts draw the letter
# (the old Brazilian grey plates; their C and G are not the Chinese shapes above: benchmarks/results/glyph_probe_br.md);
# the bundled faces' O is a wide ring.
PLATE_SHAPES = "CGQMW35O"
PLATE_SHAPES_DEFAULT = "CGQM"  # what ``plate_shapes`` draws where a style does not name the characters
PLATE_PREFIX = "plate:"
M_APEX = (0.5, 0.65, 0.8)  # depths of the M's V (fraction of the height) drawn: "plate:M0" .. "plate:M2"
BOWL_CURL = (160, 175, 190)  # where the 5's bowl ends (degrees, 180 = its leftmost point): "plate:50" .. "plate:52";
# the 3's ends 15 degrees earlier ("plate:30" .. "plate:32")


@functools.lru_cache(maxsize=None)
def plate_shape(name: str, ch: str) -> np.ndarray:
    """Master bitmap of character ``ch`` (one of :data:`PLATE_SHAPES`) as the Chinese plate font (O: a condensed
    plate font) draws it, made from font ``name``'s ``0`` (C, G, Q, O), ``H`` (M, W), ``3`` or ``5``; the stroke
    width is the font's (for 3 and 5 at most 15 % of the height). ``M1`` / ``W1`` etc.: the M with its V reaching
    ``M_APEX[1]`` of the height, the W with its peak as far up (plain: the middle depth); ``51`` / ``31`` etc.: the
    5 whose bowl ends at ``BOWL_CURL[1]`` degrees, the 3 whose bowl ends 15 degrees earlier (plain ``5`` / ``3``:
    the middle one)."""
    k = 1  # the variant: index into M_APEX (M, W) or BOWL_CURL (3, 5)
    variants = len(M_APEX) if ch[:1] in "MW" else len(BOWL_CURL)
    if len(ch) == 2 and ch[0] in "MW35" and ch[1].isdigit() and int(ch[1]) < variants:
        ch, k = ch[0], int(ch[1])
    if ch not in PLATE_SHAPES:
        raise ValueError(f"no plate shape for {ch!r}; plate shapes: {PLATE_SHAPES}")
    if ch == "W":
        return np.ascontiguousarray(plate_shape(name, f"M{k}")[::-1])
    if ch == "5":
        return _curled_five(name, BOWL_CURL[k])
    if ch == "3":
        return _flat_three(name, BOWL_CURL[k] - 15)
    base = master(name, "H" if ch == "M" else PLAIN_ZERO.get(name, "0"))
    if ch == "O":
        return base.copy()  # the oval itself (undotted: the Mono faces' 0 is dotted, their O is as narrow)
    a = base.copy()
    h, w = a.shape
    stroke = int(max(2, _left_stroke(base, h // 4 if ch == "M" else h // 2, w // 6)))  # (H: above its crossbar)
    if ch == "M":
        a[:, stroke:w - stroke] = 0  # keep the two verticals
        apex = (w // 2, int(round(M_APEX[k] * h)))
        t = max(1, int(round(0.55 * stroke)))
        for x in (stroke, w - 1 - stroke):
            cv2.line(a, (x, t // 2), apex, 255, thickness=t, lineType=cv2.LINE_AA)
        return a
    if ch in "CG":
        y0, y1 = int(round(0.34 * h)), int(round(0.66 * h))
        a[y0:y1, w // 2:] = 0  # the mouth
        if ch == "G":
            yb = int(round(0.5 * h - stroke / 2))
            a[yb:yb + stroke, int(round(0.52 * w)):] = 255  # the bar turned in
            a[yb:y1, w - stroke:] = 255  # the right side below it
        return a
    # Q: a short tail across the bottom right of the ring
    cv2.line(a, (int(round(0.60 * w)), int(round(0.78 * h))), (w - 1 - stroke // 3, h - 1 - stroke // 3), 255,
             thickness=max(1, int(round(0.8 * stroke))), lineType=cv2.LINE_AA)
    return a


def _left_stroke(a: np.ndarray, y: int, fallback: int) -> int:
    """Width of the ink of master bitmap ``a`` in row ``y`` left of its middle (a glyph's left stroke), or
    ``fallback`` when the row has no ink."""
    row = np.flatnonzero(a[y] > 127)
    return int(row[row < a.shape[1] // 2].size) if row.size else fallback


def _plate_stroke(name: str, h: int, w: int) -> int:
    """Stroke width for a drawn plate digit in font ``name`` (box ``h`` x ``w``): the left stroke of its H, at most
    15 % of the height (a bold stroke would fill the bowls)."""
    hh = master(name, "H")
    return int(max(2, min(_left_stroke(hh, hh.shape[0] // 4, w // 6), round(0.15 * h))))


def _curled_five(name: str, curl: float) -> np.ndarray:
    """The plate font's 5 in the box of font ``name``'s own 5: a top bar, a stem down to a ring filling the lower
    60 % of the box, and the ring drawn clockwise from where the stem meets it round to ``curl`` degrees (0 = right,
    90 = bottom, 180 = left), so that only a narrow gap on the left separates its end from the stem; stroke:
    :func:`_plate_stroke`."""
    h, w = master(name, "5").shape
    s = _plate_stroke(name, h, w)
    a = np.zeros((h, w), np.uint8)
    top = 0.40 * h  # the ring's top edge
    cx, cy, ax, ay = w / 2, (top + h) / 2, w / 2 - s / 2, (h - top) / 2 - s / 2
    start = -122.0  # the ring's upper left, where the stem comes down
    cv2.ellipse(a, (int(round(cx)), int(round(cy))), (int(round(ax)), int(round(ay))), 0, start, curl, 255,
                thickness=s, lineType=cv2.LINE_AA)
    xj = cx + ax * np.cos(np.radians(start))
    yj = cy + ay * np.sin(np.radians(start))
    x0 = max(0, int(round(xj - s / 2)))
    a[:int(round(yj)) + 1, x0:x0 + s] = 255  # the stem
    a[:s, x0:int(round(0.92 * w))] = 255  # the top bar
    return a


def _flat_three(name: str, curl: float) -> np.ndarray:
    """The plate font's 3 in the box of font ``name``'s own 3: a flat top bar, a diagonal from its right end down to
    the middle, and a bowl filling the lower 58 % drawn clockwise from its top round to ``curl`` degrees (as in
    :func:`_curled_five`); stroke: :func:`_plate_stroke`."""
    h, w = master(name, "3").shape
    s = _plate_stroke(name, h, w)
    a = np.zeros((h, w), np.uint8)
    mid = 0.42 * h  # the bowl's top edge
    a[:s, int(round(0.10 * w)):int(round(0.90 * w))] = 255  # the top bar
    cv2.line(a, (int(round(0.86 * w)), s // 2), (int(round(0.40 * w)), int(round(mid + s / 2))), 255, thickness=s,
             lineType=cv2.LINE_AA)  # the diagonal
    cx, cy, ax, ay = w / 2, (mid + h) / 2, w / 2 - s / 2, (h - mid) / 2 - s / 2
    cv2.ellipse(a, (int(round(cx)), int(round(cy))), (int(round(ax)), int(round(ay))), 0, -100, curl, 255,
                thickness=s, lineType=cv2.LINE_AA)
    return a


def _master_shape(name: str, ch: str) -> np.ndarray:
    """``master(name, ch)``, or :func:`plate_shape` for ``ch`` = ``"plate:" + letter``."""
    if ch.startswith(PLATE_PREFIX):
        return plate_shape(name, ch[len(PLATE_PREFIX):])
    return master(name, ch)


@functools.lru_cache(maxsize=None)
def thinned(name: str, ch: str, thin: int) -> np.ndarray:
    """Master bitmap of ``ch`` with its strokes eroded by ``thin`` pixels (same size, same box); ``ch`` may be
    ``"plate:" + letter`` (:func:`plate_shape`)."""
    a = _master_shape(name, ch)
    if thin <= 0 or a.size == 0:
        return a
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * thin + 1, 2 * thin + 1))
    return cv2.erode(a, k)


@functools.lru_cache(maxsize=8192)
def glyph(name: str, ch: str, box_w: int, box_h: int, thin: int = 0) -> np.ndarray:
    """float32 alpha (0..1) of character ``ch`` fitted to a ``box_w`` x ``box_h`` pixel box.

    Plate characters are drawn as tall as the box. A CJK ideograph is stretched to the full
    box (plate fonts are narrow); a Latin glyph is condensed by the factor that makes the
    reference digits exactly ``box_w`` wide, so narrow glyphs such as ``1`` stay narrow and wide
    ones (``M``, ``W``) are capped at the box width. The returned width is therefore <= box_w.
    ``thin`` erodes the strokes by that many master pixels first (plate fonts are lighter than
    the bundled bold faces).
    """
    a = thinned(name, ch, thin)
    if a.size == 0:
        return np.zeros((box_h, 1), np.float32)
    h, w = a.shape
    if is_cjk(ch):
        out_w = box_w
    else:
        squeeze = box_w / (reference_aspect(name) * box_h)
        out_w = int(np.clip(round(w / h * box_h * squeeze), 1, box_w))
    return cv2.resize(a, (out_w, box_h), interpolation=cv2.INTER_AREA).astype(np.float32) * (1.0 / 255.0)


def warped(a: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """``a`` (a glyph's alpha) under a smooth random displacement: each of its parts moves by a few
    pixels (std up to ``amount`` x its height: the strength is drawn uniformly per call, so some glyphs
    stay nearly as drawn) and the whole is scaled by up to ±2 ``amount`` per axis, so
    the radicals of an ideograph change their size, place and slant a little, as they do between
    faces. For characters whose plate font is not bundled (the province on Chinese plates): the
    model learns the character, not one face's drawing of it. Same shape and dtype as ``a``."""
    h, w = a.shape
    if amount <= 0 or h < 4 or w < 4:
        return a
    amount *= rng.uniform(0.0, 1.0)
    grid = rng.normal(0.0, amount * h, size=(2, 3, 3)).astype(np.float32)  # (dx, dy) at 3 x 3 control points
    dx = cv2.resize(grid[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(grid[1], (w, h), interpolation=cv2.INTER_CUBIC)
    sx, sy = 1.0 + rng.uniform(-2.0, 2.0, size=2) * amount  # global scale about the centre
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = ((xs - (w - 1) / 2) / sx + (w - 1) / 2 + dx).astype(np.float32)
    map_y = ((ys - (h - 1) / 2) / sy + (h - 1) / 2 + dy).astype(np.float32)
    return cv2.remap(a, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@functools.lru_cache(maxsize=1024)
def text_fit(name: str, text: str, box_w: int, box_h: int) -> np.ndarray:
    """float32 alpha of a whole string (a caption) fitted inside a box, aspect kept.

    The ink is scaled to the box height, then squeezed horizontally (never stretched) if it is
    wider than the box. Returns an array of height <= box_h and width <= box_w.
    """
    a = master(name, text)
    if a.size == 0 or box_w < 1 or box_h < 1:
        return np.zeros((max(box_h, 1), 1), np.float32)
    h, w = a.shape
    out_h = box_h
    out_w = max(1, min(box_w, round(w * box_h / h)))
    return cv2.resize(a, (out_w, out_h), interpolation=cv2.INTER_AREA).astype(np.float32) * (1.0 / 255.0)
