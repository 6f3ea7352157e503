"""lprnet-export: write a SavedModel for TF Serving and TFLite files, then prove they match Keras.

  lprnet-export --model runs/cn_basic --out export [--name lpr] [--version 1] \
      [--tflite f32,f16,dynamic,int8] [--onnx] [--no_verify]

Writes ``OUT/NAME/VERSION/`` (SavedModel, TF Serving layout), ``OUT/tflite/NAME_<variant>.tflite``
(+ ``_batch`` variants and a ``.json`` sidecar each), with ``--onnx`` ``OUT/onnx/NAME.onnx`` (+ its
``.json`` sidecar; needs ``pip install "lprnet_tf[onnx]"``, single-crop CTC models only) and
``OUT/parity.json``. See docs/deployment.md.

Multi-frame models (IQ-STAN, K frames of one plate): the SavedModel takes K frames per plate, the
TFLite file the K frames tiled side by side; only the f32 TFLite variant is written (the default
for them), and parity is checked on tracklets (``--parity_data`` read with K frames per track;
default 64 synthetic tracklets).

Slot models (the multi-task CNN) export like CTC models; their sidecars and ``assets/model.json`` carry
the slot decoding rule. An MTGAN (``--model`` a run or ``.keras`` of one) exports its **generator**
(super-resolution: low-resolution crops at ``H/2 x W/2`` -> ``H x W``); ``--recognizer NAME_OR_PATH``
adds that recognizer to the SavedModel (SR + recognize in one graph). Only the f32 TFLite variant of the
generator is written (the default for it); parity is checked on plates downscaled to low resolution
(``--parity_data``: high-resolution crops; default 64 synthetic plates).

An EQ-LPR quality network (e.g. ``--model cn_eq_lpr_e``) exports its score (``quality`` in [0, 1] per
crop, for ``lprnet-recognize --stream --quality FILE``): SavedModel + TFLite f32/f16/dynamic (the
default for it), parity on crops (the real CN crops for ``cn`` quality networks, else synthetic plates).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from lprnet_tf.cli.common import check_output_dir, parse_flags, run_guarded
from lprnet_tf.config import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Model to export: a .keras file, a run directory (its best.keras) or a "
                    "shipped model name (e.g. cn_lprnet_basic).")
flags.DEFINE_string("out", None, "Output folder; the SavedModel goes to OUT/NAME/VERSION, TFLite files to "
                    "OUT/tflite, the parity report to OUT/parity.json.")
flags.DEFINE_string("name", "lpr", "Model name: the TF Serving model folder and the TFLite file prefix.")
flags.DEFINE_integer("version", 1, "TF Serving version number (a positive integer; the folder OUT/NAME/VERSION).")
flags.DEFINE_bool("overwrite", False, "Replace OUT/NAME/VERSION if it exists (default: refuse).")
flags.DEFINE_list("tflite", ["f32", "f16", "dynamic", "int8"], "TFLite variants to write, comma-separated "
                  "(f32, f16, dynamic, int8); 'none' writes no TFLite file.")
flags.DEFINE_list("tflite_batch", ["1", "dynamic"], "TFLite input batch: '1' ([1,H,W,3], NAME_<v>.tflite) and/or "
                  "'dynamic' ([-1,H,W,3], NAME_<v>_batch.tflite).")
flags.DEFINE_list("int8_float", ["locnet", "global_context"], "Layers kept float32 in the int8 files: kinds "
                  "'locnet', 'global_context' or layer names; 'none' quantizes every op (breaks LocNet models).")
flags.DEFINE_string("calibration_data", "synth:0", "Representative crops for int8 calibration: a data spec like "
                    "lprnet-train's (labels.csv, folder, list file, synth:SEED); use the training source.")
flags.DEFINE_string("calibration_split", None, "Only the rows of this split of --calibration_data (a CSV with a "
                    "split column), e.g. 'train': calibrate on the training crops, never on the parity crops.")
flags.DEFINE_integer("calibration_count", 200, "Number of representative crops for int8 calibration.",
                     lower_bound=1)
flags.DEFINE_string("parity_split", None, "Only the rows of this split of --parity_data (a CSV with a split "
                    "column), e.g. 'val'.")
flags.DEFINE_string("parity_data", None, "Crops for the parity check (data spec). Default: the real CN crops in "
                    "../shared/data/cn_ccpd_like_1000 for cn models when present, else synthetic plates. "
                    "Multi-frame models: tracklets (any tracklet layout or synth:SEED), default synthetic.")
flags.DEFINE_integer("parity_count", 1000, "Number of crops for the parity check (the whole 1,000-crop CN set by "
                     "default; multi-frame models: tracklets, 64 by default).", lower_bound=1)
flags.DEFINE_bool("onnx", False, "Also write OUT/onnx/NAME.onnx (float32 [N,H,W,3] in [0,1] -> logits, dynamic "
                  "batch, JSON sidecar), checked with ONNX Runtime like TFLite f32. Single-crop CTC models only; "
                  "needs pip install \"lprnet_tf[onnx]\".")
flags.DEFINE_bool("no_verify", False, "Skip the parity check (reloading every export and comparing it with Keras).")
flags.DEFINE_string("format", None, "Plate format name or YAML (default: the one saved with the model).")
flags.DEFINE_string("recognizer", None, "MTGAN models only: a recognizer (shipped name such as cn_lprnet_basic, run "
                    "directory or .keras; CTC or slot) added to the generator's SavedModel: its signatures then "
                    "also return the plate read on the super-resolved image.")


def _allowed_variants(variants: list, allowed, who: str, why: str) -> list:
    """The TFLite variants a model kind supports: the default list is cut to ``allowed``; an explicit
    ``--tflite`` naming another variant is a UsageError."""
    if not FLAGS["tflite"].present:
        variants = [v for v in variants if v in allowed]
    bad = [v for v in variants if v not in allowed]
    if bad:
        raise UsageError(f"--tflite {','.join(bad)}: {who} {','.join(allowed)} TFLite files {why}; pass --tflite f32 "
                         f"or --tflite none")
    return variants


def _main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag (see --help)")
    if not FLAGS.model or not FLAGS.out:
        raise UsageError("--model and --out are required (see --help)")
    check_output_dir(FLAGS.out, "--out")
    if FLAGS.parity_split and not FLAGS.parity_data:
        raise UsageError(f"--parity_split {FLAGS.parity_split} needs --parity_data (a labels.csv with a split column)")
    if FLAGS.calibration_split and FLAGS.calibration_data.startswith("synth"):
        raise UsageError(f"--calibration_split {FLAGS.calibration_split}: --calibration_data {FLAGS.calibration_data} "
                         f"is synthetic plates, which have no split; pass your training labels.csv")
    parity_split = f" --parity_split {FLAGS.parity_split}" if FLAGS.parity_split else ""
    from lprnet_tf import export
    from lprnet_tf.modelio import load_for_inference

    if FLAGS.onnx:  # before the model is loaded: fail fast when the extra is not installed
        export.require_onnx("--onnx")

    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)  # no INFO lines from the SavedModel writer / converter

    model, fmt, path = load_for_inference(FLAGS.model, FLAGS.format)
    variants = [] if [v.lower() for v in FLAGS.tflite] in ([], ["none"]) else FLAGS.tflite
    int8_float = [] if [v.lower() for v in FLAGS.int8_float] in ([], ["none"]) else FLAGS.int8_float
    try:
        kind = export.export_kind(model)
    except export.ExportError as e:
        raise UsageError(f"--model {FLAGS.model}: {e}") from None
    frames = export.model_frames(model)
    why = export.onnx_unsupported(model) if FLAGS.onnx else None
    if why:
        raise UsageError(f"--onnx: {why}; drop --onnx")
    if FLAGS.recognizer and kind != "sr":
        raise UsageError(f"--recognizer: model {FLAGS.model} is a '{kind}' recognizer, not an MTGAN; --recognizer "
                         f"adds a recognizer to an MTGAN generator's export. Drop --recognizer")
    recognizer = rec_fmt = None
    if kind == "sr":  # the MTGAN generator: f32 TFLite only, parity on downscaled plates
        variants = _allowed_variants(variants, export.SR_TFLITE_VARIANTS, "the MTGAN generator exports only",
                                     "(quantized super-resolution is not calibrated or verified)")
        if FLAGS.recognizer:
            recognizer, rec_fmt, rec_path = load_for_inference(FLAGS.recognizer)
            try:
                rec_kind = export.export_kind(recognizer)
            except export.ExportError as e:
                raise UsageError(f"--recognizer {FLAGS.recognizer}: {e}") from None
            if rec_kind not in ("ctc", "slot"):
                raise UsageError(f"--recognizer {FLAGS.recognizer}: a '{rec_kind}' model; the SR + recognize export "
                                 f"composes single-crop recognizers (CTC or slot models)")
            print(f"recognizer {rec_path} (plate format '{rec_fmt.name}', {rec_fmt.height}x{rec_fmt.width}, "
                  f"{rec_kind}) reads the super-resolved images")
        count = FLAGS.parity_count if FLAGS["parity_count"].present else export.PARITY_SR_CROPS
        crops = None
        if not FLAGS.no_verify:
            crops = export.crops_from_spec(FLAGS.parity_data or "synth:12345", fmt, count, split=FLAGS.parity_split)
        source = (f"--parity_data {FLAGS.parity_data}{parity_split}" if FLAGS.parity_data
                  else f"synthetic plates (synth:12345, {count})") + ", downscaled to low resolution"
        rep = None
    elif frames:  # IQ-STAN: f32 TFLite only, parity on tracklets
        variants = _allowed_variants(variants, export.MULTIFRAME_TFLITE_VARIANTS,
                                     f"a multi-frame model (K={frames}) exports only",
                                     "(quantized variants are not supported for it)")
        count = FLAGS.parity_count if FLAGS["parity_count"].present else export.PARITY_TRACKLETS
        spec = FLAGS.parity_data or "synth:12345"
        crops = (export.tracklets_from_spec(spec, fmt, frames, count, split=FLAGS.parity_split)
                 if not FLAGS.no_verify else None)
        source = (f"--parity_data {spec}{parity_split}" if FLAGS.parity_data
                  else f"synthetic tracklets ({spec}, {count} x {frames})")
        rep = None
    else:  # single-crop recognizers and EQ-LPR quality networks (those: f32/f16/dynamic; parity on their scores)
        if kind == "quality":
            variants = _allowed_variants(variants, export.QUALITY_TFLITE_VARIANTS,
                                         "an EQ-LPR quality network exports only", "(int8 is not calibrated for it)")
        rep = (export.crops_from_spec(FLAGS.calibration_data, fmt, FLAGS.calibration_count, with_path=False,
                                      split=FLAGS.calibration_split)
               if "int8" in variants else None)
        crops = (export.crops_from_spec(FLAGS.parity_data, fmt, FLAGS.parity_count, split=FLAGS.parity_split)
                 if FLAGS.parity_data else None)
        source = f"--parity_data {FLAGS.parity_data}{parity_split}"
    if kind == "quality":
        print(f"exporting the EQ-LPR quality network {path} ({model.name}, scores crops for "
              f"{getattr(model, 'recognizer', '?')}; plate format '{fmt.name}', {fmt.height}x{fmt.width})")
    elif kind == "sr":
        lr = export.lr_format(model, fmt)
        print(f"exporting the MTGAN generator of {path} (super-resolution {lr.height}x{lr.width} -> "
              f"{fmt.height}x{fmt.width}, plate format '{fmt.name}')")
    else:
        print(f"exporting {path} (plate format '{fmt.name}', {fmt.height}x{fmt.width}, {fmt.num_classes} classes"
              + (f", {frames} frames side by side" if frames else "") + (", slot model" if kind == "slot" else "")
              + ")")
    try:
        summary = export.export_all(model, fmt, FLAGS.out, FLAGS.name, FLAGS.version, tflite=variants,
                                    verify=not FLAGS.no_verify, crops=crops, overwrite=FLAGS.overwrite,
                                    representative=rep, calibration_count=FLAGS.calibration_count,
                                    int8_float=int8_float, batch=FLAGS.tflite_batch,
                                    crops_source=source, onnx=FLAGS.onnx, recognizer=recognizer,
                                    recognizer_format=rec_fmt)
    except export.ExportParityError as e:
        print(f"error: {e}", file=sys.stderr)
        failed = " ".join((e.report or {}).get("failures", []))
        if any(f"_{v}" in failed for v in ("f16", "dynamic", "int8")):
            print("hint: quantized files flip the plates the model is least sure of (docs/deployment.md §4). The "
                  "files and parity.json are written; --no_verify accepts them as they are, --tflite f32 gives exact "
                  "files" + (", and int8 can be calibrated on your training crops (--calibration_data LABELS.csv "
                             "--calibration_split train)" if "_int8" in failed else ""), file=sys.stderr)
        sys.exit(3)
    print(f"SavedModel: {summary['savedmodel']}")
    for f in summary["tflite"]:
        print(f"TFLite:     {f} ({os.path.getsize(f) / 1e6:.2f} MB)")
    for f in summary.get("onnx", []):
        print(f"ONNX:       {f} ({os.path.getsize(f) / 1e6:.2f} MB)")
    report = summary["parity"]
    if report:
        unit = report["crops"].get("unit", "crops")
        acc = report["keras"].get("accuracy")
        print(f"parity on {report['crops']['count']} {unit} ({report['crops']['source']})"
              + (f", Keras accuracy {acc:.2%}" if acc is not None else "") + ":")
        for key, r in report["exports"].items():
            parts = []
            if "max_abs_sr_diff" in r:
                parts.append(f"max |SR diff| {r['max_abs_sr_diff']:.2e} (mean {r['mean_abs_sr_diff']:.1e})")
            if "plate_agreement" in r:
                parts.append(f"plates agree {r['plate_agreement']:.2%}, accuracy {r['accuracy']:.2%}")
            if "max_abs_quality_diff" in r:
                parts.append(f"max |quality diff| {r['max_abs_quality_diff']:.2e} (mean "
                             f"{r['mean_abs_quality_diff']:.1e}), SROCC vs Keras {r['srocc_vs_keras']:.4f}")
            if "max_abs_logit_diff" in r:
                parts.append(f"max |logit diff| {r['max_abs_logit_diff']:.2e}")
            print(f"  {key:40s} {', '.join(parts)}  {'ok' if r['passed'] else 'FAIL'}")
        print(f"wrote {summary['parity_path']}")


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
