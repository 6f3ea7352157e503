"""Quality-aware stream recognition (EQ-LPR, ``papers/eq-lpr.md``): Algorithm 1 with the quality
networks P, S and E against recognizing every frame, on the same tracklets (issue 7, item 4).

  python benchmarks/stream.py [--sets cn,cn30,br] [--count 500] [--long_count 200] [--timing_reps 200]

Sets (the tracks of ``benchmarks/multiframe.py``, each streamed frame by frame in order): the
synthetic CN test tracklets (seed 777000777, K = 5, ``data/tracks_cn_test``; recognizer
``cn_lprnet_basic``, quality networks ``cn_eq_lpr_{p,s,e}``), 200 synthetic CN streams of 30 frames
(the length of the paper's UFPR-ALPR tracks; Algorithm 1's share of recognized frames falls with the
length: on a random order a track of n frames has ~ln n + 0.58 new maxima) and the real BR capture groups (val,
>= 2 views, 5 views; recognizer ``br_lprnet_basic``, ``br_eq_lpr_*`` where shipped). The synthetic
tracks are drawn with the plate format saved with the E network (the styles the CN quality networks
and IQ-STAN were trained on; the same tracks as ``benchmarks/multiframe.py``).
Rows (accuracy = exact match of the track's final plate; calls = recognizer runs per track):
- Algorithm 1 (:class:`lprnet_tf.stream.StreamRecognizer`) with P, S, E, and with the no-reference
  score PQS (:mod:`lprnet_tf.quality`) as a training-free quality function;
- recognize every frame + character-position majority vote (K calls);
- the oracle best frame (the frame whose recognizer α, eq. 3, is highest: it needs every frame
  recognized, so it is an upper bound of what a selector can do with this recognizer);
- the last frame (1 call).
Quality networks are also scored against α on every frame (MAE, SROCC). Cost per frame on this CPU:
batch-1 median latency of each network and of the recognizer (compiled ``predict_on_batch``-free
calls, interleaved round-robin so that their ratios see the same machine load), and end-to-end ms
per frame of each row; then the same through the deployment path: the recognizer and each quality
network exported to TFLite f32 batch-1 (:func:`lprnet_tf.export.export_tflite`) and run with LiteRT
(:class:`lprnet_tf.runtime.TFLiteBackend`, default threads), interleaved likewise (``--no_tflite`` skips it).
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
from results_io import dates_line, load_previous, merge_previous, set_date  # noqa: E402


def side_by_side_ms(fns: dict, x, reps: dict) -> dict:
    """Median batch-1 ms of each ``fns[name](x)`` over ``reps[name]`` calls, after 5 warm-up calls each, the
    calls interleaved round-robin so that every function sees the same machine load (the ratio of two of
    them is what the table reports; this 2-core machine is shared and its speed drifts)."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        for _ in range(5):
            fn(x)
    for r in range(max(reps.values())):
        for name, fn in fns.items():
            if r < reps[name]:
                t = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t)
    return {name: 1000.0 * float(np.median(t)) for name, t in times.items()}


def tflite_f32(model, fmt, out_dir: str, name: str):
    """Batch-1 inference of ``model`` exported to TFLite f32 and run with LiteRT (the deployment path)."""
    from lprnet_tf.export import export_tflite
    from lprnet_tf.runtime import TFLiteBackend

    (path,) = export_tflite(model, fmt, out_dir, name=name, variants=["f32"], batch=("1",))
    return TFLiteBackend(path).outputs


def compiled(model):
    """Batch-1 inference of a Keras model as a compiled ``tf.function`` (as benchmarks/speed.py times it)."""
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False), jit_compile=False)
    return lambda x: tf.nest.map_structure(lambda v: v.numpy(), fn(tf.constant(x)))


SETS = {  # set -> (plate format, recognizer, quality networks P/S/E: shipped names, run dirs or .keras)
    "cn": ("cn", "cn_lprnet_basic", {"P": "cn_eq_lpr_p", "S": "cn_eq_lpr_s", "E": "cn_eq_lpr_e"}),
    "cn30": ("cn", "cn_lprnet_basic", {"P": "cn_eq_lpr_p", "S": "cn_eq_lpr_s", "E": "cn_eq_lpr_e"}),
    "br": ("br", "br_lprnet_basic", {"P": "br_eq_lpr_p", "S": "br_eq_lpr_s", "E": "br_eq_lpr_e"}),
}


def run_set(label: str, tracks, fmt, recognizer: str, nets: dict, merges, reps: int, tflite: bool = True) -> dict:
    """Every row of the module docstring on ``tracks`` streamed in order."""
    import keras

    from lprnet_tf.data.pipeline import to_model_input
    from lprnet_tf.decoding import decode
    from lprnet_tf.metrics import plate_metrics, srocc
    from lprnet_tf.modelio import load_for_inference, model_exists
    from lprnet_tf.models.eq_lpr import recognition_quality
    from lprnet_tf.quality import quality_score
    from lprnet_tf.stream import StreamRecognizer
    from multiframe import majority_vote

    texts = [t.text for t in tracks]
    rec, rfmt, _ = load_for_inference(recognizer)

    def prep(crops):
        return np.stack([to_model_input(c, rfmt) for c in crops]).astype(np.float32) / 255.0

    counter = {"calls": 0}

    def recognize(crops):
        counter["calls"] += len(crops)
        return decode(np.asarray(rec.predict_on_batch(prep(crops))), rfmt, "greedy")

    # every frame once: readings, confidences and alpha (the oracle and the majority vote use them)
    frames = [t.images() for t in tracks]
    flat = [im for fr in frames for im in fr]
    logits = np.concatenate([np.asarray(rec.predict_on_batch(prep(flat[i:i + 256]))) for i in range(0, len(flat), 256)])
    preds, confs = decode(logits, rfmt, "greedy")
    alpha = keras.ops.convert_to_numpy(recognition_quality(logits))
    k = len(frames[0])
    preds = np.asarray(preds, dtype=object).reshape(-1, k)
    confs, alpha = np.asarray(confs).reshape(-1, k), alpha.reshape(-1, k)

    results = {"set": label, "recognizer": recognizer, "tracks": len(tracks), "frames_per_track": k, "rows": [],
               "quality": {}, "ms": {}}
    x1 = prep(flat[:1])

    def add_row(name, final, calls, ms_per_frame):
        m = plate_metrics(texts, final, merges=merges, max_positions=fmt.max_length)
        results["rows"].append({"row": name, "accuracy": m["accuracy"], "accuracy_no_first": m["accuracy_no_first"],
                                "calls_per_track": calls, "call_fraction": calls / k, "ms_per_frame": ms_per_frame})
        print(f"  {name:44s} exact={m['accuracy']:.4f} calls/track={calls:.2f} ({calls / k:.0%}) "
              f"ms/frame={ms_per_frame:.2f}", flush=True)

    quality_fns = {"PQS (no-reference, no training)": (lambda crops: np.asarray([quality_score(c) for c in crops]), None)}
    for v, spec in nets.items():
        if not model_exists(spec):
            print(f"  (no model {spec}: EQ-LPR-{v} left out)", flush=True)
            continue
        net, _, _ = load_for_inference(spec)
        quality_fns[f"EQ-LPR-{v}"] = ((lambda n: lambda crops: np.asarray(n.predict_on_batch(prep(crops))["quality"]))(net), net)

    timed, counts = {"recognizer": compiled(rec)}, {"recognizer": reps}
    for name, (_, net) in quality_fns.items():
        if net is not None:
            timed[name], counts[name] = compiled(net), reps
        else:  # PQS: numpy on the uint8 crop, slower per call, fewer repetitions
            timed[name], counts[name] = (lambda x: quality_score(flat[0])), max(20, reps // 10)
    results["ms"] = ms = side_by_side_ms(timed, x1, counts)
    if tflite:  # the deployment path: TFLite f32 batch-1 files run with LiteRT, interleaved likewise
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            lite = {"recognizer": tflite_f32(rec, rfmt, tmp, "recognizer")}
            for name, (_, net) in quality_fns.items():
                if net is not None:
                    lite[name] = tflite_f32(net, rfmt, tmp, name.replace(" ", "_"))
            results["tflite_ms"] = side_by_side_ms(lite, x1, {name: reps for name in lite})
    rec_ms = ms["recognizer"]
    print(f"{label}: {len(tracks)} tracks x {k} frames, recognizer {recognizer} {rec_ms:.2f} ms/frame", flush=True)
    for name, (qfn, net) in quality_fns.items():
        q_ms = ms[name]
        scores = np.concatenate([qfn(fr) for fr in frames]).reshape(-1, k)
        results["quality"][name] = {"mae": float(np.abs(scores - alpha).mean()) if net is not None else None,
                                    "srocc": srocc(scores.ravel(), alpha.ravel())}
        counter["calls"] = 0
        sr = StreamRecognizer(lambda crops, s=iter(scores.ravel()): np.asarray([next(s) for _ in crops]), recognize)
        final = [sr.run_track(fr)[0].plate for fr in frames]
        calls = counter["calls"] / len(frames)
        add_row(f"Algorithm 1 + {name}", final, calls, q_ms + calls / k * rec_ms)
    add_row("every frame + majority vote", [majority_vote(list(p), list(c)) for p, c in zip(preds, confs)], k, rec_ms)
    best = alpha.argmax(1)
    add_row("oracle best frame (highest alpha)", [preds[i, best[i]] for i in range(len(tracks))], k, rec_ms)
    add_row("last frame", list(preds[:, -1]), 1, rec_ms / k)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="cn,cn30,br", help="cn (synthetic CN test tracklets of 5 frames), cn30 "
                    "(of 30 frames, like the paper's UFPR-ALPR tracks), br (real BR capture groups)")
    ap.add_argument("--long_count", type=int, default=200, help="synthetic CN test streams of 30 frames")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    ap.add_argument("--count", type=int, default=500, help="synthetic CN test tracklets")
    ap.add_argument("--timing_reps", type=int, default=200)
    ap.add_argument("--no_tflite", action="store_true", help="skip the TFLite (LiteRT) timing")
    ap.add_argument("--rewrite", action="store_true", help="only rewrite OUT.md from OUT.json (no measurement)")
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "stream"))
    a = ap.parse_args()
    if a.rewrite:
        return write(load_previous(a.out), a.out)

    from multiframe import br_tracks, synthetic_tracks, track_format
    from lprnet_tf.vocab import load_plate_format

    results = []
    for key in [k for k in a.sets.split(",") if k]:
        fmt_name, recognizer, nets = SETS[key]
        fmt = load_plate_format(fmt_name)
        if key == "cn":
            tracks, _ = synthetic_tracks(track_format(nets["E"]), a.count)
            label = "synthetic CN test tracklets (seed 777000777)"
        elif key == "cn30":  # streams as long as the paper's UFPR-ALPR tracks (30 frames per plate)
            tracks, _ = synthetic_tracks(track_format(nets["E"]), a.long_count, 30)
            label = "synthetic CN test streams of 30 frames (seed 777000777)"
        elif os.path.isdir(os.path.join(a.data, "br_openalpr_crops")):
            tracks, _ = br_tracks(fmt, a.data)
            label = "real BR capture groups (val, >= 2 views, 5 views cycled)"
        else:
            print(f"no {a.data}/br_openalpr_crops: BR left out")
            continue
        results.append(run_set(label, tracks, fmt, recognizer, nets, list(fmt.merges) if key == "br" else [],
                               a.timing_reps, tflite=not a.no_tflite))
    write(merge_previous(results, a.out), a.out)  # sets not measured now keep their tables and dates


def write(results: list, out: str):
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    with open(out + ".md", "w", encoding="utf-8") as f:
        f.write(f"Stream recognition (EQ-LPR), `python benchmarks/stream.py`, {dates_line(results)}: tracks "
                f"streamed frame by frame in order, greedy decoding. ms: batch-1 median on this 2-core CPU, all "
                f"in one run; ms / frame of a row = quality ms + (recognizer calls / frames) x recognizer ms (Keras "
                f"compiled functions); the TFLite columns time the same networks as TFLite f32 files run with "
                f"LiteRT (the deployment path), interleaved in one loop.\n\n")
        for r in results:
            ms = r["ms"]
            f.write(f"**{r['set']}** ({r['tracks']} tracks x {r['frames_per_track']} frames, recognizer "
                    f"`{r['recognizer']}`{set_date(r, results)})\n\n| reader | exact | no-first | recognizer calls / track | share of frames "
                    "| ms / frame |\n|---|---|---|---|---|---|\n")
            for row in r["rows"]:
                f.write(f"| {row['row']} | {row['accuracy']:.3f} | {row['accuracy_no_first']:.3f} | "
                        f"{row['calls_per_track']:.2f} | {row['call_fraction']:.0%} | {row['ms_per_frame']:.2f} |\n")
            lite = r.get("tflite_ms") or {}
            f.write("\n| quality function | MAE vs alpha | SROCC vs alpha | ms / frame (batch 1) | share of the "
                    "recognizer's ms |" + (" TFLite f32 ms (LiteRT, batch 1) | share of the recognizer's TFLite ms |"
                                           if lite else "") + "\n|---|---|---|---|---|" + ("---|---|" if lite else "")
                    + "\n")
            for label, q in r["quality"].items():
                mae = f"{q['mae']:.3f}" if q["mae"] is not None else "n/a (not trained on alpha)"
                f.write(f"| {label} | {mae} | {q['srocc']:.3f} | {ms[label]:.2f} | {ms[label] / ms['recognizer']:.0%} |")
                if lite:
                    f.write(f" {lite[label]:.3f} | {lite[label] / lite['recognizer']:.1%} |" if label in lite else
                            " n/a (numpy, no network) | |")
                f.write("\n")
            f.write(f"| recognizer `{r['recognizer']}` | | | {ms['recognizer']:.2f} | 100% |"
                    + (f" {lite['recognizer']:.3f} | 100% |" if lite else "") + "\n\n")
    print(f"wrote {out}.md and .json")


if __name__ == "__main__":
    main()
