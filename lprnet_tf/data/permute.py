"""Character-permutation augmentation, ``papers/multitask-lowres-lpr.md`` §2.2 (after Gonçalves et al.,
SIBGRAPI 2018): new training plates made by changing the order of a plate's characters, which
"helps the network to create an association of the character position with the correspondent task".

- **Which orders**: characters move only among positions of the same class (digits among digit
  positions, Latin letters among letter positions; anything else, e.g. a Chinese province or a
  ``警`` suffix, stays put), and the new text must still match one of the format's templates, so a
  permuted plate is a plausible plate of the format (``AXK3125`` -> ``KAX2351``). A text with no other
  valid order (``AAA1111``) is left as it is.
- **Synthetic plates** are re-rendered with the permuted text (:func:`rerender`): the image is a
  clean rendering of its label, with fresh style and degradation.
- **Real crops** are cut into character strips at a known layout and the strips are moved
  (:func:`permute_crop`). The layout is the format's own plate geometry (:func:`char_layout`: the
  ``synth:`` style whose pattern produces the text -- text box, character width, gaps, separator
  space -- the renderer's layout without its random jitter), placed on the crop by a small search over
  scale and offset that puts the most "ink" inside the character boxes and the least in the gaps
  between them (:func:`fit_layout`), since real crops have margins. Each strip is the full crop
  height; gaps and separators stay where they are. Crops whose fit is poor (``MIN_FIT``), two-row
  formats, styles with a ``lead`` box (the Uzbek region code: boxes of two sizes) and formats without a
  ``synth:`` section are left unpermuted. Checked with the shipped
  recognizers on the first 244 crops of the CN and BR validation sets: of the crops the model reads
  right unpermuted and that were permuted, the CN model reads the new label on 76 % (the misses are
  mostly tilted plates). The BR model's figure is lower (59 %) for a reason that is the point of the
  augmentation: it was fine-tuned on the 900 real BR training crops, 72 % of which start with ``A``,
  and reads a permuted ``T``, ``N`` or ``S`` in first place as ``I``, ``H`` or ``E`` even where the cut is
  clean (checked by eye).

:func:`maybe_permute` is what the pipeline calls (``data.permute`` of an experiment: the probability
that a training sample is replaced by a permuted one); the decision and the permutation depend only
on (seed, global sample index), so resumed runs see the same data.
"""

from __future__ import annotations

import cv2
import numpy as np

from lprnet_tf.vocab import PlateFormat

_SALT = 0x5045524D  # "PERM": keeps these draws apart from the other per-sample generators
_TRIES = 8
# Smallest layout fit (:func:`fit_layout`) at which a real crop is cut; below it the crop is used as it
# is. About 15 % of the real CN and BR crops fall below (night, washed-out and strongly tilted ones).
MIN_FIT = 0.2


def _char_class(c: str) -> str | None:
    if "0" <= c <= "9":
        return "digit"
    if "A" <= c <= "Z":
        return "letter"
    return None  # stays in place


def permute_text(text: str, fmt: PlateFormat, rng: np.random.Generator) -> tuple[str, list[int]] | None:
    """A new order of ``text`` -> ``(new_text, perm)`` with ``new_text[k] == text[perm[k]]``, or None when
    no other template-valid order turned up in a few tries."""
    groups: dict[str, list[int]] = {}
    for k, c in enumerate(text):
        cls = _char_class(c)
        if cls is not None:
            groups.setdefault(cls, []).append(k)
    movable = [pos for pos in groups.values() if len(pos) > 1]
    if not movable:
        return None
    for _ in range(_TRIES):
        perm = list(range(len(text)))
        for pos in movable:
            for k, src in zip(pos, rng.permutation(pos)):
                perm[k] = int(src)
        new = "".join(text[i] for i in perm)
        if new != text and fmt.matches_template(new):
            return new, perm
    return None


def char_layout(fmt: PlateFormat, text: str) -> np.ndarray | None:
    """``(n, 2)`` horizontal extents ``[x0, x1)`` of the characters of ``text`` as fractions of the plate
    width, from the format's synth geometry (see the module docstring); None for two-row plates, for a
    format without a ``synth:`` section, or when no style's pattern produces ``text``."""
    from lprnet_tf.synth.spec import SynthConfigError, synth_spec

    if fmt.rows != 1:
        return None
    try:
        spec = synth_spec(fmt)
    except SynthConfigError:
        return None
    best = None
    for st in spec.styles.values():  # the heaviest style whose pattern produces the text
        for p in st.patterns.options:
            groups = p.groups_of(text)
            if groups and (best is None or st.weight > best[0].weight):
                best = (st, groups)
    if best is None or best[0].first_box is not None:  # no single row of equal boxes
        return None
    st, groups = best
    bx0, _, bx1, _ = st.text_box_mm
    n = len(text)
    cw, gap, sep = float(st.char_mm[0]), float(st.gap_mm), float(st.sep_mm)
    total = n * cw + (n - len(groups)) * gap + (len(groups) - 1) * sep  # as lprnet_tf.synth.render._draw_row
    squeeze = min(1.0, (bx1 - bx0) / total)
    cw, gap, sep = cw * squeeze, gap * squeeze, sep * squeeze
    x = bx0 + ((bx1 - bx0) - total * squeeze) / 2
    boxes = []
    for gi, glen in enumerate(groups):
        for k in range(glen):
            boxes.append((x, x + cw))
            x += cw + (gap if k < glen - 1 else 0.0)
        if gi < len(groups) - 1:
            x += sep
    return np.asarray(boxes, np.float64) / float(st.size_mm[0])


def ink_profile(image: np.ndarray) -> np.ndarray:
    """Share of "ink" pixels per column of the crop's middle rows ``(W,)``: the Otsu threshold of the grey
    image splits dark from light and the less frequent side is taken as the characters, which works
    for dark-on-light and light-on-dark plates alike (taking the better-fitting polarity instead was
    measured worse: frames and bolts then fit too)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h = grey.shape[0]
    band = grey[int(0.2 * h):max(int(0.9 * h), int(0.2 * h) + 1)]
    _, mask = cv2.threshold(band, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if mask.mean() > 0.5:
        mask = 1 - mask
    return mask.mean(axis=0).astype(np.float64)


def fit_layout(layout: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, float]:
    """Character columns ``(n, 2)`` (pixels) of ``layout`` (plate-width fractions) placed on ``image``,
    and the placement's score.

    Real crops show the plate with some margin and offset, so the nominal layout is scaled and shifted
    (``x -> left + scale * (x - x_first)``, the text span 0.55..1.2 of its nominal share of the width)
    to the placement whose character boxes hold the most ink relative to the gaps between them
    (:func:`ink_profile`); the score is that difference of mean ink (about 0.2-0.5 on clear crops).
    """
    w = image.shape[1]
    first, last = layout[0, 0], layout[-1, 1]
    scale = np.linspace(0.55, 1.2, 40)[:, None]  # (S, 1)
    left = -0.05 + np.linspace(0.0, 1.0, 60)[None, :] * (1.1 - (last - first) * scale)  # (S, L)
    rel = (layout - first)[None, None]  # (1, 1, n, 2)
    xs = np.rint((left[..., None, None] + rel * scale[..., None, None]) * w).astype(int).reshape(-1, len(layout), 2)
    ok = (xs[:, 0, 0] >= 0) & (xs[:, -1, 1] <= w) & np.all(xs[:, :, 1] > xs[:, :, 0], axis=1)
    if not ok.any():  # crop too narrow for any placement: the nominal layout
        return np.clip(np.rint(layout * w).astype(int), 0, w), 0.0
    xs = xs[ok]  # (P, n, 2)
    csum = np.concatenate([[0.0], np.cumsum(ink_profile(image))])
    ink_in = (csum[xs[:, :, 1]] - csum[xs[:, :, 0]]).sum(1) / (xs[:, :, 1] - xs[:, :, 0]).sum(1)
    g0, g1 = xs[:, :-1, 1], np.maximum(xs[:, 1:, 0], xs[:, :-1, 1])  # (P, n-1) gaps, empty when boxes touch
    n_gap = (g1 - g0).sum(1)
    ink_gap = np.where(n_gap > 0, (csum[g1] - csum[g0]).sum(1) / np.maximum(n_gap, 1), 0.0)
    score = ink_in - ink_gap
    k = int(np.argmax(score))
    return xs[k], float(score[k])


def permute_crop(image: np.ndarray, text: str, fmt: PlateFormat, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A real crop with its character strips reordered -> ``(image, text)``; the input unchanged when the
    layout is unknown or no other valid order exists."""
    layout = char_layout(fmt, text)
    found = permute_text(text, fmt, rng) if layout is not None else None
    if found is None:
        return image, text
    new, perm = found
    h, w = image.shape[:2]
    xs, fit = fit_layout(layout, image)  # (n, 2) pixel columns
    if fit < MIN_FIT or np.any(xs[:, 1] - xs[:, 0] < 1):
        return image, text  # characters not found reliably (dark, washed-out or tilted crop) or too narrow
    out = image.copy()
    for k, src in enumerate(perm):
        if src == k:
            continue
        (a0, a1), (b0, b1) = xs[src], xs[k]
        strip = image[:, a0:a1]
        if a1 - a0 != b1 - b0:
            strip = cv2.resize(strip, (int(b1 - b0), h), interpolation=cv2.INTER_LINEAR)
        out[:, b0:b1] = strip
    return out, new


def rerender(fmt: PlateFormat, seed: int, index: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Synthetic sample ``index`` of run ``seed`` with its text permuted and rendered anew -> (image, text);
    the original sample when its text has no other valid order."""
    from lprnet_tf.synth import render

    text = render.sample_text(fmt, seed, index)
    found = permute_text(text, fmt, rng)
    if found is None:
        image, text, _ = render.sample(fmt, seed, index)
        return image, text
    image, _ = render.render_plate(fmt, found[0], rng)
    return image, found[0]


def permuted_sample(source, i: int, fmt: PlateFormat, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Sample ``i`` of ``source`` permuted: re-rendered for a synthetic source, strips moved otherwise."""
    from lprnet_tf.data.pipeline import MixedSource, SynthSource

    if isinstance(source, MixedSource):  # permute within the part the sample comes from
        source, i = source.locate(i)
    if isinstance(source, SynthSource):
        return rerender(fmt, source.seed, i, rng)
    image, text = source.get(i)
    return permute_crop(image, fmt.normalize(text), fmt, rng)


def maybe_permute(source, i: int, fmt: PlateFormat, p: float, seed: int, g: int) -> tuple[np.ndarray, str]:
    """Sample ``i`` of ``source`` (global index ``g`` of a run with ``seed``), permuted with probability ``p``."""
    rng = np.random.default_rng([int(seed), _SALT, int(g)])
    if rng.random() >= p:
        return source.get(i)
    return permuted_sample(source, i, fmt, rng)
