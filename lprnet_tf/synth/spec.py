"""The ``synth:`` section of a plate-format YAML: what synthetic plates of a format look like.

Sizes are in millimetres on the physical plate; colours are ``"#rrggbb"``. Example (abridged
from ``configs/plates/cn.yaml``)::

    synth:
      sets:                        # named character sets used by the patterns
        P: {皖: 8, 粤: 8, 京: 4}    # mapping: pick a key by weight, then one of its characters
        S: {A: 3, BCDEFGH: 7}
      degrade: {rotate_std: 3.0}   # overrides of lprnet_tf.synth.degrade.DegradeConfig fields
      styles:                      # one entry per kind of plate; a sample picks one by weight
        blue:
          weight: 70
          patterns: ["PS|XXXXX"]   # list (uniform) or {pattern: weight}
          size_mm: [440, 140]
          text_box_mm: [10, 25, 430, 115]
          char_mm: [45, 90]        # character box: width, height
          gap_mm: 12               # space between neighbouring characters
          sep_mm: 34               # space at a '|' of the pattern (instead of gap_mm)
          sep: dot                 # drawn in that space: none, dot, dash, bar or ring (or a list)
          fonts: {cjk: 1}          # bundled font -> weight (lprnet_tf.synth.glyphs.FONTS)
          bg: ["#0d4fa8", "#1656c0"]  # plate colour, one picked per sample, then jittered
          fg: "#f4f6f8"            # character colour (string or list)
          marks:                   # decorations drawn before the characters
            - {frame: [3, 3, 437, 137], width: 2, color: fg}
            - {circle: [95, 14, 4], color: "#c8ccd4", p: 0.8}
        yellow:
          base: blue               # inherit every key of another style, override some
          bg: "#f0b400"
          fg: "#101010"

Patterns. Every character of a pattern is one output item:

* an ASCII capital letter names a set: ``sets`` of the format, else the built-ins ``D`` (the
  alphabet's digits), ``L`` (its letters) and ``X`` (both, uniform over characters);
* ``[...]`` picks one character of the brackets (``[DF]``; a Latin literal is written ``[Z]``);
* ``|`` marks a group boundary: the renderer leaves ``sep_mm`` there and draws ``sep``;
* any other character is itself (``警``, ``使``, digits).

A set is a string (uniform over its characters), a list of strings (uniform over the items; an
item may have several characters, e.g. Uzbek region codes ``["01", "10"]``) or a mapping
``{string: weight}`` (pick a key by weight, then a uniform character of it). Every text a
pattern produces must pass the format's ``check`` and templates; :func:`lprnet_tf.synth.render.
random_text` raises :class:`SynthConfigError` when one does not.

Style keys (all optional except ``patterns`` and ``size_mm``, which may come from ``base``):

* ``weight`` (1), ``base``, ``patterns``, ``size_mm``;
* ``text_box_mm`` ``[x0, y0, x1, y1]`` (default: 4 % / 12 % inside the plate): characters are
  centred in it and squeezed horizontally when a long text does not fit;
* ``char_mm`` (default: 0.5 x 0.7 of the text box height), ``gap_mm`` (0.15 char widths),
  ``sep_mm`` (two gaps), ``sep`` (``none``);
* ``fonts``: mapping or list of bundled font names (default ``cjk``); ``thin`` ``[lo, hi]``:
  stroke thinning, a fraction of the character height eroded from each side of the strokes,
  drawn uniformly per sample (default ``[0, 0]``: the bold faces as they are); ``cjk_fonts``: the
  bundled fonts that draw ideographs (the province character), picked per plate like ``fonts``
  (default ``cjk``, the Noto Sans CJK Bold subset; ``cjk_black`` and ``cjk_medium`` are its Black and
  Medium weights); ``cjk_warp`` (0): the largest std of a smooth random displacement of each ideograph's
  parts, a fraction of its height (the strength drawn uniformly per character, plus a global scale of up to
  twice it per axis; at most 0.15), so that a model learns the province character rather than one bundled
  face's drawing of it (:func:`lprnet_tf.synth.glyphs.warped`);
* ``bg``, ``bg2`` (second colour: gradient or split), ``gradient`` (``vertical`` top ``bg`` to
  bottom ``bg2``, ``horizontal`` left to right, or ``split``: ``bg`` left of ``split_mm``, ``bg2``
  right of it), ``fg``, ``accent`` ``{chars: "警使", color: "#c81e1e"}`` (those characters drawn
  in another colour), ``jitter`` (relative brightness jitter of the picked colours, each
  channel also varying by a quarter of it; 0.06);
* ``plain_one`` (0): probability that a plate draws the digit ``1`` as a plain vertical stroke (the
  font's ``I``), as Chinese plates do; only for alphabets without the letter I;
* ``plate_shapes`` (0): probability that a plate draws C, G, Q and M as the Chinese plate font does, built
  from the picked font's own 0 and H (:func:`lprnet_tf.synth.glyphs.plate_shape`); ``plate_shapes_chars``
  (``"CGQM"``): the characters such a plate draws so, any of ``CGQMW35O`` (W: the plate M upside down; 3: a
  flat top and a diagonal; 5: its bowl curled back almost to the stem; O: the narrow oval of the font's 0, for
  alphabets with the letter O, as the old Brazilian plates draw it);
* ``two_row``: two-row (square) plates, ``{top_chars: 2, top_box_mm: [x0, y0, x1, y1], top_char_mm:
  [w, h], top_gap_mm: 8}``: the first ``top_chars`` characters of the text are drawn in the top box
  with their own character size and gap; the rest in ``text_box_mm`` with ``char_mm`` (the bottom row).
  Use it with ``rows: 2`` and a ``row_split`` near ``top row bottom edge / plate height`` in the format;
* ``lead``: one-row plates whose first characters sit in a box of their own at a smaller size (the
  Uzbek region code left of the bar), ``{chars: 2, box_mm: [x0, y0, x1, y1], char_mm: [w, h], gap_mm:
  4}``: drawn like ``two_row``'s top row; the pattern's ``|`` after them then draws nothing (draw the
  bar as a ``line`` mark). A style has ``two_row`` or ``lead``, not both;
* ``corner_mm``: corner radius of the plate outline (8);
* ``marks``: list of decorations, each with exactly one shape key: ``rect``/``frame``/``line``
  ``[x0, y0, x1, y1]``, ``circle``/``ring`` ``[cx, cy, r]``, ``stripes`` ``[x0, y0, x1, y1]``
  with ``colors`` (equal horizontal stripes, top to bottom), ``text`` ``[x0, y0, x1, y1]`` with
  ``texts`` (one string picked, fitted in the box) and optional ``font``; plus ``color``
  (``"#rrggbb"``, ``fg``, ``bg`` or a list to pick from), ``width`` (mm, for frame/ring/line)
  and ``p`` (probability the mark is drawn, 1).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from lprnet_tf.synth import glyphs
from lprnet_tf.synth.degrade import DegradeConfig, degrade_config
from lprnet_tf.vocab import PlateFormat, PlateFormatError


class SynthConfigError(PlateFormatError):
    """The ``synth:`` section of a plate format is missing, malformed or inconsistent."""


SEPARATORS = ("none", "dot", "dash", "bar", "ring")
GRADIENTS = ("vertical", "horizontal", "split")
SHAPES = ("rect", "frame", "line", "circle", "ring", "stripes", "text")
_STYLE_KEYS = {
    "weight", "base", "patterns", "size_mm", "text_box_mm", "char_mm", "gap_mm", "sep_mm", "sep",
    "fonts", "thin", "bg", "bg2", "gradient", "split_mm", "fg", "accent", "jitter", "corner_mm", "marks",
    "plain_one", "plate_shapes", "plate_shapes_chars", "two_row", "lead", "cjk_fonts", "cjk_warp",
}
_MARK_KEYS = set(SHAPES) | {"color", "colors", "width", "p", "texts", "font"}
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


# ---- small value types ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Choice:
    """A weighted choice among options; ``pick`` draws one with a numpy Generator."""

    options: tuple
    weights: np.ndarray  # normalised, float64

    @staticmethod
    def of(value: Any, what: str) -> "Choice":
        """A string/number (one option), a list (uniform) or a mapping option -> weight."""
        if isinstance(value, dict):
            opts, w = tuple(value), [float(v) for v in value.values()]
        elif isinstance(value, (list, tuple)):
            opts, w = tuple(value), [1.0] * len(value)
        else:
            opts, w = (value,), [1.0]
        if not opts or any(x < 0 for x in w) or sum(w) <= 0:
            raise SynthConfigError(f"{what}: needs at least one option with a positive weight, got {value!r}")
        w = np.asarray(w, np.float64)
        return Choice(opts, w / w.sum())

    def pick(self, rng: np.random.Generator):
        if len(self.options) == 1:
            return self.options[0]
        return self.options[int(rng.choice(len(self.options), p=self.weights))]


@dataclasses.dataclass(frozen=True)
class CharSet:
    """A pattern set: groups of items picked by weight, then one item uniformly in the group."""

    groups: tuple  # tuple of tuples of strings (the items)
    weights: np.ndarray

    @staticmethod
    def of(value: Any, what: str) -> "CharSet":
        if isinstance(value, str):
            groups, w = (tuple(value),), [1.0]
        elif isinstance(value, list):
            groups, w = (tuple(str(v) for v in value),), [1.0]
        elif isinstance(value, dict):
            groups = tuple(tuple(str(k)) for k in value)
            w = [float(v) for v in value.values()]
        else:
            raise SynthConfigError(f"{what}: a set is a string, a list or a mapping, got {type(value).__name__}")
        if not groups or any(not g or "" in g for g in groups) or any(x < 0 for x in w) or sum(w) <= 0:
            raise SynthConfigError(f"{what}: empty set or no positive weight ({value!r})")
        w = np.asarray(w, np.float64)
        return CharSet(groups, w / w.sum())

    def pick(self, rng: np.random.Generator) -> str:
        g = self.groups[0] if len(self.groups) == 1 else self.groups[int(rng.choice(len(self.groups), p=self.weights))]
        return g[int(rng.integers(len(g)))]

    def regex(self) -> str:
        items = sorted({i for g in self.groups for i in g}, key=len, reverse=True)
        return "(?:" + "|".join(re.escape(i) for i in items) + ")"


@dataclasses.dataclass(frozen=True)
class Pattern:
    """A parsed pattern: tokens are CharSets or None (a group boundary)."""

    source: str
    tokens: tuple
    regex: re.Pattern  # one capturing group per text group; used to lay out any text

    def generate(self, rng: np.random.Generator) -> str:
        return "".join(t.pick(rng) for t in self.tokens if t is not None)

    def groups_of(self, text: str) -> list | None:
        """Lengths of the groups of ``text`` if this pattern can produce it, else None."""
        m = self.regex.fullmatch(text)
        return None if m is None else [len(g) for g in m.groups()]


def parse_pattern(source: str, sets: dict, what: str) -> Pattern:
    tokens, i = [], 0
    while i < len(source):
        c = source[i]
        if c == "|":
            tokens.append(None)
        elif c == "[":
            j = source.find("]", i)
            if j < 0 or j == i + 1:
                raise SynthConfigError(f"{what}: unclosed or empty '[' in pattern {source!r}")
            tokens.append(CharSet.of(source[i + 1:j], what))
            i = j
        elif "A" <= c <= "Z":
            if c not in sets:
                raise SynthConfigError(f"{what}: pattern {source!r} uses set '{c}', which is not defined "
                                       f"(sets: {sorted(sets)})")
            tokens.append(sets[c])
        elif not c.isspace():
            tokens.append(CharSet.of(c, what))
        i += 1
    groups, cur = [], []
    for t in tokens + [None]:
        if t is None:
            if cur:
                groups.append("(" + "".join(cur) + ")")
            cur = []
        else:
            cur.append(t.regex())
    if not groups:
        raise SynthConfigError(f"{what}: pattern {source!r} produces no characters")
    return Pattern(source, tuple(tokens), re.compile("".join(groups)))


# ---- styles -----------------------------------------------------------------------------------
def _hex(c: str, what: str) -> tuple:
    if not isinstance(c, str) or not (_HEX.match(c) or c in ("fg", "bg")):
        raise SynthConfigError(f"{what}: colour must be '#rrggbb', 'fg' or 'bg', got {c!r}")
    return c if c in ("fg", "bg") else tuple(int(c[k:k + 2], 16) for k in (1, 3, 5))


def _colors(value, what: str) -> Choice:
    c = Choice.of(value, what)
    return Choice(tuple(_hex(x, what) for x in c.options), c.weights)


def _box(value, n: int, what: str) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != n or not all(isinstance(v, (int, float)) for v in value):
        raise SynthConfigError(f"{what}: expected a list of {n} numbers, got {value!r}")
    return tuple(float(v) for v in value)


@dataclasses.dataclass(frozen=True)
class Mark:
    shape: str
    geom: tuple
    color: Choice | None
    colors: tuple  # stripes only
    width: float
    p: float
    texts: Choice | None
    font: str | None


def _mark(d: dict, what: str) -> Mark:
    if not isinstance(d, dict):
        raise SynthConfigError(f"{what}: a mark is a mapping, got {d!r}")
    unknown = sorted(set(d) - _MARK_KEYS)
    shapes = [k for k in SHAPES if k in d]
    if unknown or len(shapes) != 1:
        raise SynthConfigError(f"{what}: a mark needs exactly one of {SHAPES} and only keys {sorted(_MARK_KEYS)}; "
                               f"got {sorted(d)}")
    shape = shapes[0]
    geom = _box(d[shape], 3 if shape in ("circle", "ring") else 4, f"{what}.{shape}")
    colors = tuple(_hex(c, f"{what}.colors") for c in d.get("colors", ()))
    if shape == "stripes" and not colors:
        raise SynthConfigError(f"{what}: stripes need 'colors'")
    if shape == "text" and "texts" not in d:
        raise SynthConfigError(f"{what}: a text mark needs 'texts'")
    font = d.get("font")
    if font is not None and font not in glyphs.FONTS:
        raise SynthConfigError(f"{what}: unknown font {font!r}; bundled: {sorted(glyphs.FONTS)}")
    return Mark(shape, geom, _colors(d["color"], f"{what}.color") if "color" in d else None, colors,
                float(d.get("width", 1.0)), float(d.get("p", 1.0)),
                Choice.of(d["texts"], f"{what}.texts") if "texts" in d else None, font)


@dataclasses.dataclass(frozen=True)
class Style:
    name: str
    weight: float
    patterns: Choice  # of Pattern
    size_mm: tuple
    text_box_mm: tuple
    char_mm: tuple
    gap_mm: float
    sep_mm: float
    sep: Choice
    fonts: Choice
    thin: tuple
    bg: Choice
    bg2: Choice | None
    gradient: str
    split_mm: float
    fg: Choice
    accent_chars: str
    accent: tuple | None
    jitter: float
    corner_mm: float
    marks: tuple
    plain_one: float = 0.0
    plate_shapes: float = 0.0
    plate_shapes_chars: str = glyphs.PLATE_SHAPES_DEFAULT
    letter_o: bool = True  # the format's alphabet has the letter O (else a font's dotted 0 is drawn as its O)
    first_box: tuple | None = None  # two_row / lead: (chars, box_mm (4,), char_mm (2,), gap_mm)
    cjk_fonts: Choice = Choice(("cjk",), np.ones(1))  # fonts of the ideographs
    cjk_warp: float = 0.0  # std of the ideographs' random smooth displacement, in glyph heights (glyphs.warped)


def _plate_shapes_chars(v, what: str) -> str:
    """``plate_shapes_chars`` of a style: a string of characters that have a plate shape."""
    if not isinstance(v, str) or not v or set(v) - set(glyphs.PLATE_SHAPES):
        raise SynthConfigError(f"{what}.plate_shapes_chars: expected a string of characters from "
                               f"'{glyphs.PLATE_SHAPES}', got {v!r}")
    return v


def _first_box(d: dict, what: str):
    """``two_row`` or ``lead`` of a style: (chars, box_mm (4,), char_mm (2,), gap_mm) or None."""
    given = [k for k in ("two_row", "lead") if d.get(k) is not None]
    if not given:
        return None
    if len(given) > 1:
        raise SynthConfigError(f"{what}: give two_row or lead, not both")
    key = given[0]
    pre = "top_" if key == "two_row" else ""
    v, what = d[key], f"{what}.{key}"
    need = {pre + "chars", pre + "box_mm", pre + "char_mm"}
    if not isinstance(v, dict) or not need <= set(v) or set(v) - need - {pre + "gap_mm"}:
        raise SynthConfigError(f"{what}: needs {pre}chars, {pre}box_mm, {pre}char_mm (and optionally {pre}gap_mm)")
    n = v[pre + "chars"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise SynthConfigError(f"{what}.{pre}chars: a positive integer, got {n!r}")
    char = _box(v[pre + "char_mm"], 2, f"{what}.{pre}char_mm")
    return (n, _box(v[pre + "box_mm"], 4, f"{what}.{pre}box_mm"), char,
            float(v.get(pre + "gap_mm", 0.15 * char[0])))


def _merged(styles: dict, name: str, seen: tuple = ()) -> dict:
    """Style ``name`` with its ``base`` chain applied (child keys win)."""
    if name in seen:
        raise SynthConfigError(f"synth.styles: 'base' cycle {' -> '.join(seen + (name,))}")
    if name not in styles:
        raise SynthConfigError(f"synth.styles: unknown base style '{name}'")
    d = styles[name]
    if not isinstance(d, dict):
        raise SynthConfigError(f"synth.styles.{name}: must be a mapping")
    unknown = sorted(set(d) - _STYLE_KEYS)
    if unknown:
        raise SynthConfigError(f"synth.styles.{name}: unknown key(s) {unknown}; allowed: {sorted(_STYLE_KEYS)}")
    if "base" not in d:
        return dict(d)
    out = _merged(styles, d["base"], seen + (name,))
    out.pop("weight", None)
    out.update({k: v for k, v in d.items() if k != "base"})
    return out


def _fonts(value, what: str) -> Choice:
    """A choice of bundled font names (``fonts``, ``cjk_fonts``); an unknown name is refused."""
    c = Choice.of(value, what)
    if any(f not in glyphs.FONTS for f in c.options):
        raise SynthConfigError(f"{what}: unknown font in {c.options}; bundled: {sorted(glyphs.FONTS)}")
    return c


def _style(name: str, d: dict, sets: dict) -> Style:
    what = f"synth.styles.{name}"
    for k in ("patterns", "size_mm"):
        if k not in d:
            raise SynthConfigError(f"{what}: missing '{k}'")
    pats = Choice.of(d["patterns"], f"{what}.patterns")
    pats = Choice(tuple(parse_pattern(p, sets, f"{what}.patterns") for p in pats.options), pats.weights)
    w, h = _box(d["size_mm"], 2, f"{what}.size_mm")
    box = _box(d.get("text_box_mm", [0.04 * w, 0.12 * h, 0.96 * w, 0.88 * h]), 4, f"{what}.text_box_mm")
    box_h = box[3] - box[1]
    char = _box(d.get("char_mm", [0.5 * box_h, 0.7 * box_h]), 2, f"{what}.char_mm")
    gap = float(d.get("gap_mm", 0.15 * char[0]))
    sep = Choice.of(d.get("sep", "none"), f"{what}.sep")
    if any(s not in SEPARATORS for s in sep.options):
        raise SynthConfigError(f"{what}.sep: each separator must be one of {SEPARATORS}, got {sep.options}")
    fonts, cjk_fonts = (_fonts(d.get(key, "cjk"), f"{what}.{key}") for key in ("fonts", "cjk_fonts"))
    gradient = d.get("gradient", "vertical")
    if gradient not in GRADIENTS:
        raise SynthConfigError(f"{what}.gradient: one of {GRADIENTS}, got {gradient!r}")
    accent = d.get("accent") or {}
    if accent and (set(accent) != {"chars", "color"} or not isinstance(accent["chars"], str)):
        raise SynthConfigError(f"{what}.accent: needs exactly 'chars' (a string) and 'color'")
    marks = d.get("marks", [])
    if not isinstance(marks, list):
        raise SynthConfigError(f"{what}.marks: must be a list")
    return Style(
        name=name, weight=float(d.get("weight", 1.0)), patterns=pats, size_mm=(w, h), text_box_mm=box,
        char_mm=char, gap_mm=gap, sep_mm=float(d.get("sep_mm", 2 * gap)), sep=sep, fonts=fonts,
        thin=_box(d.get("thin", [0, 0]), 2, f"{what}.thin"),
        bg=_colors(d.get("bg", "#ffffff"), f"{what}.bg"),
        bg2=_colors(d["bg2"], f"{what}.bg2") if "bg2" in d else None,
        gradient=gradient, split_mm=float(d.get("split_mm", w / 2)),
        fg=_colors(d.get("fg", "#101010"), f"{what}.fg"),
        accent_chars=accent.get("chars", ""),
        accent=_hex(accent["color"], f"{what}.accent.color") if accent else None,
        jitter=float(d.get("jitter", 0.06)), corner_mm=float(d.get("corner_mm", 8.0)),
        marks=tuple(_mark(m, f"{what}.marks[{i}]") for i, m in enumerate(marks)),
        plain_one=float(d.get("plain_one", 0.0)),
        plate_shapes=float(d.get("plate_shapes", 0.0)),
        plate_shapes_chars=_plate_shapes_chars(d.get("plate_shapes_chars", glyphs.PLATE_SHAPES_DEFAULT), what),
        first_box=_first_box(d, what), cjk_fonts=cjk_fonts,
        cjk_warp=_cjk_warp(d.get("cjk_warp", 0.0), what),
    )


def _cjk_warp(v, what: str) -> float:
    """``cjk_warp`` of a style: a number in [0, 0.15] (0 = the faces as they are)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise SynthConfigError(f"{what}.cjk_warp: expected a number in [0, 0.15], got {v!r}") from None
    if not 0.0 <= v <= 0.15:
        raise SynthConfigError(f"{what}.cjk_warp: expected a number in [0, 0.15] (a fraction of the glyph height; "
                               f"0.03 moves the parts of an ideograph by about a pixel at 24 px), got {v}")
    return v


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    """The parsed ``synth:`` section of one plate format."""

    styles: dict  # name -> Style, in YAML order
    style_choice: Choice  # of style names
    degrade: DegradeConfig

    def style(self, name: str) -> Style:
        if name not in self.styles:
            raise SynthConfigError(f"unknown synth style '{name}'; styles: {list(self.styles)}")
        return self.styles[name]


def build_spec(fmt: PlateFormat) -> SynthSpec:
    """Parse and validate ``fmt.synth``; raises SynthConfigError with the offending key."""
    s = fmt.synth
    if not s:
        raise SynthConfigError(f"plate format '{fmt.name}' has no 'synth:' section; add one "
                               f"(schema: lprnet_tf/synth/spec.py)")
    unknown = sorted(set(s) - {"sets", "styles", "degrade"})
    if unknown:
        raise SynthConfigError(f"{fmt.name}: unknown synth key(s) {unknown}; allowed: degrade, sets, styles")
    digits = "".join(c for c in fmt.alphabet if c.isdigit())
    letters = "".join(c for c in fmt.alphabet if "A" <= c <= "Z")
    sets = {k: CharSet.of(v, f"synth.sets.{k}") for k, v in (("D", digits), ("L", letters), ("X", digits + letters)) if v}
    for k, v in (s.get("sets") or {}).items():
        if not (isinstance(k, str) and len(k) == 1 and "A" <= k <= "Z"):
            raise SynthConfigError(f"{fmt.name}: set names are single capital letters, got {k!r}")
        sets[k] = CharSet.of(v, f"synth.sets.{k}")
    raw = s.get("styles")
    if not isinstance(raw, dict) or not raw:
        raise SynthConfigError(f"{fmt.name}: synth.styles must be a non-empty mapping")
    styles = {name: dataclasses.replace(_style(name, _merged(raw, name), sets), letter_o="O" in fmt.alphabet)
              for name in raw}
    overrides = s.get("degrade") or {}
    if not isinstance(overrides, dict):
        raise SynthConfigError(f"{fmt.name}: synth.degrade must be a mapping")
    try:
        degrade = degrade_config(overrides)
    except ValueError as e:
        raise SynthConfigError(f"{fmt.name}: {e}") from None
    return SynthSpec(styles, Choice.of({n: st.weight for n, st in styles.items()}, "synth.styles weights"), degrade)


_SPECS: dict = {}  # id(fmt) -> (fmt, SynthSpec); holding fmt keeps its id from being reused


def synth_spec(fmt: PlateFormat) -> SynthSpec:
    """The cached SynthSpec of ``fmt`` (parsed on first use)."""
    hit = _SPECS.get(id(fmt))
    if hit is None or hit[0] is not fmt:
        hit = _SPECS[id(fmt)] = (fmt, build_spec(fmt))
    return hit[1]
