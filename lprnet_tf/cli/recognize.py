"""lprnet-recognize: read plates from crop images.

  lprnet-recognize IMAGE_OR_DIR... [--model cn_lprnet_basic] [--format cn] [--json] [--batch 32]
      [--decoder greedy|beam|template] [--tta] [--local_prefix 皖 [--local_share 0.5]]
  lprnet-recognize --stream SOURCE [--quality MODEL] [--boxes CSV|detect] [--model ...] [--json]
  lprnet-recognize --frames K FOLDER... --model iq_stan.keras|iq_stan_f32.tflite [--track_policy error]
  lprnet-recognize LOWRES_IMAGE_OR_DIR... --sr mtgan_run|sr_f32.tflite|sr/1 --model cn_lprnet_basic

Prints ``path<TAB>plate<TAB>confidence`` per crop (``--json``: one JSON object per line with
``path``, ``plate``, ``confidence``, ``matches_template``); ``--review_below C`` adds a column ``review``
(confidence below C) or ``ok`` (``--json``: ``review``), for the reads an application should check.
``--model`` takes a .keras file, a run directory, a shipped model name, a ``.tflite`` file (with its JSON
sidecar) or a SavedModel folder; TFLite files run without TensorFlow (:mod:`lprnet_tf.runtime`). Unreadable files get an
``error: PATH: reason`` line on stderr and are skipped; the exit code is non-zero only when no
image could be read. ``--tta`` reads each crop as it is and in four fixed views and prints the plate
most views read (:func:`lprnet_tf.runtime.tta_view`; five times the inference). ``--local_prefix``
(template / beam decoder; single crops and ``--stream``): re-rank the candidates for a site where
``--local_share`` of the plates carry that province (:class:`lprnet_tf.decoding.LocalPrior`).

``--frames K`` (multi-frame models, IQ-STAN): each FOLDER holds the frames of one plate, read in
natural name order (``2.jpg`` before ``10.jpg``, as :func:`lprnet_tf.data.tracklets.read_tracklets`
reads track folders); a folder with more than K frames gives K evenly spaced ones (first and last
included), one with fewer follows ``--track_policy`` (``error``: an ``error: FOLDER: ...`` line and the
folder is skipped; ``skip``: a warning; ``repeat``/``pad_last``: frames cycled / last frame repeated).
Prints ``folder<TAB>plate<TAB>confidence<TAB>w0,w1,...`` (the model's attention weight of each
frame; ``--json``: ``folder``, ``frames``, ``plate``, ``confidence``, ``matches_template``,
``frame_weights``).

``--sr MODEL`` (low-resolution crops): an MTGAN generator (a run or ``.keras`` of an MTGAN, its
``lprnet-export`` TFLite file or SavedModel) super-resolves each crop first (laid out at the
generator's input ``H/2 x W/2``); ``--model`` then reads the float SR image laid out at its own input.
Slot models (the multi-task CNN) are read like the others (arg-max per slot, greedy decoder only).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from lprnet_tf.cli.common import define_local_prior_flags, local_prior_from_flags, parse_flags, run_guarded
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
flags.DEFINE_string("stream", None, "EQ-LPR stream mode (docs/stream.md): read a plate stream (a folder of crops, a "
                    "folder of track folders, or a video) and run --model only on frames whose quality beats the "
                    "track's best so far. Prints track, frame, quality, recognized, plate, confidence per frame "
                    "and track, END, plate, confidence, calls/frames per track.")
flags.DEFINE_string("quality", None, "--stream: quality model (shipped name such as cn_eq_lpr_e, .keras file or folder, "
                    "or an exported one: a .tflite file with its .json sidecar or a SavedModel folder from lprnet-export; "
                    "one crop -> a score in [0, 1]); "
                    "default: the built-in no-reference score PQS (lprnet_tf.quality).")
flags.DEFINE_integer("frames", 0, "Multi-frame models (IQ-STAN): K, the frames the model reads per plate; every "
                     "argument is then a FOLDER holding the frames of one plate (0: single crops).", lower_bound=0)
flags.DEFINE_enum("track_policy", "error", ["error", "skip", "repeat", "pad_last"], "--frames: a folder with fewer "
                  "than K frames is an error (the folder is skipped with an error line), skipped with a warning, "
                  "or filled by cycling its frames (repeat) or repeating its last frame (pad_last).")
flags.DEFINE_string("sr", None, "Super-resolve every crop first with an MTGAN generator: an MTGAN run directory or "
                    ".keras, its .tflite (lprnet-export; sidecar beside it) or its SavedModel folder; --model then "
                    "reads the super-resolved images.")
flags.DEFINE_float("review_below", None, "Mark reads whose confidence is below this value for review: one more "
                   "column 'review' or 'ok' (--json: \"review\": true/false); nothing is dropped. Choose it with "
                   "lprnet-evaluate on your own crops (its confidence-threshold lines). Single crops and --frames.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("tta", False, "Test-time views: read every crop as it is and in 4 fixed views (tighter, looser, "
                  "rows trimmed, brighter) and print the plate most views read (5x the inference; single crops "
                  "only).")
flags.DEFINE_string("boxes", None, "--stream with a full-frame video: plate boxes from a CSV frame,track,x,y,w,h, "
                    "or 'detect' (OpenCV's plate Haar cascade + IoU tracker).")
define_local_prior_flags(__name__)

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


def load_recognizer(spec: str, fmt=None, threads=None, batch: int = 32, sr: str | None = None):
    """A :class:`lprnet_tf.runtime.Recognizer` for any model spec (TFLite/ONNX/SavedModel/Keras); ``sr``: an
    MTGAN generator spec (:func:`load_super_resolver`) run on every crop first."""
    from lprnet_tf.runtime import Recognizer, is_savedmodel

    resolver = load_super_resolver(sr, threads, batch) if sr else None
    if spec.endswith((".tflite", ".onnx")) or is_savedmodel(spec):
        return Recognizer(spec, fmt=fmt, num_threads=threads, sr=resolver)
    from lprnet_tf.modelio import load_for_inference

    model, pf, _ = load_for_inference(spec, fmt)
    return Recognizer.from_keras(model, pf, batch_size=batch, sr=resolver)


def load_super_resolver(spec: str, threads=None, batch: int = 32):
    """A :class:`lprnet_tf.runtime.SuperResolver` for an MTGAN generator: its ``.tflite`` file (no TensorFlow),
    its SavedModel folder, or an MTGAN ``.keras`` file / run directory / shipped name
    (:func:`lprnet_tf.data.lowres.mtgan_super_resolver`)."""
    from lprnet_tf.runtime import SuperResolver, is_savedmodel

    if spec.endswith(".tflite") or is_savedmodel(spec):
        return SuperResolver(spec, num_threads=threads)
    from lprnet_tf.data.lowres import mtgan_super_resolver

    return mtgan_super_resolver(spec, what="--sr", batch_size=batch)


def folder_frames(folder: str, k: int, policy: str = "error") -> tuple[list, int]:
    """The K frame files of one plate's folder and how many it holds.

    Images in natural name order (as :func:`lprnet_tf.data.tracklets.read_tracklets` reads a track
    folder); K of them picked with its rules (``spread``: evenly spaced, first and last included;
    fewer than K: ``policy`` repeat / pad_last). Raises DataError naming the folder when it is
    missing, holds no image, or (``policy`` error) has fewer than K frames; returns ``([], n)`` for a
    short folder under ``skip``."""
    from lprnet_tf.data.readers import IMAGE_EXTS, DataError, Sample
    from lprnet_tf.data.tracklets import TrackReport, _Builder, _natural_key

    if not os.path.isdir(folder):
        raise DataError(f"{folder}: no such folder; with --frames every argument is a folder holding the frames "
                        f"of one plate")
    files = sorted((f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS)
                    and os.path.isfile(os.path.join(folder, f))), key=_natural_key)
    if not files:
        raise DataError(f"{folder}: folder holds no image files ({', '.join(IMAGE_EXTS)}); with --frames it must "
                        f"hold the frames of one plate")
    n = len(files)
    if n < k and policy == "error":
        raise DataError(f"{folder}: {n} frame(s) but --frames {k}; pass --track_policy repeat or pad_last to reuse "
                        f"its frames (or skip), or a folder with {k} frames or more")
    if n < k and policy == "skip":
        return [], n
    paths = [os.path.join(folder, f) for f in files]
    builder = _Builder(TrackReport(folder, "folders", k, policy), k, policy, "spread", 0, False)
    builder.add(folder, [Sample(path=p, text="", where=p) for p in paths], list(range(n)), ordered=False)
    return builder.out[0].frames, n


def _recognize_frames(inputs) -> int:
    """``--frames K``: one plate per folder (see the module doc)."""
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.runtime import read_image

    k = FLAGS.frames
    if not inputs:
        raise UsageError(f"--frames {k}: give one or more folders, each holding the frames of one plate")
    plates = []  # (folder, K frame paths)
    for folder in inputs:
        try:
            paths, n = folder_frames(folder, k, FLAGS.track_policy)
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            continue
        if not paths:
            print(f"warning: {folder}: {n} frame(s) < --frames {k}; skipped (--track_policy skip)", file=sys.stderr)
            continue
        if n < k:
            print(f"warning: {folder}: {n} frame(s) < --frames {k}; filled by --track_policy {FLAGS.track_policy}",
                  file=sys.stderr)
        plates.append((folder, paths))
    if not plates:
        print("error: no plate to read", file=sys.stderr)
        return EXIT_NOTHING_READ
    rec = load_recognizer(FLAGS.model, FLAGS.format, FLAGS.threads, FLAGS.batch)
    if not rec.frames:
        raise UsageError(f"--frames {k}: model {FLAGS.model} reads single crops; drop --frames")
    if rec.frames != k:
        raise UsageError(f"--frames {k}: model {FLAGS.model} reads K={rec.frames} frames of a plate; pass "
                         f"--frames {rec.frames}")
    read = 0
    for start in range(0, len(plates), FLAGS.batch):
        chunk, tracks = [], []
        for folder, paths in plates[start:start + FLAGS.batch]:
            try:
                tracks.append([read_image(p) for p in paths])
                chunk.append((folder, paths))
            except DataError as e:
                print(f"error: {folder}: {e}", file=sys.stderr)
        if not tracks:
            continue
        read += len(tracks)
        for (folder, paths), r in zip(chunk, rec.recognize_frames(tracks, FLAGS.decoder)):
            weights = r.frame_weights or []
            if FLAGS.json:
                print(json.dumps({"folder": folder, "frames": paths, "plate": r.text,
                                  "confidence": round(r.confidence, 6), "matches_template": r.matches_template,
                                  "frame_weights": [round(w, 6) for w in weights], **_review(r, True)},
                                 ensure_ascii=False))
            else:
                print(f"{folder}\t{r.text}\t{r.confidence:.4f}\t{','.join(f'{w:.4f}' for w in weights)}"
                      + _review(r, False))
        sys.stdout.flush()
    if read == 0:
        print(f"error: none of the {len(plates)} folder(s) could be read", file=sys.stderr)
        return EXIT_NOTHING_READ
    return 0


def _prior_for(rec):
    """The LocalPrior of the ``--local_*`` flags for Recognizer ``rec`` (a sidecar's first-character shares are
    the base where its format has no synthetic generator), or None."""
    return local_prior_from_flags(rec.fmt, FLAGS.decoder, rec.sidecar.get("decoder", {}).get("first_char_shares"))


def _review(r, as_json: bool):
    """The --review_below mark of read ``r``: {} / "" without the flag, else {"review": bool} or a TSV column."""
    if FLAGS.review_below is None:
        return {} if as_json else ""
    flag = r.confidence < FLAGS.review_below
    return {"review": flag} if as_json else ("\treview" if flag else "\tok")


def _main(argv):
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.runtime import read_image

    inputs = argv[1:]
    if FLAGS.tta and (FLAGS.frames or FLAGS.stream or FLAGS.sr):
        why = ("--frames" if FLAGS.frames else "--stream" if FLAGS.stream
               else "--sr (views of low-resolution crops before super-resolution were not measured)")
        raise UsageError(f"--tta reads single crops in several views; it cannot be combined with {why}")
    if FLAGS.sr and (FLAGS.frames or FLAGS.stream):
        raise UsageError(f"--sr reads single low-resolution crops; it cannot be combined with "
                         f"{'--frames' if FLAGS.frames else '--stream'}")
    if FLAGS.review_below is not None and FLAGS.stream:
        raise UsageError("--review_below marks single reads; --stream keeps one read per plate track by its own "
                         "quality rule (docs/stream.md), drop --review_below")
    if FLAGS.local_prefix and FLAGS.frames:
        raise UsageError("--local_prefix re-ranks a CTC beam search; a multi-frame model (--frames) decodes its "
                         "attention steps greedily")
    if FLAGS.frames:  # multi-frame model: one plate per folder of frames
        if FLAGS.stream:
            raise UsageError("--frames and --stream cannot be combined")
        return _recognize_frames(inputs)
    if FLAGS.stream:  # EQ-LPR quality-gated stream recognition: lprnet_tf.stream
        if inputs:
            raise UsageError(f"--stream reads its own SOURCE; drop the extra argument(s) {' '.join(inputs)}")
        from lprnet_tf.stream import run_cli

        return run_cli(FLAGS.stream, lambda: load_recognizer(FLAGS.model, FLAGS.format, FLAGS.threads, FLAGS.batch),
                       FLAGS.quality, FLAGS.boxes, FLAGS.decoder, FLAGS.json, FLAGS.batch, prior_for=_prior_for)
    if not inputs:
        raise UsageError("give one or more crop images or folders (see --help)")
    errors: list[str] = []
    paths = image_files(inputs, errors)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if not paths:
        print("error: no image to read", file=sys.stderr)
        return EXIT_NOTHING_READ  # returned, not sys.exit: absl exits with it (no TF import on the way)
    rec = load_recognizer(FLAGS.model, FLAGS.format, FLAGS.threads, FLAGS.batch, sr=FLAGS.sr)
    prior = _prior_for(rec)
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
        for p, r in zip(chunk, rec.recognize(images, FLAGS.decoder, tta=FLAGS.tta, prior=prior)):
            if FLAGS.json:
                print(json.dumps({"path": p, "plate": r.text, "confidence": round(r.confidence, 6),
                                  "matches_template": r.matches_template, **_review(r, True)}, ensure_ascii=False))
            else:
                print(f"{p}\t{r.text}\t{r.confidence:.4f}" + _review(r, False))
        sys.stdout.flush()
    if read == 0:
        print(f"error: none of the {len(paths)} file(s) could be read", file=sys.stderr)
        return EXIT_NOTHING_READ
    return 0


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
