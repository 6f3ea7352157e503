"""Quality-aware stream recognition (EQ-LPR, ``papers/eq-lpr.md``): Algorithm 1 with the quality
networks P, S and E against recognizing every frame, on the same tracklets (issue 7, item 4).

  python benchmarks/stream.py [--recognizer cn_lprnet_basic] [--p runs/eq_lpr_p_cn] [--s runs/eq_lpr_s_cn]
      [--e runs/eq_lpr_e_cn] [--count 500] [--timing_reps 200]

Set: the synthetic CN test tracklets of ``benchmarks/multiframe.py`` (seed 777000777, K = 5 frames,
``data/tracks_cn_test``), each track streamed frame by frame in order.
Rows (accuracy = exact match of the track's final plate; calls = recognizer runs per track):
- Algorithm 1 (:class:`lprnet_tf.stream.StreamRecognizer`) with P, S, E, and with the no-reference
  score PQS (:mod:`lprnet_tf.quality`) as a training-free quality function;
- recognize every frame + character-position majority vote (K calls);
- the oracle best frame (the frame whose recognizer α, eq. 3, is highest: it needs every frame
  recognized, so it is an upper bound of what a selector can do with this recognizer);
- the last frame (1 call).
Quality networks are also scored against α on every frame (MAE, SROCC). Cost per frame on this CPU:
batch-1 median latency of each network and of the recognizer (compiled ``predict_on_batch``-free
calls, side by side in one run), and end-to-end ms per frame of each row.
Writes benchmarks/results/stream.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))


def batch1_ms(fn, x, reps: int) -> float:
    """Median ms of ``fn(x)`` over ``reps`` calls after 5 warm-up calls (speed.py's timer)."""
    from speed import _timeit

    return 1000.0 * float(np.median(_timeit(lambda: fn(x), reps)))


def compiled(model):
    """Batch-1 inference of a Keras model as a compiled ``tf.function`` (as benchmarks/speed.py times it)."""
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False), jit_compile=False)
    return lambda x: tf.nest.map_structure(lambda v: v.numpy(), fn(tf.constant(x)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recognizer", default="cn_lprnet_basic")
    ap.add_argument("--p", default="runs/eq_lpr_p_cn")
    ap.add_argument("--s", default="runs/eq_lpr_s_cn")
    ap.add_argument("--e", default="runs/eq_lpr_e_cn")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--timing_reps", type=int, default=200)
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "stream"))
    a = ap.parse_args()

    import keras

    from lprnet_tf.data.pipeline import to_model_input
    from lprnet_tf.decoding import decode
    from lprnet_tf.metrics import plate_metrics, srocc
    from lprnet_tf.modelio import load_for_inference
    from lprnet_tf.models.eq_lpr import recognition_quality
    from lprnet_tf.quality import quality_score
    from lprnet_tf.stream import StreamRecognizer
    from multiframe import majority_vote, synthetic_tracks
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn")
    tracks, _ = synthetic_tracks(fmt, a.count)
    texts = [t.text for t in tracks]
    rec, rfmt, _ = load_for_inference(a.recognizer)

    def prep(crops):
        return np.stack([to_model_input(c, rfmt) for c in crops]).astype(np.float32) / 255.0

    counter = {"calls": 0}

    def recognize(crops):
        counter["calls"] += len(crops)
        logits = np.asarray(rec.predict_on_batch(prep(crops)))
        return decode(logits, rfmt, "greedy")

    # every frame once: readings, confidences and alpha (the oracle and the majority vote use them)
    frames = [t.images() for t in tracks]
    flat = [im for fr in frames for im in fr]
    logits = np.concatenate([np.asarray(rec.predict_on_batch(prep(flat[i:i + 256]))) for i in range(0, len(flat), 256)])
    preds, confs = decode(logits, rfmt, "greedy")
    alpha = keras.ops.convert_to_numpy(recognition_quality(logits))
    k = len(frames[0])
    preds = np.asarray(preds, dtype=object).reshape(-1, k)
    confs, alpha = np.asarray(confs).reshape(-1, k), alpha.reshape(-1, k)

    results = {"tracks": len(tracks), "frames_per_track": k, "rows": [], "quality": {}, "ms": {}}
    x1 = prep(flat[:1])
    results["ms"]["recognizer"] = batch1_ms(compiled(rec), x1, a.timing_reps)

    def add_row(label, final, calls, ms_per_frame):
        m = plate_metrics(texts, final, max_positions=fmt.max_length)
        results["rows"].append({"row": label, "accuracy": m["accuracy"], "accuracy_no_first": m["accuracy_no_first"],
                                "calls_per_track": calls, "call_fraction": calls / k, "ms_per_frame": ms_per_frame})
        print(f"{label:44s} exact={m['accuracy']:.4f} calls/track={calls:.2f} ({calls / k:.0%}) "
              f"ms/frame={ms_per_frame:.2f}", flush=True)

    quality_fns = {"PQS (no-reference, no training)": (lambda crops: np.asarray([quality_score(c) for c in crops]), None)}
    for v, spec in (("P", a.p), ("S", a.s), ("E", a.e)):
        if not os.path.exists(spec):
            print(f"(no model at {spec}: EQ-LPR-{v} left out)", flush=True)
            continue
        net, _, _ = load_for_inference(spec)
        quality_fns[f"EQ-LPR-{v}"] = ((lambda n: lambda crops: np.asarray(n.predict_on_batch(prep(crops))["quality"]))(net), net)

    for label, (qfn, net) in quality_fns.items():
        q_ms = (batch1_ms(compiled(net), x1, a.timing_reps) if net is not None
                else batch1_ms(lambda x: quality_score(flat[0]), x1, max(20, a.timing_reps // 10)))
        results["ms"][label] = q_ms
        scores = np.concatenate([qfn(fr) for fr in frames]).reshape(-1, k)
        results["quality"][label] = {"mae": float(np.abs(scores - alpha).mean()) if net is not None else None,
                                     "srocc": srocc(scores.ravel(), alpha.ravel())}
        counter["calls"] = 0
        sr = StreamRecognizer(lambda crops, s=iter(scores.ravel()): np.asarray([next(s) for _ in crops]), recognize)
        final = []
        for fr in frames:
            result, _ = sr.run_track(fr)
            final.append(result.plate)
        calls = counter["calls"] / len(frames)
        add_row(f"Algorithm 1 + {label}", final, calls, q_ms + calls / k * results["ms"]["recognizer"])
    rec_ms = results["ms"]["recognizer"]
    add_row("every frame + majority vote", [majority_vote(list(p), list(c)) for p, c in zip(preds, confs)], k, rec_ms)
    best = alpha.argmax(1)
    add_row("oracle best frame (highest alpha)", [preds[i, best[i]] for i in range(len(tracks))], k, rec_ms)
    add_row("last frame", list(preds[:, -1]), 1, rec_ms / k)
    write(results, a.out)


def write(results: dict, out: str):
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    ms = results["ms"]
    with open(out + ".md", "w", encoding="utf-8") as f:
        f.write(f"Stream recognition (EQ-LPR), `python benchmarks/stream.py`, {time.strftime('%Y-%m-%d')}: "
                f"{results['tracks']} synthetic CN test tracklets of {results['frames_per_track']} frames streamed in "
                f"order, recognizer cn_lprnet_basic (greedy). ms: batch-1 median on this 2-core CPU, one run.\n\n")
        f.write("| reader | exact | no-first | recognizer calls / track | share of frames | ms / frame |\n"
                "|---|---|---|---|---|---|\n")
        for r in results["rows"]:
            f.write(f"| {r['row']} | {r['accuracy']:.3f} | {r['accuracy_no_first']:.3f} | {r['calls_per_track']:.2f} | "
                    f"{r['call_fraction']:.0%} | {r['ms_per_frame']:.2f} |\n")
        f.write("\n| quality function | MAE vs alpha | SROCC vs alpha | ms / frame (batch 1) | share of the "
                "recognizer's ms |\n|---|---|---|---|---|\n")
        for label, q in results["quality"].items():
            mae = f"{q['mae']:.3f}" if q["mae"] is not None else "n/a (not trained on alpha)"
            f.write(f"| {label} | {mae} | {q['srocc']:.3f} | {ms[label]:.2f} | {ms[label] / ms['recognizer']:.0%} |\n")
        f.write(f"| recognizer (cn_lprnet_basic) | | | {ms['recognizer']:.2f} | 100% |\n")
    print(f"wrote {out}.md and .json")


if __name__ == "__main__":
    main()
