"""lprnet-data convert: turn a CCPD folder, OpenVINO list, label-in-file-name folder or CSV into images/ + labels.csv.

    lprnet-data convert --data ccpd_base/ --format cn --out data/ccpd_crops --split train
    lprnet-data convert --data train_list.txt --format cn --out data/openvino_set
    lprnet-data convert --data plates/ --layout filenames --format br --out data/br_set --skip_bad

CCPD plates are cut out of each photo at the box in its file name and saved as crops; other images
are copied unchanged after checking that they decode. Labels are normalized and checked against
--format (alphabet, max_length); a bad row stops the run, or with --skip_bad is left out and listed
in OUT/skipped.csv. OUT/labels.csv gets path,text[,split,group],source_file[,box] and the source
CSV's other columns. Run `lprnet-data validate` on the result to check templates and image sizes.
An existing non-empty --out is refused unless --overwrite, which replaces only OUT/images/,
OUT/labels.csv and OUT/skipped.csv (and never when the source images are inside them).
Exit codes: 0 converted, 2 usage or data error.
"""

from __future__ import annotations

from absl import flags

from lprnet_tf.cli.common import check_output_dir
from lprnet_tf.cli.data._app import require, run
from lprnet_tf.data.readers import LAYOUTS
from lprnet_tf.datatools.convert import convert
from lprnet_tf.vocab import load_plate_format

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Source: a CCPD image folder, an OpenVINO list file ('path LABEL' per line), a "
                    "folder of images named by their label (ABC1234.jpg, ABC1234_2.jpg) or a labels.csv.")
flags.DEFINE_enum("layout", "auto", LAYOUTS, "Layout of --data; auto detects it (a folder whose names decode as "
                  "CCPD is CCPD, other image folders are label-in-file-name).")
flags.DEFINE_string("format", None, "Plate format of the labels: a shipped name (cn for CCPD, us, eu, br, uz, tw, "
                    "ar) or a YAML path.")
flags.DEFINE_string("out", None, "Output folder: OUT/images/NNNNN.jpg and OUT/labels.csv (must be new or empty, "
                    "see --overwrite).")
flags.DEFINE_string("split", "", "Value of the split column for rows whose source gives none (e.g. train).")
flags.DEFINE_bool("skip_bad", False, "Leave out rows with bad labels or unreadable images (listed in "
                  "OUT/skipped.csv) instead of stopping at the first.")
flags.DEFINE_bool("overwrite", False, "Allow a non-empty --out; replaces its images/, labels.csv and skipped.csv.")
flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality (1-100) of crops cut from CCPD boxes.")
flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.")


def _main(argv):
    data = require(FLAGS.data, "data", "the source to convert (CCPD folder, list file, image folder or CSV)")
    fmt = load_plate_format(require(FLAGS.format, "format", "the plate format of the labels, e.g. cn for CCPD"))
    out = require(FLAGS.out, "out", "a new folder for images/ and labels.csv")
    check_output_dir(out, "--out")  # before the source is scanned
    r = convert(data, out, fmt, FLAGS.layout, skip_bad=FLAGS.skip_bad, overwrite=FLAGS.overwrite, split=FLAGS.split,
                jpeg_quality=FLAGS.jpeg_quality, progress=FLAGS.progress)
    print(f"wrote {r.labels}: {r.written} images ({r.cropped} cropped from boxes, {r.copied} copied)")
    if r.skipped:
        print(f"skipped {len(r.skipped)} rows, listed in {r.skipped_csv} (first: {r.skipped[0][0]}: {r.skipped[0][1]})")
    return 0


def main(argv=None):
    """``lprnet-data convert``."""
    run(_main, argv)


if __name__ == "__main__":
    main()
