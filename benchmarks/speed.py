"""Speed benchmark: training samples/s per model and setting, the input pipeline alone, and
inference on every deployment path.

  python benchmarks/speed.py --train [--models lprnet_basic,lprnet_reduced] [--steps 40]
                             [--out benchmarks/results/speed_train.md]
  python benchmarks/speed.py --infer [--runs 200] [--batch 64] [--infer_out benchmarks/results/speed_infer.md]

Every training setting runs in its own subprocess (oneDNN is chosen by an environment variable at
import time), one after the other, so the figures are side by side from one run of this script.
Training is timed on a fixed in-memory batch (model speed alone) and on the real pipeline
(synthetic plates rendered on the fly with full augmentation). The pipeline is timed alone for
on-the-fly synthesis and for a pre-rendered set read from disk, with batches made in threads and in
2 worker processes. Writes a markdown table.

Inference rows: Keras, SavedModel, each TFLite variant (LiteRT), ONNX Runtime (when onnx, onnxruntime
and tf2onnx import: ``pip install "lprnet_tf[onnx]"``; otherwise the rows are skipped with a printed
note, also written under the table) and the runtime end to end, without and with test-time views.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SETTINGS = {
    # key: (description, env, options)
    "default": ("default: oneDNN on, batch 32, fixed batch", {"TF_ENABLE_ONEDNN_OPTS": "1"}, {}),
    "onednn_off": ("oneDNN off", {"TF_ENABLE_ONEDNN_OPTS": "0"}, {}),
    "xla": ("XLA jit_compile=True", {"TF_ENABLE_ONEDNN_OPTS": "1"}, {"jit": True}),
    "batch64": ("batch 64 (per-sample rate)", {"TF_ENABLE_ONEDNN_OPTS": "1"}, {"batch": 64}),
    "spe8": ("steps_per_execution=8", {"TF_ENABLE_ONEDNN_OPTS": "1"}, {"spe": 8}),
    "pipeline": ("default + synthetic plates rendered on the fly, full augmentation",
                 {"TF_ENABLE_ONEDNN_OPTS": "1"}, {"pipeline": True}),
}


def worker(model_name: str, steps: int, jit=False, batch=32, spe=1, pipeline=False) -> dict:
    import keras
    import numpy as np

    from lprnet_tf.data.pipeline import SynthSource, build_dataset
    from lprnet_tf.config import TrainConfig
    from lprnet_tf.losses import CTCLoss
    from lprnet_tf.optim import make_optimizer
    from lprnet_tf.models import build_model
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn")
    keras.utils.set_random_seed(0)
    model = build_model(model_name, fmt)
    # the training optimizer (Adam + step decay + gradient noise), as lprnet-train compiles it
    model.compile(optimizer=make_optimizer(TrainConfig()), loss=CTCLoss(), jit_compile=jit, steps_per_execution=spe)
    if pipeline:
        data = build_dataset(SynthSource(fmt, 0), fmt, batch, augment="full", repeat=True, drop_remainder=True)
    else:
        rng = np.random.default_rng(0)
        x = rng.random((batch, fmt.height, fmt.width, 3), dtype=np.float32)
        y = np.asarray([fmt.pad(fmt.encode("皖A12345"))] * batch, np.int32)
        import tensorflow as tf

        data = tf.data.Dataset.from_tensors((x, y)).repeat()
    warm = max(spe, 8)
    model.fit(data, steps_per_epoch=warm, epochs=1, verbose=0)
    n = max(spe, steps - steps % spe)
    t = time.perf_counter()
    model.fit(data, steps_per_epoch=n, epochs=1, verbose=0)
    dt = time.perf_counter() - t
    return {"samples_per_s": n * batch / dt, "steps": n, "batch": batch}


@functools.lru_cache(maxsize=None)
def pipeline_file_set(count: int) -> str:
    """A pre-rendered set of ``count`` CN plates in a temporary directory (written once per run)."""
    from lprnet_tf.synth.generate import write_synthetic_set
    from lprnet_tf.vocab import load_plate_format

    tmp = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, tmp, True)
    write_synthetic_set(load_plate_format("cn"), tmp, count, seed=1, progress=False)
    return tmp


def pipeline_rate(kind: str, count: int, workers: int = 0) -> float:
    """Images/s of the training pipeline alone: ``kind`` synth (rendered on the fly) or files
    (pre-rendered JPEGs), batches made in threads (``workers`` 0) or in worker processes."""
    from lprnet_tf.data.pipeline import FileSource, SynthSource, build_dataset
    from lprnet_tf.data.readers import read_samples
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn")
    if kind == "synth":
        src = SynthSource(fmt, 0)
    else:
        src = FileSource(read_samples(pipeline_file_set(count), fmt, verify_images=False)[0])
    ds = build_dataset(src, fmt, 32, augment="full", shuffle=True, repeat=True, drop_remainder=True, workers=workers)
    it = iter(ds)
    for _ in range(5):  # warm-up, and worker start-up
        next(it)
    n = max(10, count // 32)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return n * 32 / (time.perf_counter() - t)


PIPELINES = {
    # key: (kind, workers, description)
    "synth": ("synth", 0, "synthetic plates rendered on the fly"),
    "synth_w2": ("synth", 2, "synthetic plates rendered on the fly, 2 worker processes"),
    "files": ("files", 0, "pre-rendered set read from disk (JPEG)"),
    "files_w2": ("files", 2, "pre-rendered set read from disk (JPEG), 2 worker processes"),
}


def _timeit(fn, n: int, warm: int = 5) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def inference(models: list[str], runs: int, batch: int, notes: list | None = None) -> list[dict]:
    """Batch-1 latency and batched throughput for every deployment path of each model, side by side.
    ``notes`` collects lines about skipped paths (ONNX Runtime when the onnx extra is missing)."""
    import numpy as np
    import tensorflow as tf

    from lprnet_tf.data.pipeline import SynthSource, to_model_input
    from lprnet_tf.export import ONNX_INSTALL, export_onnx, export_savedmodel, export_tflite, onnx_missing
    from lprnet_tf.models import build_model
    from lprnet_tf.runtime import OnnxBackend, Recognizer, TFLiteBackend, preprocess_batch
    from lprnet_tf.vocab import load_plate_format

    missing = onnx_missing()
    if missing:
        note = f"ONNX Runtime rows skipped: {missing} cannot be imported ({ONNX_INSTALL})"
        print(note, flush=True)
        if notes is not None:
            notes.append(note)
    rows = []
    for name in models:
        fmt = load_plate_format("cn")
        model = build_model(name, fmt)  # speed does not depend on the weights
        src = SynthSource(fmt, 4242, batch)
        crops = [src.get(i)[0] for i in range(batch)]
        u8 = np.stack([to_model_input(c, fmt) for c in crops])  # (B, H, W, 3) uint8
        x = preprocess_batch(crops, fmt)
        tmp = tempfile.mkdtemp()
        atexit.register(shutil.rmtree, tmp, True)
        saved = export_savedmodel(model, fmt, tmp, "lpr", 1)
        export_tflite(model, fmt, os.path.join(tmp, "tflite"), "lpr", calibration_count=64)
        fn = tf.function(lambda t: model(t, training=False), jit_compile=False)
        sig = tf.saved_model.load(saved).signatures["predict_images"]
        paths = {"Keras compiled tf.function": (lambda b: fn(tf.constant(x[:b])).numpy(), None)}
        paths["SavedModel predict_images (incl. in-graph decode)"] = (
            lambda b: sig(images=tf.constant(u8[:b]))["logits"].numpy(), None)
        for v in ("f32", "f16", "dynamic", "int8"):
            one = TFLiteBackend(os.path.join(tmp, "tflite", f"lpr_{v}.tflite"))
            many = TFLiteBackend(os.path.join(tmp, "tflite", f"lpr_{v}_batch.tflite"), max_batch=batch)
            size = os.path.getsize(os.path.join(tmp, "tflite", f"lpr_{v}.tflite"))
            paths[f"TFLite {v} (LiteRT)"] = ((lambda b, one=one, many=many: (one if b == 1 else many).logits(x[:b])), size)
        if not missing:  # one dynamic-batch file: batch 1 and batch B through the same session
            onnx_path = export_onnx(model, fmt, os.path.join(tmp, "onnx"), "lpr")
            ort = OnnxBackend(onnx_path, max_batch=batch)
            paths[f"ONNX f32 ({ort.runtime}, CPU)"] = ((lambda b, ort=ort: ort.logits(x[:b])),
                                                      os.path.getsize(onnx_path))
        rec = Recognizer(os.path.join(tmp, "tflite", "lpr_f32_batch.tflite"))
        paths["lprnet_tf.runtime end to end (f32: resize + run + greedy decode)"] = (
            lambda b: rec.recognize(crops[:b]), None)
        paths["lprnet_tf.runtime end to end with --tta (5 views, f32, voted)"] = (
            lambda b: rec.recognize(crops[:b], tta=True), None)
        for label, (f, size) in paths.items():
            lat = np.array(_timeit(lambda: f(1), runs)) * 1000
            thr = _timeit(lambda: f(batch), max(5, runs // 10))
            rows.append({"model": name, "path": label, "p50_ms": float(np.median(lat)),
                         "p90_ms": float(np.percentile(lat, 90)), "plates_per_s": batch / float(np.median(thr)),
                         "size_kb": size / 1024 if size else None})
            print(f"{name:15s} {label:62s} p50 {rows[-1]['p50_ms']:7.3f} ms  p90 {rows[-1]['p90_ms']:7.3f} ms  "
                  f"{rows[-1]['plates_per_s']:8.0f} plates/s", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="store_true", help="benchmark training and the input pipeline")
    ap.add_argument("--infer", action="store_true", help="benchmark inference: Keras, SavedModel, TFLite "
                    "f32/f16/dynamic/int8, ONNX Runtime (if installed), runtime end to end")
    ap.add_argument("--runs", type=int, default=200, help="timed batch-1 calls per inference path")
    ap.add_argument("--batch", type=int, default=64, help="batch size for inference throughput")
    ap.add_argument("--infer_out", default=os.path.join(REPO, "benchmarks", "results", "speed_infer.md"))
    ap.add_argument("--models", default="lprnet_basic,lprnet_reduced")
    ap.add_argument("--steps", type=int, default=40, help="timed training steps per setting")
    ap.add_argument("--settings", default="all", help=f"comma-separated keys of {sorted(SETTINGS)} or 'all'")
    ap.add_argument("--pipeline_count", type=int, default=3200, help="samples timed for the pipeline")
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "speed_train.md"))
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._worker:
        print("RESULT " + json.dumps(worker(**json.loads(a._worker))))
        return
    if not (a.train or a.infer):
        ap.error("nothing to do: pass --train and/or --infer")
    if a.infer:
        notes = []
        rows = inference(a.models.split(","), a.runs, a.batch, notes)
        os.makedirs(os.path.dirname(a.infer_out), exist_ok=True)
        with open(a.infer_out, "w", encoding="utf-8") as f:
            f.write(f"Inference speed, CN format (73 classes, 24x94 input), `python benchmarks/speed.py --infer`, "
                    f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, all rows from one "
                    f"run. Batch-1 latency over {a.runs} calls; throughput at batch {a.batch}.\n\n")
            f.write("| model | path | batch-1 p50 ms | batch-1 p90 ms | plates/s (batched) | file KB |\n")
            f.write("|---|---|---|---|---|---|\n")
            for r in rows:
                size = f"{r['size_kb']:.0f}" if r["size_kb"] else "-"
                f.write(f"| {r['model']} | {r['path']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | "
                        f"{r['plates_per_s']:.0f} | {size} |\n")
            for note in notes:
                f.write(f"\n{note}\n")
        print(f"wrote {a.infer_out}")
        if not a.train:
            return
    names = list(SETTINGS) if a.settings == "all" else [s.strip() for s in a.settings.split(",")]
    rows = []
    for model in a.models.split(","):
        for name in names:
            if name not in SETTINGS:
                ap.error(f"unknown setting '{name}'; choose from {sorted(SETTINGS)}")
            desc, env, opts = SETTINGS[name]
            args = {"model_name": model, "steps": a.steps, **opts}
            r = subprocess.run([sys.executable, __file__, "--_worker", json.dumps(args)], capture_output=True,
                               text=True, env={**os.environ, **env, "PYTHONPATH": REPO})
            line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
            if r.returncode or not line:
                print(f"{model} / {name}: failed\n{r.stderr[-1500:]}", file=sys.stderr)
                continue
            res = json.loads(line[0][7:])
            rows.append((model, desc, res["samples_per_s"]))
            print(f"{model:16s} {desc:38s} {res['samples_per_s']:7.1f} samples/s", flush=True)
    pipe = {}
    for key, (kind, workers, desc) in PIPELINES.items():
        pipe[key] = pipeline_rate(kind, a.pipeline_count, workers)
        print(f"pipeline alone ({desc}): {pipe[key]:.0f} images/s", flush=True)

    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    base = {m: r for m, n, r in rows if n == SETTINGS["default"][0]}
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(f"Training speed, CN plate format (73 classes, 24x94), `python benchmarks/speed.py --train`, "
                f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores, TF {__import__('tensorflow').__version__}, "
                f"Keras {__import__('keras').__version__}.\n\n")
        f.write("| model | setting | samples/s | vs default |\n|---|---|---|---|\n")
        for m, n, r in rows:
            f.write(f"| {m} | {n} | {r:.1f} | {r / base[m]:.2f}x |\n" if m in base else f"| {m} | {n} | {r:.1f} | - |\n")
        f.write("\n| input pipeline alone (batch 32, full augmentation) | images/s |\n|---|---|\n")
        for key, (_, _, desc) in PIPELINES.items():
            f.write(f"| {desc} | {pipe[key]:.0f} |\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
