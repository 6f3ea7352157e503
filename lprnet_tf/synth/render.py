"""Synthetic licence plates: random plate texts and rendered, degraded plate crops.

Public API::

    text, style = random_text(fmt, rng)                 # a text the format's templates accept
    image, params = render_plate(fmt, text, rng, style)  # uint8 RGB crop, JSON-able params
    image, text, params = sample(fmt, seed, index)       # sample `index` of run `seed`

What a format's plates look like (sizes, colours, fonts, decorations, text patterns) is data:
the ``synth:`` section of its YAML, documented in :mod:`lprnet_tf.synth.spec`. The camera side
(geometry, background, lighting, blur, noise, JPEG, low resolution) is in
:mod:`lprnet_tf.synth.degrade`.

A plate is drawn at a canonical resolution (``PLATE_PX`` pixels high), with glyph bitmaps
cached per (font, character, box size), then warped once into the output crop. The crop is
about 48-72 pixels high (``DegradeConfig.out_h``); the input pipeline resizes it to the model
input later.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from lprnet_tf.synth import glyphs
from lprnet_tf.synth.degrade import place_and_degrade, place_clean
from lprnet_tf.synth.spec import Style, SynthConfigError, synth_spec
from lprnet_tf.vocab import PlateFormat

PLATE_PX = 64  # canonical plate height in pixels
_SHIFT = 4  # fractional bits for cv2 drawing coordinates
_ONE = 1 << _SHIFT


# ---- texts -------------------------------------------------------------------------------------
def random_text(fmt: PlateFormat, rng: np.random.Generator, style: str | None = None) -> tuple[str, str]:
    """A random plate text of ``fmt`` and the name of the style it was drawn for.

    The style is picked by the style weights of the ``synth:`` section unless given; the text
    comes from one of the style's patterns. Raises SynthConfigError when a pattern produces a
    text the format's alphabet, length or templates reject (a configuration bug).
    """
    spec = synth_spec(fmt)
    st = spec.style(style) if style is not None else spec.styles[spec.style_choice.pick(rng)]
    pattern = st.patterns.pick(rng)
    text = pattern.generate(rng)
    why = fmt.check(text)
    if why is None and not fmt.matches_template(text):
        why = f"text {text!r} matches none of the templates of '{fmt.name}'"
    if why:
        raise SynthConfigError(f"{fmt.name}: synth style '{st.name}' pattern {pattern.source!r}: {why}")
    return text, st.name


def _style_for(spec, text: str, rng: np.random.Generator) -> Style:
    """A style whose patterns can produce ``text`` (by weight), else any style by weight."""
    fits = [st for st in spec.styles.values() if any(p.groups_of(text) for p in st.patterns.options)]
    if not fits:
        return spec.styles[spec.style_choice.pick(rng)]
    w = np.array([st.weight for st in fits], np.float64)
    return fits[int(rng.choice(len(fits), p=w / w.sum()))]


def _groups(st: Style, text: str) -> list:
    """Group lengths of ``text`` from the first pattern of the style that matches it."""
    for p in st.patterns.options:
        g = p.groups_of(text)
        if g:
            return g
    return [len(text)]


# ---- drawing helpers ---------------------------------------------------------------------------
def _fx(v: float) -> int:
    return int(round(v * _ONE))


def _jitter(rgb: tuple, rng: np.random.Generator, amount: float) -> np.ndarray:
    """``rgb`` with its brightness scaled by N(1, amount) and each channel by N(1, amount / 4)."""
    scale = rng.normal(1.0, amount) * rng.normal(1.0, amount / 4, 3)
    return np.clip(np.asarray(rgb, np.float32) * scale, 0, 255).astype(np.float32)


def _hexstr(c: np.ndarray) -> str:
    return "#" + "".join(f"{int(round(v)):02x}" for v in c)


@functools.lru_cache(maxsize=64)
def _outline(w: int, h: int, radius: int) -> np.ndarray:
    """uint8 h x w x 3 mask of a rectangle with rounded corners (the plate outline)."""
    m = np.zeros((h, w), np.uint8)
    r = max(0, min(radius, h // 2 - 1, w // 2 - 1))
    if r == 0:
        m[:] = 255
    else:
        cv2.rectangle(m, (r, 0), (w - 1 - r, h - 1), 255, -1)
        cv2.rectangle(m, (0, r), (w - 1, h - 1 - r), 255, -1)
        for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
            cv2.circle(m, (cx, cy), r, 255, -1, cv2.LINE_AA)
    return cv2.merge([m, m, m])


def _fill(st: Style, w: int, h: int, rng: np.random.Generator, ppm: float) -> tuple:
    """Plate background (uint8 h x w x 3: cv2 anti-aliases only 8-bit images) and its colours."""
    c1 = _jitter(st.bg.pick(rng), rng, st.jitter)
    if st.bg2 is None:
        return np.broadcast_to((c1 + 0.5).astype(np.uint8), (h, w, 3)).copy(), c1, None
    c2 = _jitter(st.bg2.pick(rng), rng, st.jitter)
    if st.gradient == "vertical":
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    elif st.gradient == "horizontal":
        t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    else:  # split: a soft step at split_mm
        xs = np.arange(w, dtype=np.float32)
        t = np.clip((xs - st.split_mm * ppm) / 3.0 + 0.5, 0, 1)[None, :, None]
    return np.broadcast_to((c1 * (1 - t) + c2 * t + 0.5).astype(np.uint8), (h, w, 3)).copy(), c1, c2


def _paste(img: np.ndarray, alpha: np.ndarray, x: float, y: float, color: np.ndarray) -> None:
    """Alpha-blend a solid ``color`` through ``alpha`` at top-left (x, y) into the uint8 ``img``."""
    h, w = alpha.shape
    x0, y0 = int(round(x)), int(round(y))
    ax0, ay0 = max(0, -x0), max(0, -y0)
    x1, y1 = min(img.shape[1], x0 + w), min(img.shape[0], y0 + h)
    if x1 <= x0 + ax0 or y1 <= y0 + ay0:
        return
    a = alpha[ay0:ay0 + y1 - y0 - ay0, ax0:ax0 + x1 - x0 - ax0, None]
    roi = img[y0 + ay0:y1, x0 + ax0:x1].astype(np.float32)
    img[y0 + ay0:y1, x0 + ax0:x1] = roi + (color - roi) * a + 0.5


def _draw_mark(img: np.ndarray, mark, ppm: float, colors: dict, font: str, rng: np.random.Generator) -> None:
    if mark.p < 1.0 and rng.random() >= mark.p:
        return
    c = mark.color.pick(rng) if mark.color is not None else "fg"
    color = colors[c] if isinstance(c, str) else np.asarray(c, np.float32)
    col = tuple(float(v) for v in color)
    g = [v * ppm for v in mark.geom]
    thick = max(1, int(round(mark.width * ppm)))
    if mark.shape == "rect":
        cv2.rectangle(img, (_fx(g[0]), _fx(g[1])), (_fx(g[2]), _fx(g[3])), col, -1, cv2.LINE_AA, _SHIFT)
    elif mark.shape == "frame":
        cv2.rectangle(img, (_fx(g[0]), _fx(g[1])), (_fx(g[2]), _fx(g[3])), col, thick, cv2.LINE_AA, _SHIFT)
    elif mark.shape == "line":
        cv2.line(img, (_fx(g[0]), _fx(g[1])), (_fx(g[2]), _fx(g[3])), col, thick, cv2.LINE_AA, _SHIFT)
    elif mark.shape in ("circle", "ring"):
        cv2.circle(img, (_fx(g[0]), _fx(g[1])), _fx(g[2]), col, -1 if mark.shape == "circle" else thick,
                   cv2.LINE_AA, _SHIFT)
    elif mark.shape == "stripes":
        n = len(mark.colors)
        for i, sc in enumerate(mark.colors):
            sc = colors[sc] if isinstance(sc, str) else sc
            y0, y1 = g[1] + (g[3] - g[1]) * i / n, g[1] + (g[3] - g[1]) * (i + 1) / n
            cv2.rectangle(img, (_fx(g[0]), _fx(y0)), (_fx(g[2]), _fx(y1)), tuple(float(v) for v in sc), -1,
                          cv2.LINE_AA, _SHIFT)
    else:  # text
        s = mark.texts.pick(rng)
        bw, bh = int(round(g[2] - g[0])), int(round(g[3] - g[1]))
        a = glyphs.text_fit(mark.font or font, s, bw, bh)
        _paste(img, a, g[0] + (bw - a.shape[1]) / 2, g[1] + (bh - a.shape[0]) / 2, color)


def _draw_separator(img: np.ndarray, kind: str, cx: float, cy: float, cw: float, ch: float, sep_w: float,
                    plate_h: int, color: np.ndarray) -> None:
    col = tuple(float(v) for v in color)
    if kind == "dot":
        cv2.circle(img, (_fx(cx), _fx(cy)), _fx(max(1.0, 0.11 * cw)), col, -1, cv2.LINE_AA, _SHIFT)
    elif kind == "dash":
        hw, hh = min(0.35 * sep_w, 0.22 * cw), max(0.5, 0.06 * ch)
        cv2.rectangle(img, (_fx(cx - hw), _fx(cy - hh)), (_fx(cx + hw), _fx(cy + hh)), col, -1, cv2.LINE_AA, _SHIFT)
    elif kind == "bar":
        t = max(1, int(round(0.07 * cw)))
        cv2.line(img, (_fx(cx), _fx(0.05 * plate_h)), (_fx(cx), _fx(0.95 * plate_h)), col, t, cv2.LINE_AA, _SHIFT)
    elif kind == "ring":
        r = min(0.42 * sep_w, 0.22 * ch)
        cv2.circle(img, (_fx(cx), _fx(cy)), _fx(r), col, max(1, int(round(0.18 * r))), cv2.LINE_AA, _SHIFT)


def _row_jitter(rng: np.random.Generator) -> tuple:
    """A row's random layout: scales of character width, height, gap and separator, then x and y
    offsets (drawn in this order, before the plate's separator, thinning and "1" choices, so that
    one-row plates keep the sample sequence they always had)."""
    return (rng.uniform(0.95, 1.05), rng.uniform(0.96, 1.03), rng.uniform(0.8, 1.2), rng.uniform(0.9, 1.1),
            rng.uniform(-0.02, 0.02), rng.uniform(-0.03, 0.03))


def _draw_row(img: np.ndarray, text: str, groups: list, box: tuple, cw: float, ch: float, gap: float,
              sep_w: float, j: tuple, ink: dict) -> float:
    """Draw one row of characters centred in ``box`` (plate pixels), with ``gap`` between neighbours
    and ``sep_w`` (and the separator) at group boundaries, laid out with the row's draws ``j`` (see
    :func:`_row_jitter`); returns the horizontal squeeze applied."""
    bx0, by0, bx1, by1 = box
    cw, ch, gap, sep_w = cw * j[0], ch * j[1], gap * j[2], sep_w * j[3]
    n = len(text)
    total = n * cw + (n - len(groups)) * gap + (len(groups) - 1) * sep_w
    squeeze = min(1.0, (bx1 - bx0) / total)
    cw, gap, sep_w = cw * squeeze, gap * squeeze, sep_w * squeeze
    x = bx0 + ((bx1 - bx0) - total * squeeze) / 2 + j[4] * cw * n
    y = (by0 + by1 - ch) / 2 + j[5] * ch
    box_w, box_h = max(2, int(round(cw))), max(4, int(round(ch)))
    i = 0
    for gi, glen in enumerate(groups):
        for k in range(glen):
            c = text[i]
            shape = c
            if ink["plain_one"] and c == "1":
                shape = glyphs.BARE_STROKE.get(ink["font"], "I")
            elif c == "0" and not ink["letter_o"]:
                shape = glyphs.PLAIN_ZERO.get(ink["font"], "0")
            elif ink["plate_shapes"] and c in ink["plate_shapes"]:
                variant = ink["m_apex"] if c in "MW" else ink["bowl_curl"] if c in "35" else ""
                shape = glyphs.PLATE_PREFIX + c + str(variant)
            a = glyphs.glyph(ink["cjk_font"] if glyphs.is_cjk(c) else ink["font"], shape, box_w, box_h, ink["thin"])
            if ink["cjk_warp"] and glyphs.is_cjk(c):  # draws from rng only for styles that warp
                a = glyphs.warped(a, ink["rng"], ink["cjk_warp"])
            _paste(img, a, x + (cw - a.shape[1]) / 2, y, ink["accent"] if c in ink["accent_chars"] else ink["fg"])
            x += cw + (gap if k < glen - 1 else 0.0)
            i += 1
        if gi < len(groups) - 1:
            _draw_separator(img, ink["sep"], x + sep_w / 2, y + ch / 2, cw, ch, sep_w, ink["plate_h"], ink["fg"])
            x += sep_w
    return squeeze


# ---- the plate ---------------------------------------------------------------------------------
def draw_plate(st: Style, text: str, rng: np.random.Generator) -> tuple:
    """The clean plate: premultiplied uint8 RGBA at PLATE_PX height, and its params."""
    w_mm, h_mm = st.size_mm
    ppm = PLATE_PX / h_mm
    h, w = PLATE_PX, int(round(w_mm * ppm))
    img, bg, bg2 = _fill(st, w, h, rng, ppm)
    fg = _jitter(st.fg.pick(rng), rng, st.jitter)
    font = st.fonts.pick(rng)
    colors = {"fg": fg, "bg": bg}
    for mark in st.marks:
        _draw_mark(img, mark, ppm, colors, font, rng)

    jitter = [_row_jitter(rng) for _ in range(2 if st.first_box is not None else 1)]
    sep = st.sep.pick(rng)
    # stroke thinning in master-bitmap pixels (the master cap height is about 0.72 MASTER_PX)
    thin = int(round(rng.uniform(*st.thin) * 0.72 * glyphs.MASTER_PX))
    accent = np.asarray(st.accent, np.float32) if st.accent is not None else fg
    plain_one = st.plain_one > 0 and rng.random() < st.plain_one  # "1" as a bare stroke (CN plate font)
    plate_shapes = st.plate_shapes > 0 and rng.random() < st.plate_shapes  # C/G/Q/M/W/3/5 of the CN plate font
    m_apex = int(rng.integers(len(glyphs.M_APEX))) if plate_shapes else 0  # how deep the M's V reaches
    # how far the bowls of 3 and 5 curl (drawn only for styles that draw them, so older formats keep their samples)
    curls = plate_shapes and bool(set("35") & set(st.plate_shapes_chars))
    bowl_curl = int(rng.integers(len(glyphs.BOWL_CURL))) if curls else 0
    cjk_font = st.cjk_fonts.pick(rng)  # face of the ideographs (draws nothing from rng when there is one)
    ink = dict(font=font, cjk_font=cjk_font, thin=thin, fg=fg, accent=accent, accent_chars=st.accent_chars,
               plain_one=plain_one, plate_shapes=st.plate_shapes_chars if plate_shapes else "", m_apex=m_apex,
               bowl_curl=bowl_curl, letter_o=st.letter_o,
               sep=sep, plate_h=h, cjk_warp=st.cjk_warp, rng=rng)
    if st.first_box is not None:  # two_row / lead: the first characters in a box of their own, smaller
        n_top, top_box, top_char, top_gap = st.first_box
        top_box = tuple(v * ppm for v in top_box)
        _draw_row(img, text[:n_top], [n_top], top_box, top_char[0] * ppm, top_char[1] * ppm, top_gap * ppm,
                  0.0, jitter[0], ink)
        groups = _groups(st, text)  # the rest keeps the pattern's later groups (and sep_mm between them)
        cut = next((i for i in range(1, len(groups) + 1) if sum(groups[:i]) == n_top), None)
        rest = groups[cut:] if cut is not None and cut < len(groups) else [len(text) - n_top]
        squeeze = _draw_row(img, text[n_top:], rest, tuple(v * ppm for v in st.text_box_mm),
                            st.char_mm[0] * ppm, st.char_mm[1] * ppm, st.gap_mm * ppm, st.sep_mm * ppm, jitter[1], ink)
    else:
        squeeze = _draw_row(img, text, _groups(st, text), tuple(v * ppm for v in st.text_box_mm),
                            st.char_mm[0] * ppm, st.char_mm[1] * ppm, st.gap_mm * ppm, st.sep_mm * ppm, jitter[0], ink)

    mask = _outline(w, h, int(round(st.corner_mm * ppm)))
    rgba = cv2.merge([*cv2.split(cv2.multiply(img, mask, scale=1.0 / 255.0)), mask[..., 0]])
    params = {"style": st.name, "font": font, "thin": thin, "plain_one": bool(plain_one),
              **({"plate_shapes": True, "m_apex": glyphs.M_APEX[m_apex]} if plate_shapes else {}),
              **({"bowl_curl": glyphs.BOWL_CURL[bowl_curl]} if curls else {}),
              **({"cjk_font": cjk_font} if len(st.cjk_fonts.options) > 1 else {}),
              **({"cjk_warp": st.cjk_warp} if st.cjk_warp else {}),
              "bg": _hexstr(bg), "fg": _hexstr(fg), "sep": sep, "squeeze": round(float(squeeze), 4)}
    if bg2 is not None:
        params["bg2"] = _hexstr(bg2)
    return rgba, params


def render_plate(fmt: PlateFormat, text: str, rng: np.random.Generator, style: str | None = None,
                 degrade: bool = True) -> tuple[np.ndarray, dict]:
    """Render ``text`` as a plate crop of format ``fmt``: (uint8 RGB H x W x 3, params).

    ``style`` defaults to a style whose patterns can produce ``text`` (by weight). With
    ``degrade=False`` the plate is upright, sharp, 64 pixels high with a small grey margin.
    ``params`` holds the style, font and colours, every degradation parameter applied, and
    ``degradation`` in [0, 1] (0 = clean); it is JSON-serializable.
    """
    spec = synth_spec(fmt)
    st = spec.style(style) if style is not None else _style_for(spec, text, rng)
    rgba, params = draw_plate(st, text, rng)
    if degrade:
        image, dp = place_and_degrade(rgba, rng, spec.degrade)
    else:
        image, dp = place_clean(rgba)
    params.update(dp)
    return image, params


def sample(fmt: PlateFormat, seed: int, index: int, style: str | None = None,
           degrade: bool = True) -> tuple[np.ndarray, str, dict]:
    """Sample ``index`` of the synthetic run ``seed``: (image, text, params).

    Each sample has its own generator ``numpy.random.default_rng([seed, index])``, so sample i
    is the same whatever was generated before it (training can resume from a sample index).
    """
    rng = np.random.default_rng([int(seed), int(index)])
    text, st = random_text(fmt, rng, style)
    image, params = render_plate(fmt, text, rng, st, degrade)
    return image, text, params


def sample_text(fmt: PlateFormat, seed: int, index: int, style: str | None = None) -> str:
    """The text of :func:`sample` ``(fmt, seed, index)`` without rendering the image."""
    return random_text(fmt, np.random.default_rng([int(seed), int(index)]), style)[0]
