"""TFLite quantization settings side by side: plate agreement with Keras and accuracy (issue 4, item 2).

  python benchmarks/quantization.py [--model cn_lprnet_basic] [--count 1000] [--settings all]

The export's parity check (:func:`lprnet_tf.export.verify_export`) asks f16 / dynamic-range / int8 files to
give the Keras plate on >= 99 % of the real crops. This script converts the model with the default
settings and with the alternatives one would try to close a gap -- per-tensor weights, the legacy
dynamic-range quantizer, more layers kept float in int8, more calibration plates, int8 calibrated on given
crops (``--calibration_data`` + ``--calibration_split``, setting ``int8_given_calibration``) -- and scores each
file (dynamic batch) on the same crops (default: the real crops of the model's format, as the export does;
``--data`` + ``--split`` for others).
Writes benchmarks/results/quantization.md and .json.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# name -> (variant, export_tflite keyword arguments, what it changes)
SETTINGS = {
    "f16": ("f16", {}, "float16 weights (reference)"),
    "dynamic": ("dynamic", {}, "dynamic-range, default converter (per-channel int8 weights)"),
    "dynamic_per_tensor": ("dynamic", {"converter_flags": {"_experimental_disable_per_channel": True}},
                           "dynamic-range, one weight scale per tensor"),
    "dynamic_legacy": ("dynamic", {"converter_flags": {"experimental_new_dynamic_range_quantizer": False}},
                       "dynamic-range, the legacy (non-MLIR) quantizer"),
    "dynamic_weights_on_grid": ("dynamic", {"weights_on_grid": True},
                                "dynamic-range of a copy whose Keras kernels are already on the per-channel int8 "
                                "grid (the end state of weight-only quantization-aware training)"),
    "int8": ("int8", {}, "full int8, LocNet + GlobalContext float, 200 calibration crops (default: synthetic plates)"),
    "int8_classifier_float": ("int8", {"int8_float": ("locnet", "global_context", "classifier")},
                              "full int8, the classifier also float"),
    "int8_calib1000": ("int8", {"calibration_count": 1000}, "full int8, 1,000 calibration plates"),
    "int8_given_calibration": ("int8", {"given_calibration": True},
                               "full int8, LocNet + GlobalContext float, calibrated on --calibration_data"),
}


# Keras-only diagnosis (--groups): which kernels' int8 rounding changes the plates. name -> (test on a kernel's
# path, what it holds). The dynamic-range converter leaves kernels under 1,024 weights float (LocNet fc2).
GROUPS = {
    "locnet_features": (lambda p: p.startswith("locnet/") and "/fc2/" not in p,
                        "LocNet convolutions and fc1 (quantized in the dynamic-range file)"),
    "locnet_fc2": (lambda p: p.startswith("locnet/fc2/"),
                   "LocNet fc2, the affine parameters (float in the dynamic-range file: too few weights)"),
    "backbone": (lambda p: not p.startswith(("locnet/", "global_context/", "classifier/")),
                 "backbone: stem, small basic blocks, wide and tall convolutions"),
    "head": (lambda p: p.startswith(("global_context/", "classifier/")), "global context FC and classifier"),
    "all": (lambda p: True, "every kernel (= `dynamic_weights_on_grid`'s copy)"),
}


def weights_on_grid(model, select=None) -> int:
    """Round every conv/dense kernel of ``model`` (those whose path ``select`` accepts, default all) in place
    to the grid the converter quantizes it to: symmetric int8 with one scale per output channel
    (max |w| / 127), so the dynamic-range file's weights equal the Keras weights and only the on-the-fly
    activation quantization differs. Returns how many kernels were rounded."""
    new, count = [], 0
    for v, w in zip(model.weights, model.get_weights()):
        if v.path.endswith("kernel") and w.ndim >= 2 and (select is None or select(v.path)):
            count += 1
            m = np.abs(w).max(axis=tuple(range(w.ndim - 1)), keepdims=True)  # (1, ..., 1, C_out)
            s = np.where(m > 0, m / 127.0, 1.0)
            w = np.round(w / s) * s
        new.append(w)
    model.set_weights(new)
    return count


def keras_plates(model, fmt, crops) -> list[str]:
    """Greedy plates of the Keras model on ``(image, text)`` crops, through the evaluation's predict path."""
    from lprnet_tf.data.pipeline import ArraySource
    from lprnet_tf.decoding import decode
    from lprnet_tf.evaluation import predict_logits

    source = ArraySource([c[0] for c in crops], [c[1] for c in crops])
    return decode(predict_logits(model, source, fmt), fmt, "greedy")[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cn_lprnet_basic", help="shipped name, .keras file or run directory")
    ap.add_argument("--count", type=int, default=1000, help="crops scored (the first COUNT of the set)")
    ap.add_argument("--data", default="", help="crops (data spec); default: the export's parity crops")
    ap.add_argument("--split", default=None, help="only this split of --data (a CSV with a split column), e.g. val")
    ap.add_argument("--calibration_data", default="", help="setting int8_given_calibration: representative crops "
                    "(data spec) instead of synthetic plates, e.g. the model's training labels.csv")
    ap.add_argument("--calibration_split", default=None, help="only this split of --calibration_data, e.g. train")
    ap.add_argument("--settings", default="all", help=f"comma-separated of {list(SETTINGS)}, 'all' or 'none'")
    ap.add_argument("--groups", default="all", help=f"Keras-only diagnosis: kernel groups of {list(GROUPS)} "
                    "rounded to their int8 grid one group at a time, comma-separated, 'all' or 'none'")
    ap.add_argument("--each_kernel", action="store_true", help="Keras-only diagnosis: also round each conv/dense "
                    "kernel alone, one row per kernel (does one layer cause the flips, or all of them a little?)")
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "quantization"))
    args = ap.parse_args(argv)

    def pick(flag: str, value: str, choices: dict) -> list[str]:
        """The names a --settings / --groups value selects: 'all', 'none' or a comma-separated list."""
        chosen = (list(choices) if value == "all" else [] if value == "none"
                  else [x.strip() for x in value.split(",") if x.strip()])
        bad = [x for x in chosen if x not in choices]
        if bad:
            ap.error(f"--{flag}: unknown {bad}; choose from {list(choices)}, 'all' or 'none'")
        return chosen

    names, groups = pick("settings", args.settings, SETTINGS), pick("groups", args.groups, GROUPS)
    if not args.calibration_data:
        if args.settings != "all" and "int8_given_calibration" in names:
            ap.error("--settings int8_given_calibration needs --calibration_data (e.g. the training labels.csv)")
        names = [n for n in names if n != "int8_given_calibration"]
    elif "int8_given_calibration" not in names:
        ap.error("--calibration_data is used by the setting int8_given_calibration only; add it to --settings")
    if not names and not groups and not args.each_kernel:
        ap.error("--settings none and --groups none (without --each_kernel): nothing to measure")
    if args.count < 1:
        ap.error("--count must be positive")

    from results_io import run_meta, write_report

    from lprnet_tf import export as ex
    from lprnet_tf.modelio import load_for_inference

    model, fmt, path = load_for_inference(args.model)
    if args.data:
        crops = ex.crops_from_spec(args.data, fmt, args.count, skip_bad=True, split=args.split)
        source = args.data + (f" (split {args.split})" if args.split else "")
    else:
        crops, source = ex.default_parity_crops(fmt, args.count)

    @functools.cache
    def reference() -> list[str]:
        """The unrounded Keras model's greedy plates on the crops (computed once, when first needed)."""
        return keras_plates(model, fmt, crops)

    calibration, cal_what = [], ""
    if args.calibration_data and "int8_given_calibration" in names:
        calibration = ex.crops_from_spec(args.calibration_data, fmt, 200, with_path=False, skip_bad=True,
                                         split=args.calibration_split)
        cal_what = args.calibration_data + (f" (split {args.calibration_split})" if args.calibration_split else "")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            variant, kwargs, what = SETTINGS[name]
            t0 = time.time()
            kwargs, m, note = dict(kwargs), model, ""
            if kwargs.pop("given_calibration", False):
                kwargs["representative"] = calibration
                note = f": the first {len(calibration)} crops of {cal_what}"
            if kwargs.pop("weights_on_grid", False):
                m = load_for_inference(args.model)[0]
                weights_on_grid(m)
                agree = float(np.mean([a == b for a, b in zip(reference(), keras_plates(m, fmt, crops))]))
                note += (f"; the copy's Keras plates agree with the original's on {agree:.1%} (agreement and "
                        f"exact (Keras) are against the copy)")
            files = ex.export_tflite(m, fmt, os.path.join(tmp, name), name="m", variants=[variant],
                                     batch=["dynamic"], **kwargs)
            rep = ex.verify_export(m, fmt, None, files, crops=crops, raise_on_fail=False)
            r = next(iter(rep["exports"].values()))
            rows.append({"setting": name, "what": what + note, "agreement": r["plate_agreement"],
                         "accuracy": r["accuracy"], "keras_accuracy": rep["keras"]["accuracy"],
                         "bytes": r.get("bytes"), "passed": r["passed"],
                         "changed_where_keras_right": r.get("changed_where_keras_right"),
                         "changed_where_keras_wrong": r.get("changed_where_keras_wrong")})
            print(f"[{i + 1}/{len(names)}] {name}: agreement {r['plate_agreement']:.3f}, accuracy "
                  f"{r['accuracy']:.3f} (Keras {rep['keras']['accuracy']:.3f}), {time.time() - t0:.0f} s", flush=True)

    group_rows = []
    if groups or args.each_kernel:
        ref, truth = reference(), [c[1] for c in crops]
        m = load_for_inference(args.model)[0]  # one copy, its weights reset before each group
        original = m.get_weights()
        jobs = [(g, GROUPS[g][0], GROUPS[g][1]) for g in groups]  # (name, kernel-path test, what)
        if args.each_kernel:
            jobs += [(v.path, functools.partial(str.__eq__, v.path), f"one kernel {tuple(v.shape)}")
                     for v in m.weights if v.path.endswith("kernel") and len(v.shape) >= 2]
        for g, select, what in jobs:
            m.set_weights(original)
            n = weights_on_grid(m, select)
            plates = keras_plates(m, fmt, crops) if n else ref
            group_rows.append({"group": g, "what": what, "kernels": n,
                               "agreement": float(np.mean([a == b for a, b in zip(ref, plates)])),
                               "accuracy": float(np.mean([a == b for a, b in zip(plates, truth)])),
                               "keras_accuracy": float(np.mean([a == b for a, b in zip(ref, truth)]))})
            print(f"[group {g}] {n} kernels rounded: agreement {group_rows[-1]['agreement']:.3f}", flush=True)

    meta = {"model": args.model, "model_file": os.path.relpath(os.path.abspath(path), REPO),
            "crops": f"{source} ({len(crops)})", **run_meta("quantization.py", argv)}
    lines = [f"# TFLite quantization settings: `{args.model}`", "",
             f"`{meta['command'].strip()}` on {meta['date']} ({meta['machine']}). Crops: {meta['crops']}. Each file "
             f"is the dynamic-batch TFLite file; agreement = share of crops whose greedy plate equals the Keras "
             f"model's (the export requires >= {ex.MIN_AGREEMENT:.0%} and accuracy within "
             f"{ex.MAX_ACCURACY_DROP * 100:.1f} points)."]
    if rows:
        lines += ["", "| setting | what | plate agreement | changed / crops Keras reads right | changed / crops "
                  "Keras misreads | exact (file) | exact (Keras) | bytes | parity |",
                  "|---|---|---|---|---|---|---|---|---|"]

    def share(pair):
        return f"{pair[0]} / {pair[1]} ({pair[0] / max(pair[1], 1):.1%})" if pair else "—"

    for r in rows:
        lines.append(f"| `{r['setting']}` | {r['what']} | {r['agreement']:.3f} | "
                     f"{share(r['changed_where_keras_right'])} | {share(r['changed_where_keras_wrong'])} | "
                     f"{r['accuracy']:.3f} | {r['keras_accuracy']:.3f} | {r['bytes']:,} | "
                     f"{'pass' if r['passed'] else 'FAIL'} |")
    if group_rows:
        lines += ["", "Where the flips come from (Keras only, no TFLite file): copies of the Keras model with one group "
                  "of kernels rounded to its per-channel int8 grid, the rounding the converter applies to weights; "
                  "agreement = share of crops whose greedy plate equals the unrounded model's.", "",
                  "| kernels rounded | what | kernels | plate agreement | exact (copy) | exact (Keras) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| `{r['group']}` | {r['what']} | {r['kernels']} | {r['agreement']:.3f} | {r['accuracy']:.3f} | "
                  f"{r['keras_accuracy']:.3f} |" for r in group_rows]
    write_report(args.out, {"meta": meta, "rows": rows, "groups": group_rows}, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
