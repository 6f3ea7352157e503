"""Convert any layout the readers understand into the native one: ``OUT/images/`` + ``OUT/labels.csv``.

Sources: a CCPD folder (the plate is cut out of each photo at the box in its file name), an
OpenVINO-style list (``path LABEL`` per line), a folder with the label in the file name
(``皖A12345_2.jpg``) or another labels.csv (its images are gathered into one folder). Labels are
read and checked by :func:`lprnet_tf.data.readers.read_samples` for the plate format (normalized;
characters outside the alphabet and over-long labels stop the run, or are skipped and listed in
``OUT/skipped.csv`` with ``skip_bad``); template matches are left to ``lprnet-data validate``.

Images: a crop is encoded as JPEG (or PNG for PNG sources); an image without a box is copied
byte for byte after checking that it decodes. ``labels.csv`` has ``path,text``, ``split`` and
``group`` when the source has them (or ``split`` is given), ``source_file`` (the original file,
relative to the source), ``box`` (``x1 y1 x2 y2``, CCPD only) and the source CSV's other columns.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import cv2

from lprnet_tf.config import UsageError
from lprnet_tf.data.readers import DataError, detect_layout, load_image, read_samples
from lprnet_tf.datatools.common import rel_path, write_csv
from lprnet_tf.progress import Progress
from lprnet_tf.vocab import PlateFormat

WRITTEN = ("images", "labels.csv", "skipped.csv")  # what convert owns inside --out


@dataclasses.dataclass
class ConvertResult:
    labels: str
    written: int
    cropped: int
    copied: int
    skipped: list  # (where, reason)
    skipped_csv: str = ""


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def prepare_out(out: str, overwrite: bool, source_paths: list) -> None:
    """Refuse a non-empty ``out`` unless ``overwrite``; with it remove only what convert writes
    (``images/``, ``labels.csv``, ``skipped.csv``), and never when the source lives in there."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is a file; give a folder for images/ and labels.csv")
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise UsageError(f"--out {out} exists and is not empty; choose a new folder or pass --overwrite "
                             f"(which replaces its images/, labels.csv and skipped.csv)")
        for p in source_paths:
            if _inside(p, os.path.join(out, "images")) or _inside(p, os.path.join(out, "labels.csv")):
                raise UsageError(f"--out {out}: the source images are in there ({p}); --overwrite would delete "
                                 f"them. Choose another --out")
        for name in WRITTEN:
            p = os.path.join(out, name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)
    try:
        os.makedirs(os.path.join(out, "images"), exist_ok=True)
    except OSError as e:
        raise DataError(f"--out {out}: cannot create the folder ({e.strerror}); choose another --out") from None


def convert(source: str, out: str, fmt: PlateFormat, layout: str = "auto", skip_bad: bool = False,
            overwrite: bool = False, split: str = "", jpeg_quality: int = 95, progress: bool = True) -> ConvertResult:
    """Write ``source`` as ``out/images/NNNNN.ext`` + ``out/labels.csv``; see the module docstring."""
    if not 1 <= jpeg_quality <= 100:
        raise UsageError(f"--jpeg_quality must be in 1..100, got {jpeg_quality}")
    src, layout = detect_layout(source, layout)
    samples, report = read_samples(src, fmt, skip_bad=skip_bad, verify_images=False, layout=layout)
    root = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    prepare_out(out, overwrite, [s.path for s in samples])
    skipped = list(report.skipped)
    rows, cropped, copied = [], 0, 0
    digits = max(5, len(str(len(samples))))
    extra_cols: list = []
    bar = Progress(len(samples), "lprnet-data convert", "img", enabled=progress)
    for s in samples:
        bar.update(1)
        try:
            img = load_image(s.path, s.box)
        except DataError as e:
            if not skip_bad:
                raise DataError(f"{s.where}: {e} (or pass --skip_bad to leave such rows out)") from None
            skipped.append((s.where, str(e)))
            continue
        ext = os.path.splitext(s.path)[1].lower()
        name = f"images/{len(rows) + 1:0{digits}d}"
        if s.box is not None:
            ext = ".png" if ext == ".png" else ".jpg"
            params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext == ".jpg" else []
            ok, buf = cv2.imencode(ext, img[..., ::-1], params)
            if not ok:
                raise DataError(f"{s.where}: could not encode the crop as {ext}")
            buf.tofile(os.path.join(out, name + ext))
            cropped += 1
        else:
            shutil.copyfile(s.path, os.path.join(out, name + ext))
            copied += 1
        row = {"path": name + ext, "text": s.text, "split": s.split or split, "group": s.group,
               "source_file": rel_path(s.path, root),
               "box": " ".join(str(int(v)) for v in s.box) if s.box is not None else ""}
        for k, v in s.extra.items():
            if k not in row:
                row[k] = v
                if k not in extra_cols:
                    extra_cols.append(k)
        rows.append(row)
    bar.close()
    if not rows:
        raise DataError(f"{source}: no image could be converted ({len(skipped)} skipped; first: "
                        f"{skipped[0][0]}: {skipped[0][1]})" if skipped else f"{source}: nothing to convert")
    cols = ["path", "text"]
    cols += [c for c in ("split", "group") if any(r[c] for r in rows)]
    cols += ["source_file"] + (["box"] if cropped else []) + extra_cols
    labels = write_csv(os.path.join(out, "labels.csv"), cols, rows)
    skipped_csv = ""
    if skipped:
        skipped_csv = write_csv(os.path.join(out, "skipped.csv"), ["row", "reason"],
                                [{"row": w, "reason": r} for w, r in skipped])
    return ConvertResult(labels, len(rows), cropped, copied, skipped, skipped_csv)
