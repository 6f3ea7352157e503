"""Regenerate the font subsets bundled in ``lprnet_tf/synth/fonts/``.

The synthetic plate renderer and the contact sheets draw text with two small font subsets:

* ``NotoSansCJKsc-Bold.subset.otf``: Noto Sans CJK SC Bold (SIL OFL 1.1), face 2 ("SC") of
  Debian's ``fonts-noto-cjk`` ``NotoSansCJK-Bold.ttc``, cut to every character of every
  plate alphabet in ``configs/plates/*.yaml``, printable ASCII (contact-sheet labels) and a few
  separators (``·`` and dashes).
* ``NotoSansCJKsc-Black.subset.otf`` and ``NotoSansCJKsc-Medium.subset.otf``: the same characters from
  the Black and Medium weights (``fonts-noto-cjk-extra``), for a plate style's ``cjk_fonts`` (the faces
  its ideographs are drawn with; tried for Chinese plates and not kept, see ``fonts/README.md``).
* ``DejaVuSansCondensed-Bold.subset.ttf``: DejaVu Sans Condensed Bold (Bitstream Vera licence,
  DejaVu changes public domain) from Debian's ``fonts-dejavu-core``, cut to printable ASCII and
  ``·``: a second, condensed Latin face for Latin plates.
* ``DejaVuSansMono-Bold.subset.ttf`` and ``DejaVuSansMono.subset.ttf``: DejaVu Sans Mono Bold and
  Book (same licence and package), cut the same way: narrow equal-width faces, the Book one with
  light strokes, closer to the Chinese plate font (thin strokes, a C with a narrow mouth, an M
  whose middle strokes stop half way) than the two bold faces.

Run from the repository root (needs ``fonttools``: ``pip install fonttools``)::

    python datasets/make_font_subset.py [--only noto,noto_black,noto_medium,dejavu,mono,mono_book] \
        [--noto_dir /usr/share/fonts/opentype/noto] \
        [--dejavu_dir /usr/share/fonts/truetype/dejavu]

It prints the equivalent ``pyftsubset`` command lines and the sizes of the files it wrote.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import sys

import yaml
from fontTools import subset
from fontTools.ttLib import TTCollection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FONT_DIR = os.path.join("lprnet_tf", "synth", "fonts")
NOTO = {  # name -> (Debian fonts-noto-cjk / fonts-noto-cjk-extra collection, subset written)
    "noto": ("NotoSansCJK-Bold.ttc", "NotoSansCJKsc-Bold.subset.otf"),
    "noto_black": ("NotoSansCJK-Black.ttc", "NotoSansCJKsc-Black.subset.otf"),
    "noto_medium": ("NotoSansCJK-Medium.ttc", "NotoSansCJKsc-Medium.subset.otf"),
}
DEJAVU = {  # name -> (Debian fonts-dejavu-core file, subset written)
    "dejavu": ("DejaVuSansCondensed-Bold.ttf", "DejaVuSansCondensed-Bold.subset.ttf"),
    "mono": ("DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Bold.subset.ttf"),
    "mono_book": ("DejaVuSansMono.ttf", "DejaVuSansMono.subset.ttf"),
}
NOTO_SC_INDEX = 2  # face order in each NotoSansCJK-*.ttc: JP, KR, SC, TC, HK, then the Mono faces
# Separators drawn between plate groups and used in labels, beyond printable ASCII.
EXTRA = "\u00b7\u2022\u2013\u2014"  # middle dot, bullet, en dash, em dash
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
# Keep every name record: the copyright (0), licence (13) and licence URL (14) travel with the file.
# No OpenType layout features (the renderer places glyphs one by one) and no hinting.
OPTIONS = ["--name-IDs=*", "--name-languages=*", "--layout-features=", "--notdef-outline", "--no-hinting"]


def plate_characters() -> str:
    """Every character of every plate alphabet shipped in configs/plates, sorted."""
    chars = set()
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "plates", "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            chars.update(yaml.safe_load(f)["alphabet"])
    return "".join(sorted(chars))


def _unicodes(text: str) -> str:
    """pyftsubset's --unicodes value for ``text``: sorted code points, runs written as ranges."""
    runs = []
    for cp in sorted({ord(c) for c in text}):
        if runs and cp == runs[-1][1] + 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    return ",".join(f"{a:04X}" if a == b else f"{a:04X}-{b:04X}" for a, b in runs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join([*NOTO, *DEJAVU]),
                    help="comma-separated subsets to write: any of " + ", ".join([*NOTO, *DEJAVU]))
    ap.add_argument("--noto_dir", default="/usr/share/fonts/opentype/noto",
                    help="folder of the Noto Sans CJK collections (.ttc) from fonts-noto-cjk and fonts-noto-cjk-extra")
    ap.add_argument("--dejavu_dir", default="/usr/share/fonts/truetype/dejavu",
                    help="folder of the DejaVu fonts from fonts-dejavu-core")
    args = ap.parse_args(argv)
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in only if n not in NOTO and n not in DEJAVU]
    if unknown:
        sys.exit(f"--only: unknown subset(s) {unknown}; choose from {', '.join([*NOTO, *DEJAVU])}")
    os.chdir(ROOT)
    os.makedirs(FONT_DIR, exist_ok=True)

    jobs = []
    for name, (src, out) in NOTO.items():
        if name not in only:
            continue
        src = os.path.join(args.noto_dir, src)
        if not os.path.isfile(src):
            sys.exit(f"font file not found: {src} (install fonts-noto-cjk and fonts-noto-cjk-extra or pass --noto_dir)")
        face_name = TTCollection(src, lazy=True).fonts[NOTO_SC_INDEX]["name"].getDebugName(4)
        if "CJK SC" not in face_name:
            sys.exit(f"face {NOTO_SC_INDEX} of {src} is {face_name!r}, not Noto Sans CJK SC")
        jobs.append([src, f"--font-number={NOTO_SC_INDEX}",
                     f"--unicodes={_unicodes(plate_characters() + ASCII + EXTRA)}", *OPTIONS,
                     f"--output-file={os.path.join(FONT_DIR, out)}"])
    for name, (src, out) in DEJAVU.items():
        if name in only:
            jobs.append([os.path.join(args.dejavu_dir, src), f"--unicodes={_unicodes(ASCII + EXTRA[0])}", *OPTIONS,
                         f"--output-file={os.path.join(FONT_DIR, out)}"])
    for job in jobs:
        if not os.path.isfile(job[0]):
            sys.exit(f"font file not found: {job[0]} (install the Debian package or pass its path)")
        print("pyftsubset " + shlex.join(job))
        subset.main(job)
        path = job[-1].split("=", 1)[1]
        print(f"{path}: {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
