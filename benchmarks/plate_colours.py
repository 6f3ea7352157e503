"""Plate colours: the luminance of characters and plate in real crops against synthetic plates of a format.

  python benchmarks/plate_colours.py [--real ../shared/data/cn_ccpd_like_1000] [--formats cn,VARIANT.yaml]
                                     [--count 600] [--out FILE.json]

A renderer probe needs image statistics chosen before any training: this measures, at the model's input size
(the format's H x W, as ``to_model_input`` lays a crop out), the white-on-blue plates of each set -- real crops
whose median pixel is blue (B - R > 40), synthetic plates drawn in the ``blue`` style
(``render.sample(..., style="blue")``, degraded as training renders them, no augmentation). In the text band
(rows 20-80 %, the crop right of its first 16 %, i.e. without the province) the *background* is the median
luminance (Y = 0.299 R + 0.587 G + 0.114 B), the *characters* are the pixels brighter than half way from the
background to the band's 98th percentile, and their mean luminance is the *text* figure. Per set: the medians
(and quartiles) over the crops of text, background, text - background (*contrast*), and the share of the band
the characters cover (*coverage*). Writes a Markdown table; ``--out`` a JSON file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

COLUMNS = ("text", "background", "contrast", "coverage")


def band_stats(image: np.ndarray) -> dict | None:
    """Text / background luminance of one uint8 RGB crop at the model's size (None: not a white-on-blue plate)."""
    rgb = image.astype(np.float32)
    med = np.median(rgb.reshape(-1, 3), axis=0)
    if med[2] - med[0] <= 40:  # not blue
        return None
    h, w = rgb.shape[:2]
    y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # BT.601 luminance, as the corruptions and quality scores take it
    band = y[int(0.2 * h):int(0.8 * h), int(0.16 * w):]
    bg, top = float(np.median(band)), float(np.percentile(band, 98))
    ink = band > (bg + top) / 2
    if not ink.any():
        return None
    text = float(band[ink].mean())
    return {"text": text, "background": bg, "contrast": text - bg, "coverage": float(ink.mean())}


def summarize(rows: list[dict]) -> dict:
    """Quartiles of each column over the crops (None for a set without white-on-blue crops)."""
    out = {"crops": len(rows)}
    for c in COLUMNS:
        out[c] = [float(np.percentile([r[c] for r in rows], q)) for q in (25, 50, 75)] if rows else None
    return out


def real_stats(path: str, fmt, count: int) -> dict:
    from lprnet_tf.data.pipeline import open_source, to_model_input

    src = open_source(path, fmt)
    rows = [band_stats(to_model_input(src.get(i)[0], fmt)) for i in range(min(count, len(src)))]
    return summarize([r for r in rows if r])


def synth_stats(fmt, count: int, seed: int) -> dict:
    from lprnet_tf.data.pipeline import to_model_input
    from lprnet_tf.synth import render

    rows = [band_stats(to_model_input(render.sample(fmt, seed, i, style="blue")[0], fmt)) for i in range(count)]
    return summarize([r for r in rows if r])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", default=os.path.join(REPO, "..", "shared", "data", "cn_ccpd_like_1000"),
                    help="a real set (labels.csv folder); '' to skip")
    ap.add_argument("--formats", default="cn", help="comma-separated plate formats or variant YAML files")
    ap.add_argument("--count", type=int, default=600, help="crops per set (real: the first COUNT rows)")
    ap.add_argument("--seed", type=int, default=424242, help="seed of the synthetic plates (not a training seed)")
    ap.add_argument("--out", default="", help="also write the figures to this JSON file")
    a = ap.parse_args(argv)
    if a.count < 1:
        ap.error("--count must be >= 1")
    from lprnet_tf.vocab import PlateFormatError, load_plate_format

    names = [f.strip() for f in a.formats.split(",") if f.strip()]
    if not names:
        ap.error("--formats: give at least one format")
    try:
        formats = [load_plate_format(n) for n in names]
    except PlateFormatError as e:
        ap.error(f"--formats: {e}")
    from lprnet_tf.synth.spec import synth_spec

    for name, fmt in zip(names, formats):
        if "blue" not in synth_spec(fmt).styles:
            ap.error(f"--formats: {name} has no synthetic 'blue' style (this measures white-on-blue plates: give cn "
                     "or a variant of it)")
    sets = []
    if a.real:
        if not os.path.isdir(a.real):
            ap.error(f"--real {a.real}: no such folder (give a labels.csv folder, or --real '' to skip)")
        from lprnet_tf.data.readers import DataError

        try:
            sets.append((os.path.basename(os.path.normpath(a.real)), real_stats(a.real, formats[0], a.count)))
        except DataError as e:
            ap.error(f"--real (read in the format {names[0]}): {e}")
    for name, fmt in zip(names, formats):
        sets.append((f"synthetic {name}", synth_stats(fmt, a.count, a.seed)))
    command = " ".join(["python benchmarks/plate_colours.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"`{command}`, {datetime.date.today()}: white-on-blue crops at the model's input size; median [quartiles] "
          "over the crops; luminance 0-255\n")
    print("| set | crops | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for label, s in sets:
        cells = ["-" if s[c] is None else f"{s[c][1]:.3f} [{s[c][0]:.3f}, {s[c][2]:.3f}]" if c == "coverage"
                 else f"{s[c][1]:.0f} [{s[c][0]:.0f}, {s[c][2]:.0f}]" for c in COLUMNS]
        print(f"| {label} | {s['crops']} | " + " | ".join(cells) + " |", flush=True)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump({"count": a.count, "seed": a.seed, "sets": dict(sets)}, f, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
