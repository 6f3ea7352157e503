"""Low-resolution plates: LPRNet, MTGAN super-resolution + LPRNet and the multi-task CNN (without low-res
training crops, with bicubic ones, with DGM ones) on the same high- and low-resolution test crops (issue 8,
item 6; ``papers/multitask-lowres-lpr.md`` Tables 2-3, ``papers/mtgan.md``).

  python benchmarks/lowres.py [--data ../shared/data] [--lowres data/lowres] [--formats br,cn]
      [--br_lprnet br_lprnet_basic] [--br_mtgan runs/mtgan_br/last.keras]
      [--br_lprnet_lowres br_lprnet_lowres] [--br_lprnet_sr runs/lprnet_br_sr/last.keras]
      [--br_multitask runs/multitask_br_more/last.keras]
      [--br_multitask_bicubic runs/multitask_br_bicubic/last.keras]
      [--br_multitask_dgm runs/multitask_br_dgm/last.keras] [--cn_lprnet cn_lprnet_basic] [--cn_mtgan ...]

Test sets: the real validation crops at full resolution (``HR``: ``br_openalpr_crops`` split val,
``cn_ccpd_like_1000``) and the same crops area-downscaled to a crop height of 16, 12 and 8 pixels by
``datasets/make_lowres.py --standard`` (made here into ``--lowres`` when missing; deterministic). Every
reader enlarges a small crop to its own input with the runtime's rule (``lprnet_tf.runtime.fit_crop``).

Readers (a row is left out when its model is missing, and the table says so). The trained models are read
from their runs' ``last.keras`` (the last step, never the checkpoint chosen on validation: the validation
crops are the test crops here):
- **LPRNet**: the shipped CTC recognizer on the crop;
- **LPRNet fine-tuned on low-res crops**: the same LPRNet fine-tuned with two thirds of its training crops
  area-downscaled (``configs/experiments/lprnet_br_lowres_finetune.yaml``, shipped as ``br_lprnet_lowres``;
  CN: ``lprnet_cn_lowres_finetune.yaml`` on synthetic plates, ``runs/lprnet_cn_lowres``): the control of
  the next-but-one row;
- **MTGAN-SR + LPRNet**: the MTGAN generator super-resolves the crop laid out at 47 x 12 to 94 x 24, then
  the same LPRNet reads it;
- **MTGAN-SR + LPRNet fine-tuned on SR crops**: the same generator, read by that LPRNet fine-tuned on the
  generator's output (``lprnet_{br,cn}_sr_finetune.yaml``, ``data.super_resolve``; same steps as the control);
- the same two rows with the generator option ``input_skip: bilinear`` (ours: the generator learns the
  correction to bilinear upsampling; ``mtgan_{br,cn}.yaml --set model.options.input_skip=bilinear``, run
  ``mtgan_{br,cn}_skip``, and its SR fine-tune ``lprnet_{br,cn}_sr_skip``);
- the low-resolution LPRNet (row 2) trained 1,500 more steps on low-res crops
  (``lprnet_br_lowres_finetune.yaml --schedule more``, run ``lprnet_br_lowres_more``), and the same 1,500 steps
  on the skip generator's output (``lprnet_br_sr_finetune.yaml --schedule from_lowres``, run
  ``lprnet_br_sr_lowres``): does super-resolution add anything once the recognizer knows small crops?
- **multi-task CNN** (Table 1, 120 x 40): one model trained on the HR training crops with character
  permutation (``multitask_br.yaml --schedule cpu``), then three runs of the same 1,000 more steps from it:
  HR crops only (``--schedule cpu_more``), a third of the crops bicubic-downscaled
  (``multitask_br_bicubic.yaml``), a third rendered by the DGM (``multitask_br_dgm.yaml``, ``br_dgm``).
Greedy decoding (per slot for the multi-task CNN), exact match and character accuracy, the format's
scoring merges. Also the PSNR of each generator against plain interpolation: each validation crop's
low-resolution pair (the MTGAN's training rule: area-downscaled to a crop height of 12 or 8 px, laid out at
the generator's H/2 x W/2 input) enlarged back to H x W by bilinear / bicubic interpolation or the
generator, against the crop laid out at H x W. Writes ``benchmarks/results/lowres.md`` and ``.json`` (with
the number-of-correct-characters histograms).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from results_io import dates_line, set_date  # noqa: E402

HEIGHTS = (16, 12, 8)
SETS = {"br": ("br_openalpr_crops", "br_val"), "cn": ("cn_ccpd_like_1000", "cn_val")}
READERS = (  # (row label, flag suffix of the recognizer, flag suffix of the super-resolver or None)
    ("LPRNet", "lprnet", None),
    ("LPRNet fine-tuned on low-res crops", "lprnet_lowres", None),
    ("MTGAN-SR + LPRNet", "lprnet", "mtgan"),
    ("MTGAN-SR + LPRNet fine-tuned on SR crops", "lprnet_sr", "mtgan"),
    ("MTGAN-SR with bilinear input skip (ours) + LPRNet", "lprnet", "mtgan_skip"),
    ("MTGAN-SR with bilinear input skip + LPRNet fine-tuned on its SR crops", "lprnet_sr_skip", "mtgan_skip"),
    ("LPRNet fine-tuned on low-res crops, 1,500 more low-res steps", "lprnet_lowres_more", None),
    ("MTGAN-SR with bilinear input skip + the low-res LPRNet fine-tuned on its SR crops", "lprnet_sr_lowres",
     "mtgan_skip"),
    ("multi-task CNN, HR training crops only", "multitask", None),  # Table 3 "without samples from DGM"
    ("multi-task CNN + 1/3 bicubic low-res crops", "multitask_bicubic", None),
    ("multi-task CNN + 1/3 DGM low-res crops", "multitask_dgm", None),
)
MODEL_KEYS = tuple(dict.fromkeys(k for _, rec, sr in READERS for k in (rec, sr) if k))  # one --FMT_KEY flag each


def test_sets(fmt_name: str, data_root: str, lowres_root: str) -> list:
    """[(column label, folder or None, split)] : HR then each low-resolution height; builds the
    low-resolution folders with the standard rule when they are missing."""
    from lprnet_tf.data.lowres import standard_sets, write_lowres_sets
    from lprnet_tf.evaluation import REFERENCE_SETS

    folder, name = SETS[fmt_name]
    src = os.path.join(data_root, folder)
    if not os.path.isdir(src):
        return []
    split = REFERENCE_SETS[folder][1]
    missing = [h for h in HEIGHTS if not os.path.isfile(os.path.join(lowres_root, f"{name}_h{h}", "labels.csv"))]
    if missing:
        spec = next(s for s in standard_sets(data_root) if s[0] == name)
        write_lowres_sets(spec[1], spec[2], lowres_root, name, missing, split=spec[3], progress=False)
    cols = [("HR", src, split)]
    cols += [(f"{h} px", os.path.join(lowres_root, f"{name}_h{h}"), None) for h in HEIGHTS]
    return cols


def _shown(spec: str | None) -> str | None:
    """A model spec as written into the results: paths inside the repository relative to it."""
    if spec and os.path.isabs(spec) and spec.startswith(REPO + os.sep):
        return os.path.relpath(spec, REPO)
    return spec


_SUPER_RESOLVERS: dict = {}  # (spec, H, W) -> SuperResolver: each generator loaded once per run


def super_resolver(spec: str, fmt, what: str = "super-resolver"):
    """:func:`lprnet_tf.data.lowres.mtgan_super_resolver` of ``spec`` for recognizers of ``fmt``, loaded
    once and shared by the SR rows and the PSNR table."""
    from lprnet_tf.data.lowres import mtgan_super_resolver

    key = (spec, fmt.height, fmt.width)
    if key not in _SUPER_RESOLVERS:
        _SUPER_RESOLVERS[key] = mtgan_super_resolver(spec, fmt, what)
    return _SUPER_RESOLVERS[key]


PSNR_HEIGHTS = (12, 8)  # LR crop heights of the PSNR table (the MTGAN trains on 8-12)


def sr_psnr(fmt_name: str, specs: dict, data_root: str) -> dict:
    """``{reader: {"12 px": dB, "8 px": dB}}``: PSNR (mean over the HR validation crops) of bilinear and
    bicubic interpolation and of each MTGAN generator in ``specs`` that exists, each enlarging the crop's
    low-resolution pair exactly as the MTGAN is trained and fed (:class:`lprnet_tf.data.lowres.PairedSource`:
    the crop area-downscaled to that height, laid out at H/2 x W/2) back to the format's H x W."""
    import cv2
    import numpy as np

    from lprnet_tf.data.lowres import PairedSource
    from lprnet_tf.data.pipeline import open_source
    from lprnet_tf.evaluation import REFERENCE_SETS
    from lprnet_tf.metrics import psnr
    from lprnet_tf.modelio import model_exists
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format(fmt_name)
    folder = SETS[fmt_name][0]
    src = open_source(os.path.join(data_root, folder), fmt, split=REFERENCE_SETS[folder][1])
    readers = {"bilinear interpolation": cv2.INTER_LINEAR, "bicubic interpolation": cv2.INTER_CUBIC}
    for label, key in (("MTGAN generator", "mtgan"), ("MTGAN generator, bilinear input skip", "mtgan_skip")):
        if model_exists(specs.get(key)):
            readers[f"{label} ({_shown(specs[key])})"] = super_resolver(specs[key], fmt)
    crops = [src.get(i)[0] for i in range(len(src))]  # read once, paired at each height
    out = {name: {} for name in readers}
    for h in PSNR_HEIGHTS:
        pairs = PairedSource(src, fmt, heights=(h,), lr_size=(fmt.height // 2, fmt.width // 2))
        hr, lr = zip(*[pairs.pair(image, i)[:2] for i, image in enumerate(crops)])
        ref = np.stack(hr).astype(np.float32) / 255.0
        for name, how in readers.items():
            if isinstance(how, int):  # an OpenCV interpolation
                up = [cv2.resize(x.astype(np.float32) / 255.0, (fmt.width, fmt.height), interpolation=how) for x in lr]
            else:
                up = how.super_resolve_float(list(lr))
            err = np.mean((np.clip(np.asarray(up, np.float32), 0, 1) - ref) ** 2, axis=(1, 2, 3))
            out[name][f"{h} px"] = float(np.mean(psnr(err)))
    return out


def read_set(reader: dict, folder: str, split: str | None, merges) -> dict:
    """One reader on one test folder -> metrics (exact, char accuracy, correct-characters histogram)."""
    from lprnet_tf.data.pipeline import ArraySource, open_source
    from lprnet_tf.evaluation import predict_logits, score

    fmt = reader["fmt"]
    src = open_source(folder, fmt, split=split)
    texts = src.texts()
    if reader["sr"] is not None:  # super-resolve every crop, then the recognizer reads the SR images
        sr = reader["sr"].super_resolve([src.get(i)[0] for i in range(len(src))])  # batched by the backend
        src = ArraySource(list(sr), texts)
    logits = predict_logits(reader["model"], src, fmt)
    m, _, _ = score(logits, texts, fmt, "greedy", merges, kind=reader["kind"])
    return m


def load_reader(spec: str, sr_spec: str | None = None) -> dict:
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.modelio import load_for_inference
    from lprnet_tf.models import model_kind

    model, fmt, _ = load_for_inference(spec)
    sr = None
    if sr_spec:
        try:
            sr = super_resolver(sr_spec, fmt, f"the super-resolver of {spec}:")
        except DataError as e:
            raise SystemExit(str(e)) from None
    return {"model": model, "fmt": fmt, "kind": model_kind(model), "sr": sr}


def run_format(fmt_name: str, specs: dict, data_root: str, lowres_root: str) -> dict | None:
    from lprnet_tf.modelio import model_exists
    from lprnet_tf.vocab import load_plate_format

    cols = test_sets(fmt_name, data_root, lowres_root)
    if not cols:
        print(f"skipped {fmt_name}: {SETS[fmt_name][0]} not under {data_root}", file=sys.stderr)
        return None
    merges = list(load_plate_format(fmt_name).merges)
    rows, missing = {}, []
    for label, rec_key, sr_key in READERS:
        needed = [specs.get(rec_key)] + ([specs.get(sr_key)] if sr_key else [])
        shown = " + ".join(_shown(s) or "no model given" for s in needed[::-1])
        if not all(model_exists(s) for s in needed):
            missing.append(f"{label} ({shown})")
            continue
        reader = load_reader(specs[rec_key], specs[sr_key] if sr_key else None)
        rows[label] = {"model": shown, "sets": {}}
        for col, folder, split in cols:
            t0 = time.time()
            m = read_set(reader, folder, split, merges)
            rows[label]["sets"][col] = {k: m[k] for k in ("accuracy", "char_accuracy", "count", "correct_chars_histogram")
                                        if k in m}
            print(f"{fmt_name} {label:48s} {col:6s} exact {m['accuracy']:.3f} char {m['char_accuracy']:.3f} "
                  f"({time.time() - t0:.1f} s)", flush=True)
    psnr = sr_psnr(fmt_name, specs, data_root)
    for name, by_height in psnr.items():
        print(f"{fmt_name} PSNR {name}: " + ", ".join(f"{h} {v:.2f} dB" for h, v in by_height.items()), flush=True)
    return {"format": fmt_name, "set": SETS[fmt_name][0], "columns": [c[0] for c in cols],
            "count": rows[next(iter(rows))]["sets"]["HR"].get("count") if rows else 0,
            "rows": rows, "missing": missing, "merges": merges, "psnr": psnr}


def write(results: list, out: str):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    with open(out + ".md", "w", encoding="utf-8") as f:
        f.write(f"Low-resolution plates, `python benchmarks/lowres.py`, {dates_line(results)}, 2-core CPU; "
                f"greedy decoding; exact match / character accuracy; crops area-downscaled to the crop height "
                f"shown (`datasets/make_lowres.py --standard`).\n\n")
        for r in results:
            f.write(f"**{r['set']}** (validation crops, {r['count']} per column; merges {r['merges'] or 'none'}"
                    f"{set_date(r, results)})\n\n")
            f.write("| reader | " + " | ".join(r["columns"]) + " |\n|---|" + "---|" * len(r["columns"]) + "\n")
            for label, row in r["rows"].items():
                cells = [f"{row['sets'][c]['accuracy']:.3f} / {row['sets'][c]['char_accuracy']:.3f}"
                         for c in r["columns"]]
                f.write(f"| {label}" + (f" (kept, measured {row.get('date')})" if row.get("kept") else "") + " | "
                        + " | ".join(cells) + " |\n")
            if "MTGAN-SR + LPRNet" in r["rows"]:
                f.write("\nThe MTGAN generator reads every crop laid out at 47 x 12 (its LR input), so its HR column is the "
                        "full crop squeezed to 47 x 12 (more horizontal detail than a 12-px crop with its aspect kept), "
                        "then super-resolved to 94 x 24.\n")
            if r.get("psnr"):
                heights = list(next(iter(r["psnr"].values())))
                f.write("\nSuper-resolution alone: PSNR (dB) of each way of enlarging the crops' low-resolution "
                        "pairs (area-downscaled to the height shown, laid out at the generator's H/2 x W/2 input, "
                        "as the MTGAN is trained) back to the format's size, against the HR crop.\n\n"
                        "| enlarged by | " + " | ".join(heights) + " |\n|---|" + "---|" * len(heights) + "\n")
                for name, by_height in r["psnr"].items():
                    f.write(f"| {name} | " + " | ".join(f"{by_height[h]:.2f}" for h in heights) + " |\n")
            if any(row.get("kept") for row in r["rows"].values()):
                f.write("\nRows marked *kept* were not re-measured in this run: their models (the run folders "
                        "named in `benchmarks/lowres.py`, trained by the README's commands, not shipped) are not in this "
                        "checkout, so they are kept from the previous results with the models of that date (an SR row "
                        "with the LPRNet of that date).\n")
            if r["missing"]:
                f.write("\nNot measured (model not trained or not found): " + "; ".join(r["missing"]) + ".\n")
            f.write("\n")
    print(f"wrote {out}.md and .json")


def main():
    from lprnet_tf.modelio import model_exists

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    p.add_argument("--lowres", default=os.path.join(REPO, "data", "lowres"),
                   help="folder of the low-resolution test sets (built here when missing)")
    defaults = {}
    for fmt_name in SETS:  # the shipped LPRNet; the other models: last.keras of the run directories of the README
        runs = {"lprnet_lowres": f"lprnet_{fmt_name}_lowres", "lprnet_sr": f"lprnet_{fmt_name}_sr",
                "mtgan": f"mtgan_{fmt_name}", "mtgan_skip": f"mtgan_{fmt_name}_skip",
                "lprnet_sr_skip": f"lprnet_{fmt_name}_sr_skip", "multitask": f"multitask_{fmt_name}_more",
                "lprnet_lowres_more": f"lprnet_{fmt_name}_lowres_more",
                "lprnet_sr_lowres": f"lprnet_{fmt_name}_sr_lowres",
                "multitask_bicubic": f"multitask_{fmt_name}_bicubic", "multitask_dgm": f"multitask_{fmt_name}_dgm"}
        defaults[fmt_name] = {"lprnet": f"{fmt_name}_lprnet_basic",
                              **{k: os.path.join(REPO, "runs", v, "last.keras") for k, v in runs.items()}}
        if model_exists(f"{fmt_name}_lprnet_lowres"):  # shipped (its run's last step, lprnet-package)
            defaults[fmt_name]["lprnet_lowres"] = f"{fmt_name}_lprnet_lowres"
    for fmt_name, d in defaults.items():
        for key, spec in d.items():
            p.add_argument(f"--{fmt_name}_{key}", default=spec, help=f"model for the '{key}' row of {fmt_name} "
                           f"(shipped name, run directory or .keras; default {_shown(spec)})")
    p.add_argument("--formats", default="br,cn", help="comma-separated: br, cn")
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "lowres"))
    a = p.parse_args()
    results = []
    for fmt_name in a.formats.split(","):
        specs = {key: getattr(a, f"{fmt_name}_{key}") for key in MODEL_KEYS}
        r = run_format(fmt_name, specs, a.data, a.lowres)
        if r:
            results.append(r)
    if not results:
        raise SystemExit(f"no test set found under {a.data}")
    write(keep_unmeasured(results, a.out), a.out)


def keep_unmeasured(results: list, out: str) -> list:
    """Rows whose model is not here now (the run folders are not shipped) are kept from ``out.json`` with
    the date they were measured; formats not measured now are kept whole (``results_io``)."""
    from results_io import load_previous, merge_previous, today

    previous = {r["set"]: r for r in load_previous(out)}
    for r in results:
        r["date"] = today()
        for row in r["rows"].values():
            row["date"] = r["date"]
        old = previous.get(r["set"])
        if old is None:
            continue
        unmeasured = [label for label, _, _ in READERS if label not in r["rows"]]
        for label in unmeasured:
            if label in old["rows"]:
                r["rows"][label] = dict(old["rows"][label], date=old["rows"][label].get("date", old["date"]), kept=True)
        # a "missing" entry is "LABEL (model)": drop those whose row is now kept
        r["missing"] = [m for m in r["missing"] if not any(m.startswith(label + " (") for label in r["rows"])]
        r["rows"] = {label: r["rows"][label] for label, _, _ in READERS if label in r["rows"]}
        # the PSNR of a generator not here now ("LABEL (model)" keys): kept too, its name saying so
        measured = {name.split(" (")[0] for name in r.get("psnr", {})}
        for name, by_height in (old.get("psnr") or {}).items():
            label = name.split(" (")[0]
            if label not in measured:
                date = old.get("date", "?")
                kept = name if "kept, measured" in name else f"{name} (kept, measured {date})"
                r.setdefault("psnr", {})[kept] = by_height
    return merge_previous(results, out)


if __name__ == "__main__":
    main()
