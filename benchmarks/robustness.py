"""Robustness: the shipped recognizers on their real validation crops under fixed corruptions.

  python benchmarks/robustness.py [--models cn_lprnet_basic,…] [--data_root ../shared/data]
                                  [--corruptions dark,blur,…] [--decoder greedy] [--out benchmarks/results/robustness]
                                  [--sheet FILE.jpg [--sheet_only]]

Plates from other cameras than the validation sets' are darker, brighter, hazier, blurred, noisier, recompressed,
tilted, seen from the side, cropped looser or grey. For every model (default: every shipped single-crop
recognizer) and every real set it is reported on (the same sets and splits as ``benchmarks/accuracy.py``), this
reads the crops as they are and changed by each corruption of :mod:`lprnet_tf.data.corrupt` at severities 1-3
(fixed parameters, the same images for every model), and reports exact match and character accuracy.
Writes ``OUT.md`` and ``OUT.json``; a run with ``--models`` keeps the other models' previous results (dated).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from results_io import dates_line, merge_previous, run_meta, write_report  # noqa: E402


def measure(model, fmt, source, merges, names, decoder: str) -> dict:
    """``{"clean": [exact, char], name: [[exact, char] at severity 1, 2, 3], …}`` for one set."""
    from lprnet_tf.data.corrupt import SEVERITIES
    from lprnet_tf.evaluation import corrupted_source, predict_logits, score

    texts = source.texts()

    def run(src):
        m = score(predict_logits(model, src, fmt), texts, fmt, decoder, merges=merges)[0]
        return [round(float(m["accuracy"]), 4), round(float(m["char_accuracy"]), 4)]

    out = {"clean": run(source)}
    for name in names:
        out[name] = [run(corrupted_source(source, name, s)) for s in SEVERITIES]
        print(f"  {name}: " + " / ".join(f"{e:.3f}" for e, _ in out[name]), flush=True)
    return out


def table(result: dict) -> list:
    from lprnet_tf.data.corrupt import CORRUPTIONS

    res = result["results"]
    names = [n for n in res if n != "clean"]
    lines = [f"### `{result['model']}` on {result['set']} ({result['count']} crops, {result['decoder']}, "
             f"measured {result['date']})", "",
             f"Clean: exact **{res['clean'][0]:.3f}**, char {res['clean'][1]:.3f}. Exact / char at each severity:", "",
             "| corruption | what | 1 | 2 | 3 |", "|---|---|---|---|---|"]
    for n in names:
        what, params = CORRUPTIONS[n][0], result.get("params", {}).get(n, CORRUPTIONS[n][1])  # as measured
        cells = [f"{e:.3f} / {c:.3f}" for e, c in res[n]]
        lines.append(f"| {n} | {what} ({', '.join(str(p) for p in params)}) | " + " | ".join(cells) + " |")
    return lines + [""]


def summary(results: list) -> list:
    """One row per model and set: clean exact, the mean over every corruption and severity, the worst cell."""
    lines = ["| model | set | clean | mean of all corrupted | severity 1 | severity 3 | worst (corruption, severity) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        res = r["results"]
        cells = {(n, s + 1): v[0] for n, vals in res.items() if n != "clean" for s, v in enumerate(vals)}
        if not cells:
            continue
        worst = min(cells, key=cells.get)
        mean = sum(cells.values()) / len(cells)
        s1 = [v for (n, s), v in cells.items() if s == 1]
        s3 = [v for (n, s), v in cells.items() if s == 3]
        lines.append(f"| {r['model']} | {r['set']} | {res['clean'][0]:.3f} | {mean:.3f} | {sum(s1) / len(s1):.3f} | "
                     f"{sum(s3) / len(s3):.3f} | {cells[worst]:.3f} ({worst[0]}, {worst[1]}) |")
    return lines


def contact_sheet(path: str, crops: list, names: list) -> None:
    """An image (PNG or JPEG by the extension of ``path``): for each crop (one per set), a row per corruption: the
    crop as it is, then severities 1-3, each cell 141 x 36."""
    import cv2
    import numpy as np

    from lprnet_tf.data.corrupt import SEVERITIES, corrupt

    h, w = 36, 141
    rows = []
    for crop in crops:
        for n in names:
            cells = [crop] + [corrupt(crop, n, s, 0) for s in SEVERITIES]
            row = np.concatenate([cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in cells], axis=1)
            label = np.full((h, 80, 3), 255, np.uint8)
            cv2.putText(label, n, (4, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
            rows.append(np.concatenate([label, row], axis=1))
        rows.append(np.full((8, rows[-1].shape[1], 3), 255, np.uint8))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_JPEG_QUALITY, 80]):
        raise SystemExit(f"--sheet {path}: could not write the image (check the folder and the extension: "
                         ".png or .jpg)")
    print(f"wrote {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="", help="comma-separated model specs (default: every shipped single-crop "
                    "recognizer)")
    ap.add_argument("--data_root", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    ap.add_argument("--corruptions", default="", help="comma-separated corruptions (default: all of "
                    "lprnet_tf.data.corrupt.CORRUPTIONS)")
    ap.add_argument("--decoder", default="greedy", choices=("greedy", "beam", "template"))
    ap.add_argument("--sheet", default="", help="also write an image (.png or .jpg) of the first crop of each set "
                    "under every corruption and severity (what the table's columns look like; it shows real "
                    "crops, so keep it out of the repository: the data's licences)")
    ap.add_argument("--sheet_only", action="store_true", help="write --sheet and measure nothing")
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "robustness"),
                    help="output path without extension (.md and .json are written)")
    a = ap.parse_args(argv)
    if a.sheet_only and not a.sheet:
        ap.error("--sheet_only needs --sheet FILE")

    from lprnet_tf.data.corrupt import CORRUPTIONS, corruption_param
    from lprnet_tf.evaluation import reference_sets
    from lprnet_tf.modelio import load_for_inference, pretrained_names
    from lprnet_tf.models import model_kind

    names = [n.strip() for n in a.corruptions.split(",") if n.strip()] or list(CORRUPTIONS)
    for n in names:
        try:
            corruption_param(n, 1)
        except ValueError as e:
            ap.error(f"--corruptions: {e}")
    models = [m.strip() for m in a.models.split(",") if m.strip()] or pretrained_names(kinds=("ctc", "slot", "attn"))
    jobs, crops, seen = [], [], set()  # (spec, model, fmt, label, source, merges); one crop per set for --sheet
    for spec in models:
        model, fmt, _ = load_for_inference(spec)
        if getattr(model, "frames", 0):
            print(f"{spec}: a multi-frame model; skipped (this benchmark reads single crops)")
            continue
        sets = [s for s in reference_sets(fmt, a.data_root, synth_count=1) if not s[0].startswith("synthetic")]
        if not sets:
            print(f"{spec}: no real set of format '{fmt.name}' under {a.data_root}; skipped")
        for label, source, merges in sets:
            if label not in seen:
                seen.add(label)
                crops.append(source.get(0)[0])
            jobs.append((spec, model, fmt, label, source, merges))
    if not jobs:
        raise SystemExit("nothing to measure: no model with a real set of its format")
    if a.sheet:
        contact_sheet(a.sheet, crops, names)
        if a.sheet_only:
            return 0
    new = []
    t0 = time.time()
    for spec, model, fmt, label, source, merges in jobs:
        print(f"{spec} on {label} ({len(source)} crops)", flush=True)
        decoder = a.decoder if model_kind(model) == "ctc" else "greedy"
        res = measure(model, fmt, source, merges, names, decoder)
        new.append({"key": f"{spec} | {label}", "model": spec, "set": label + (" merges " + ",".join(merges)
                                                                                if merges else ""),
                    "count": len(source), "decoder": decoder, "results": res,
                    "params": {n: list(CORRUPTIONS[n][1]) for n in names}})
    results = merge_previous(new, a.out, key="key")
    meta = run_meta("robustness.py", argv)
    lines = [f"# Robustness of the shipped recognizers to fixed corruptions, {dates_line(results)}", "",
             f"`{meta['command']}` ({meta['machine']}; {time.time() - t0:.0f} s). Corruptions: "
             "`lprnet_tf/data/corrupt.py` (parameters at severities 1, 2, 3 in the table; blur lengths in crop "
             "widths, padding in crop heights). Exact match / character accuracy, greedy unless stated; the set's "
             "scoring merges applied.", "",
             "## Summary (exact match)", ""] + summary(results) + ["", "## Per model and set", ""]
    for r in results:
        lines += table(r)
    write_report(a.out, results, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
