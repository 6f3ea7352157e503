"""Multi-frame recognition: IQ-STAN against single-frame LPRNet on the same tracklets (issue 6, item 4).

  python benchmarks/multiframe.py [--iq_stan cn_iq_stan] [--noiq cn_iq_stan_noiq]
      [--lprnet cn_lprnet_basic] [--br_iq_stan br_iq_stan] [--br_lprnet br_lprnet_basic]
      [--data ../shared/data] [--count 500] [--sets cn,br]

Sets (K = 5 frames per track):
- **synthetic CN test tracklets**: ``--count`` tracks of seed 777000777 (no training run uses it),
  rendered once into ``data/tracks_cn_test`` by :func:`lprnet_tf.synth.tracklets.write_tracklet_set`
  (or read from there): smoothly varying pose/blur/exposure with sudden bad frames. They are drawn with
  the plate format saved with the multi-frame model (``--iq_stan``: its ``synth:`` section, the styles it
  was trained on), as ``benchmarks/accuracy.py`` draws each model's held-out set with its own format;
  the CN LPRNet trained on those styles and more (``cn_lprnet_basic``: also the Mono faces and
  plate-font letters of 2026-12-02);
- **real BR groups**: the val split of ``br_openalpr_crops``, groups of repeated captures of one plate
  with at least 2 views, K views per group (``pick=random`` seeded, groups with fewer views cycled:
  track policy ``repeat``).

Rows, all on the same tracks:
- IQ-STAN (``iq_stan_cn.yaml``) and its ablation without the IQ branch (``iq_stan_cn_noiq.yaml``):
  one read per track;
- single-frame LPRNet on each frame, combined four ways: a **random frame** (seeded), the **oracle
  best frame** (the frame with the best ground-truth quality: ``1 - degradation`` of the renderer for
  synthetic tracks, the no-reference score PQS for real ones), the **most confident** frame, and
  **every frame with a character-position majority vote** (the most common length, then per position
  the character with the highest summed confidence); plus **any frame correct** (an upper bound no
  selector reaches).
Also the IQ branch's LCC/SROCC against the quality ground truth (per frame and per patch).
Writes benchmarks/results/multiframe.md and .json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from results_io import dates_line, merge_previous, set_date  # noqa: E402

K = 5


def majority_vote(preds: list, confs: list) -> str:
    """Character-position vote over frame readings: the most common length (ties: the larger summed
    confidence), then per position the character with the largest summed confidence."""
    by_len = collections.defaultdict(float)
    for p, c in zip(preds, confs):
        by_len[len(p)] += c + 1e-6
    n = max(by_len, key=lambda k: by_len[k])
    out = []
    for i in range(n):
        votes = collections.defaultdict(float)
        for p, c in zip(preds, confs):
            if len(p) == n:
                votes[p[i]] += c + 1e-6
        out.append(max(votes, key=lambda ch: votes[ch]))
    return "".join(out)


def frame_readings(model, fmt, tracks) -> tuple:
    """Single-frame model on every frame of every track -> (preds (N, K) of str, confs (N, K))."""
    from lprnet_tf.data.pipeline import ArraySource
    from lprnet_tf.evaluation import predict_logits
    from lprnet_tf.decoding import decode
    from lprnet_tf.models import model_kind

    frames = [im for t in tracks for im in t.images()]
    texts = [t.text for t in tracks for _ in t.frames]
    logits = predict_logits(model, ArraySource(frames, texts), fmt, batch_size=128)
    preds, conf = decode(logits, fmt, "greedy", kind=model_kind(model))
    k = len(tracks[0].frames)
    return np.asarray(preds, dtype=object).reshape(-1, k), np.asarray(conf).reshape(-1, k)


def single_frame_rows(texts, preds, confs, truth_quality, seed: int = 0) -> dict:
    """Accuracy of the frame selectors (see the module docstring) -> {row: predictions}."""

    rng = np.random.default_rng(seed)
    n, k = preds.shape
    pick_random = rng.integers(0, k, n)
    oracle = np.argmax(truth_quality, axis=1)
    confident = np.argmax(confs, axis=1)
    rows = {
        "LPRNet, random frame": [preds[i, pick_random[i]] for i in range(n)],
        "LPRNet, oracle best-quality frame": [preds[i, oracle[i]] for i in range(n)],
        "LPRNet, most confident frame": [preds[i, confident[i]] for i in range(n)],
        "LPRNet, every frame + majority vote": [majority_vote(list(preds[i]), list(confs[i])) for i in range(n)],
    }
    rows["LPRNet, any frame correct (upper bound)"] = [texts[i] if texts[i] in set(preds[i]) else preds[i, oracle[i]]
                                                       for i in range(n)]
    return rows


def multiframe_rows(spec: str, tracks, label: str, fmt_name: str | None = None) -> tuple:
    """An IQ-STAN model on the tracks -> ({label: predictions}, quality metrics, frame weights mean)."""
    from lprnet_tf.data.pipeline import TrackletSource
    from lprnet_tf.evaluation import predict_outputs, quality_metrics, score
    from lprnet_tf.modelio import load_for_inference

    model, fmt, _ = load_for_inference(spec, fmt_name)
    src = TrackletSource(tracks, model.frames)
    out = predict_outputs(model, src, fmt, batch_size=64)
    _, preds, _ = score(out["logits"], src.texts(), fmt, "greedy", kind="attn")
    return {label: preds}, quality_metrics(out, fmt), out["frame_weights"]


def track_format(model_spec: str):
    """The plate format the synthetic test tracks are drawn with: the one saved with ``model_spec`` (a
    multi-frame model or quality network trained on synthetic CN tracklets), its ``synth:`` section as
    that model saw it."""
    from lprnet_tf.modelio import resolve_model

    return resolve_model(model_spec)[1]


def synthetic_tracks(fmt, count: int, k: int = K):
    """``count`` held-apart synthetic test tracks of ``k`` frames (seed 777000777), rendered once into
    ``data/tracks_cn_test`` (``data/tracks_cn_test{k}`` for k != 5) -> (tracks, 1 - degradation per frame)."""
    from lprnet_tf.data.tracklets import read_tracklets
    from lprnet_tf.evaluation import HELD_OUT_SYNTH_SEED
    from lprnet_tf.synth.tracklets import write_tracklet_set

    folder = os.path.join(REPO, "data", "tracks_cn_test" + ("" if k == K else str(k)))
    csv_path = os.path.join(folder, "labels.csv")
    if not os.path.isfile(csv_path) or sum(1 for _ in open(csv_path, encoding="utf-8")) - 1 < count * k:
        print(f"rendering {count} test tracklets of {k} frames into {folder} (seed {HELD_OUT_SYNTH_SEED})", flush=True)
        write_tracklet_set(fmt, folder, count, k, HELD_OUT_SYNTH_SEED, split="test")
    tracks, _ = read_tracklets(folder, fmt, k=k)
    tracks = tracks[:count]
    quality = np.asarray([[1.0 - float(p["degradation"]) for p in t.params] for t in tracks])
    return tracks, quality


def br_tracks(fmt, data_root: str):
    from lprnet_tf.evaluation import multi_view_tracks
    from lprnet_tf.quality import quality_score

    tracks = multi_view_tracks(os.path.join(data_root, "br_openalpr_crops"), fmt, "val", K)
    quality = np.asarray([[quality_score(im) for im in t.images()] for t in tracks])
    return tracks, quality


def table(rows: dict, texts, fmt, merges) -> list:
    from lprnet_tf.metrics import plate_metrics

    out = []
    for label, preds in rows.items():
        m = plate_metrics(texts, preds, merges=merges, max_positions=fmt.max_length)
        out.append((label, m))
        print(f"  {label:44s} exact={m['accuracy']:.4f} no-first={m['accuracy_no_first']:.4f} "
              f"char={m['char_accuracy']:.4f}", flush=True)
    return out


def run_set(name, tracks, quality, fmt, lprnet_spec, iq_specs, merges) -> dict:
    from lprnet_tf.modelio import load_for_inference, model_exists

    texts = [t.text for t in tracks]
    print(f"{name}: {len(tracks)} tracks x {K} frames", flush=True)
    rows, extra = {}, {}
    for label, spec in iq_specs:
        if model_exists(spec):
            r, q, w = multiframe_rows(spec, tracks, label)
            rows.update(r)
            from lprnet_tf.metrics import srocc

            # how far the temporal attention moves from uniform, and whether it follows frame quality
            extra[label] = {"quality": q, "weight_spread": float((w.max(1) - w.min(1)).mean()),
                            "weight_max": float(w.max()),
                            "weight_vs_quality_srocc": srocc(w.ravel(), np.asarray(quality).ravel())}
        else:
            print(f"  (no model at {spec!r}: row {label!r} left out)", flush=True)
    lpr, fmt_l, _ = load_for_inference(lprnet_spec)
    preds, confs = frame_readings(lpr, fmt_l, tracks)
    rows.update(single_frame_rows(texts, preds, confs, quality))
    return {"set": name, "tracks": len(tracks), "rows": table(rows, texts, fmt, merges), "extra": extra}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iq_stan", default="cn_iq_stan", help="IQ-STAN for CN (run dir, .keras or shipped name)")
    ap.add_argument("--noiq", default="cn_iq_stan_noiq", help="the ablation without the IQ branch")
    ap.add_argument("--lprnet", default="cn_lprnet_basic", help="single-frame CN recognizer")
    ap.add_argument("--br_iq_stan", default="br_iq_stan", help="IQ-STAN for BR")
    ap.add_argument("--br_lprnet", default="br_lprnet_basic", help="single-frame BR recognizer")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    ap.add_argument("--count", type=int, default=500, help="synthetic test tracks")
    ap.add_argument("--sets", default="cn,br", help="cn (synthetic CN tracklets), br (real BR groups); the "
                    "tables of sets not measured are kept from OUT.json with their dates")
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "multiframe"))
    a = ap.parse_args()

    from lprnet_tf.vocab import load_plate_format

    sets = [k for k in a.sets.split(",") if k]
    if not sets or set(sets) - {"cn", "br"}:
        raise SystemExit(f"--sets: a comma-separated list of cn, br; got {a.sets!r}")
    results = []
    if "cn" in sets:
        cn = load_plate_format("cn")
        tracks, quality = synthetic_tracks(track_format(a.iq_stan), a.count)
        results.append(run_set("synthetic CN test tracklets (seed 777000777)", tracks, quality, cn, a.lprnet,
                               [("IQ-STAN", a.iq_stan), ("IQ-STAN without IQ branch (uniform attention)", a.noiq)], []))
    if "br" in sets and os.path.isdir(os.path.join(a.data, "br_openalpr_crops")):
        br = load_plate_format("br")
        tracks, quality = br_tracks(br, a.data)
        results.append(run_set("real BR groups (val, >= 2 views, K=5 cycled)", tracks, quality, br, a.br_lprnet,
                               [("IQ-STAN", a.br_iq_stan)], list(br.merges)))
    elif "br" in sets:
        print(f"no {a.data}/br_openalpr_crops: BR left out")
    write(merge_previous(results, a.out), a.out)  # sets not measured now keep their tables and dates


def write(results: list, out: str):
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump([{**r, "rows": [(label, {k: m[k] for k in ("count", "accuracy", "acc1", "char_accuracy",
                                                              "accuracy_no_first")}) for label, m in r["rows"]]}
                   for r in results], f, indent=1, ensure_ascii=False)
    with open(out + ".md", "w", encoding="utf-8") as f:
        f.write(f"Multi-frame recognition, `python benchmarks/multiframe.py`, {dates_line(results)}, "
                f"greedy decoding, exact match on whole tracks (K = {K} frames).\n\n")
        for r in results:
            f.write(f"**{r['set']}** ({r['tracks']} tracks{set_date(r, results)})\n\n| reader | exact | acc-1 | char | no-first |\n"
                    "|---|---|---|---|---|\n")
            for label, m in r["rows"]:
                f.write(f"| {label} | {m['accuracy']:.3f} | {m['acc1']:.3f} | {m['char_accuracy']:.3f} | "
                        f"{m['accuracy_no_first']:.3f} |\n")
            for label, e in r["extra"].items():
                q = e["quality"]
                if q:
                    f.write(f"\n{label} quality branch vs ground truth: LCC {q['quality_lcc_frame']:.3f} / SROCC "
                            f"{q['quality_srocc_frame']:.3f} per frame, LCC {q['quality_lcc_patch']:.3f} / SROCC "
                            f"{q['quality_srocc_patch']:.3f} per patch.")
                f.write(f"\n{label} temporal attention: mean (max - min) frame weight per track "
                        f"{e['weight_spread']:.4f} (uniform = 0; largest weight seen {e['weight_max']:.3f}); SROCC of "
                        f"frame weights vs ground-truth frame quality {e['weight_vs_quality_srocc']:.3f}.\n")
            f.write("\n")
    print(f"wrote {out}.md and .json")


if __name__ == "__main__":
    main()
