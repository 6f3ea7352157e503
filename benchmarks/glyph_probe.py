"""Glyph probe: what a recognizer reads for one character drawn in the bundled fonts' shape or in the plate shape.

  python benchmarks/glyph_probe.py [--model cn_lprnet_basic] [--format cn] [--chars 35W] [--count 200]

For each character of ``--chars`` it renders ``--count`` synthetic plates of ``--format`` (random texts of the
format with that character put at one place of the plate, after the first character, where the text holds a
character of the same kind, digit or letter), once with every style's ``plate_shapes`` set to 0 (the bundled
faces' glyphs) and once with it set to 1 (the plate shapes of ``plate_shapes_chars``,
``lprnet_tf.synth.glyphs.plate_shape``), and counts what the model reads at that place (greedy decode, plates
read at the right length). A plate shape the model misreads, where it reads the bundled faces' glyph, is a
shape it has not learnt; if real crops misread the character the same way, the shape is worth adding to the
renderer (how the W, 3 and 5 of the Chinese plate font were found, ``lprnet_tf/synth/fonts/README.md``).

With ``--faces cjk,cjk_medium,cjk_black`` the rows are the bundled faces that draw ideographs instead (every
style's ``cjk_fonts`` set to one face; the style's shapes as in the format): for a province character such
as ``--chars 皖``, put first on the plate, it tells whether the face's stroke weight changes what the model
reads. Writes a Markdown table to stdout and, with ``--out``, a JSON file.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def forced_texts(fmt, ch: str, count: int, seed: int) -> list[tuple[str, str, int]]:
    """``count`` (text, style, place) of ``fmt``: a random text with ``ch`` put at one place after the first
    character where the text holds a character of the same kind (digit or letter; for an ideograph, any place
    holding an ideograph, the first included) and the result is a valid plate of the format; texts with no
    such place are drawn again."""
    from lprnet_tf.synth.render import random_text

    rng = np.random.default_rng(seed)
    out, tries = [], 0
    while len(out) < count:
        tries += 1
        if tries > 50 * count:
            raise SystemExit(f"could not put {ch!r} into {count} valid {fmt.name} plates (its patterns and "
                             f"templates leave no place for it); pick another character")
        text, style = random_text(fmt, rng)
        if ch.isascii():
            places = [i for i in range(1, len(text)) if text[i].isdigit() == ch.isdigit() and text[i].isalnum()]
        else:
            places = [i for i in range(len(text)) if not text[i].isascii()]
        rng.shuffle(places)
        for i in places:
            t = text[:i] + ch + text[i + 1:]
            if fmt.check(t) is None and fmt.matches_template(t):
                out.append((t, style, i))
                break
    return out


def with_every_style(fmt, **keys):
    """``fmt`` with ``keys`` set in every synthetic style (``plate_shapes=1.0``: every style draws the plate
    shapes; ``cjk_fonts={"cjk_medium": 1}``: every style draws its ideographs in that face alone)."""
    from lprnet_tf.vocab import with_synth_update

    styles = fmt.to_dict()["synth"]["styles"]
    return with_synth_update(fmt, {"styles": {name: {**st, **keys} for name, st in styles.items()}})


def probe(model, fmt, ch: str, count: int, seed: int, modes=None) -> dict:
    """Reads of ``ch`` under each ``(mode, format)`` of ``modes`` (default: the bundled faces' shape, "font", and
    the plate shape, "plate"): {mode: Counter}."""
    from lprnet_tf.data.pipeline import ArraySource
    from lprnet_tf.decoding import decode
    from lprnet_tf.evaluation import predict_logits
    from lprnet_tf.synth.render import render_plate

    items = forced_texts(fmt, ch, count, seed)
    result = {}
    for mode, f in modes or (("font", with_every_style(fmt, plate_shapes=0.0)),
                             ("plate", with_every_style(fmt, plate_shapes=1.0))):
        images = [render_plate(f, t, np.random.default_rng([seed, k]), style)[0] for k, (t, style, _) in
                  enumerate(items)]
        plates = decode(predict_logits(model, ArraySource(images, [t for t, _, _ in items]), fmt), fmt, "greedy")[0]
        reads = collections.Counter()
        for (t, _, i), pred in zip(items, plates):
            reads[pred[i] if len(pred) == len(t) else "(length)"] += 1
        result[mode] = reads
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cn_lprnet_basic", help="shipped name, .keras file or run directory")
    ap.add_argument("--format", default="", help="plate format to render (default: the model's own)")
    ap.add_argument("--chars", default="35W", help="characters to probe")
    ap.add_argument("--count", type=int, default=200, help="plates per character and shape")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--faces", default="", help="comma-separated bundled faces for ideographs (e.g. "
                    "cjk,cjk_medium,cjk_black): one row per face instead of the font / plate shapes")
    ap.add_argument("--out", default="", help="also write the counts to this JSON file")
    a = ap.parse_args(argv)
    if a.count < 1:
        ap.error("--count must be >= 1")

    from lprnet_tf.modelio import load_for_inference
    from lprnet_tf.synth.spec import synth_spec
    from lprnet_tf.vocab import load_plate_format

    model, model_fmt, _ = load_for_inference(a.model)
    fmt = load_plate_format(a.format) if a.format else model_fmt
    if fmt.alphabet != model_fmt.alphabet:
        ap.error(f"--format {fmt.name}: its alphabet differs from the model's ({model_fmt.name})")
    bad = [c for c in a.chars if c not in fmt.alphabet]
    if bad:
        ap.error(f"--chars: {bad} not in the alphabet of {fmt.name}")
    modes = None
    if a.faces:
        from lprnet_tf.synth.glyphs import FONTS

        faces = [x.strip() for x in a.faces.split(",") if x.strip()]
        unknown = [x for x in faces if x not in FONTS]
        if unknown:
            ap.error(f"--faces: {unknown} are not bundled faces; choose from {sorted(FONTS)}")
        modes = [(face, with_every_style(fmt, cjk_fonts={face: 1})) for face in faces]
    chars = {st.plate_shapes_chars for st in synth_spec(fmt).styles.values()}
    print(f"model {a.model}; format {fmt.name} (plate shapes: {', '.join(sorted(chars))}); {a.count} plates per row\n")
    print(f"| char | {'face' if modes else 'shape'} | read right | most common other reads |")
    print("|---|---|---|---|")
    report = {}
    for ch in a.chars:
        res = probe(model, fmt, ch, a.count, a.seed, modes)
        report[ch] = {mode: dict(c) for mode, c in res.items()}
        for mode, c in res.items():
            others = ", ".join(f"{k} {v}" for k, v in c.most_common() if k != ch)[:80] or "-"
            print(f"| {ch} | {mode} | {c[ch]} / {sum(c.values())} | {others} |", flush=True)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump({"model": a.model, "format": fmt.name, "count": a.count, "seed": a.seed, "reads": report}, f,
                      indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
