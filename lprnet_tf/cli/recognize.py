"""lprnet-recognize: read plates from crop images.

  lprnet-recognize IMAGE_OR_DIR... [--model cn_lprnet_basic] [--format cn] [--json] [--batch 32]
      [--decoder greedy|beam|template]

Prints ``path<TAB>plate<TAB>confidence`` per crop (``--json``: one JSON object per line with
``path``, ``plate``, ``confidence``, ``matches_template``). ``--model`` takes a .keras file, a run
directory, a shipped model name, a ``.tflite`` file (with its JSON sidecar) or a SavedModel folder;
TFLite files run without TensorFlow (:mod:`lprnet_tf.runtime`). Unreadable files get an
``error: PATH: reason`` line on stderr and are skipped; the exit code is non-zero only when no
image could be read.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from lprnet_tf.cli.common import parse_flags, run_guarded
from lprnet_tf.config import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "cn_lprnet_basic", "A .keras file, a run directory, a shipped model name, a .tflite "
                    "file (its .json sidecar beside it) or a SavedModel folder (OUT/NAME/VERSION).")
flags.DEFINE_string("format", None, "Plate format name or YAML (default: the one saved with the model).")
flags.DEFINE_bool("json", False, "Print one JSON object per crop instead of tab-separated lines.")
flags.DEFINE_integer("batch", 32, "Crops per model call.", lower_bound=1)
flags.DEFINE_enum("decoder", "greedy", ["greedy", "beam", "template"], "CTC decoder: greedy, beam search, or "
                  "beam search + template post-filter.")
flags.DEFINE_integer("threads", None, "TFLite interpreter threads (default: LiteRT's choice).")

EXIT_NOTHING_READ = 1


def image_files(inputs, errors):
    """Expand files and folders (recursively, image extensions only, sorted) into image paths."""
    from lprnet_tf.data.readers import IMAGE_EXTS

    out = []
    for item in inputs:
        if os.path.isdir(item):
            found = []
            for root, dirs, files in os.walk(item):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTS)]
            if not found:
                errors.append(f"{item}: folder holds no image files ({', '.join(IMAGE_EXTS)})")
            out += found
        elif os.path.isfile(item):
            out.append(item)
        else:
            errors.append(f"{item}: no such file or folder")
    return out


def load_recognizer(spec: str, fmt=None, threads=None, batch: int = 32):
    """A :class:`lprnet_tf.runtime.Recognizer` for any model spec (TFLite/SavedModel/Keras)."""
    from lprnet_tf.runtime import Recognizer, is_savedmodel

    if spec.endswith(".tflite") or is_savedmodel(spec):
        return Recognizer(spec, fmt=fmt, num_threads=threads)
    from lprnet_tf.modelio import load_for_inference

    model, pf, _ = load_for_inference(spec, fmt)
    return Recognizer.from_keras(model, pf, batch_size=batch)


def _main(argv):
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.runtime import read_image

    inputs = argv[1:]
    if not inputs:
        raise UsageError("give one or more crop images or folders (see --help)")
    errors: list[str] = []
    paths = image_files(inputs, errors)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if not paths:
        print("error: no image to read", file=sys.stderr)
        return EXIT_NOTHING_READ  # returned, not sys.exit: absl exits with it (no TF import on the way)
    rec = load_recognizer(FLAGS.model, FLAGS.format, FLAGS.threads, FLAGS.batch)
    read = 0
    for start in range(0, len(paths), FLAGS.batch):
        chunk, images = [], []
        for p in paths[start:start + FLAGS.batch]:
            try:
                images.append(read_image(p))
                chunk.append(p)
            except DataError as e:
                print(f"error: {e}", file=sys.stderr)
        if not images:
            continue
        read += len(images)
        for p, r in zip(chunk, rec.recognize(images, FLAGS.decoder)):
            if FLAGS.json:
                print(json.dumps({"path": p, "plate": r.text, "confidence": round(r.confidence, 6),
                                  "matches_template": r.matches_template}, ensure_ascii=False))
            else:
                print(f"{p}\t{r.text}\t{r.confidence:.4f}")
        sys.stdout.flush()
    if read == 0:
        print(f"error: none of the {len(paths)} file(s) could be read", file=sys.stderr)
        return EXIT_NOTHING_READ
    return 0


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
