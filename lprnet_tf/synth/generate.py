"""Write a synthetic plate data set to disk, in the same layout as the real data sets.

``out_dir/images/00000.jpg ...`` (JPEG quality 95), ``out_dir/labels.csv`` with the columns
``path,text,split,style,degradation,params`` (``params``: compact JSON of everything
:func:`lprnet_tf.synth.render.render_plate` applied) and ``out_dir/contact_sheet.png`` showing
the first 64 samples. Sample ``i`` is :func:`lprnet_tf.synth.render.sample` ``(fmt, seed, i)``,
so a set is reproducible from its seed and any row can be regenerated alone.
"""

from __future__ import annotations

import csv
import json
import os

import cv2

from lprnet_tf.progress import Progress
from lprnet_tf.synth.contact import save_contact_sheet
from lprnet_tf.synth.render import sample
from lprnet_tf.vocab import PlateFormat, load_plate_format

COLUMNS = ("path", "text", "split", "style", "degradation", "params")
SHEET_COUNT = 64


def write_synthetic_set(fmt: PlateFormat | str, out_dir: str, count: int, seed: int, degrade: bool = True,
                        progress: bool = True, split: str = "train", style: str | None = None) -> str:
    """Render ``count`` samples of ``fmt`` into ``out_dir``; returns the path of labels.csv.

    ``style`` forces one style of the format's ``synth:`` section (default: styles by weight).
    Progress (rate and ETA) goes to stderr.
    """
    fmt = load_plate_format(fmt)
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    img_dir = os.path.join(out_dir, "images")
    os.makedirs(img_dir, exist_ok=True)
    digits = max(5, len(str(count - 1)))
    labels_path = os.path.join(out_dir, "labels.csv")
    sheet_images, sheet_labels = [], []
    bar = Progress(count, f"lprnet-synth {fmt.name}", "plates", enabled=progress)
    with open(labels_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(count):
            image, text, params = sample(fmt, seed, i, style=style, degrade=degrade)
            rel = f"images/{i:0{digits}d}.jpg"
            if not cv2.imwrite(os.path.join(out_dir, rel), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise OSError(f"could not write {os.path.join(out_dir, rel)}")
            writer.writerow([rel, text, split, params["style"], params["degradation"],
                             json.dumps(params, separators=(",", ":"), ensure_ascii=False)])
            if i < SHEET_COUNT:
                sheet_images.append(image)
                sheet_labels.append(f"{text} {params['style']} {params['degradation']:.2f}")
            bar.update(1)
    bar.close()
    save_contact_sheet(os.path.join(out_dir, "contact_sheet.png"), sheet_images, sheet_labels, cols=8,
                       cell_hw=(48, 150))
    return labels_path
