"""Speed benchmark: training samples/s per model and setting, and the input pipeline alone.

  python benchmarks/speed.py --train [--models lprnet_basic,lprnet_reduced] [--steps 40]
                             [--out benchmarks/results/speed_train.md]

Every training setting runs in its own subprocess (oneDNN is chosen by an environment variable at
import time), one after the other, so the figures are side by side from one run of this script.
Training is timed on a fixed in-memory batch (model speed alone) and on the real pipeline
(synthetic plates rendered on the fly with full augmentation). The pipeline is timed alone for
on-the-fly synthesis and for a pre-rendered set read from disk, with batches made in threads and in
2 worker processes. Writes a markdown table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
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
    from lprnet_tf.losses import CTCLoss
    from lprnet_tf.models import build_model
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn")
    keras.utils.set_random_seed(0)
    model = build_model(model_name, fmt)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CTCLoss(), jit_compile=jit, steps_per_execution=spe)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="store_true", help="benchmark training and the input pipeline")
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
    if not a.train:
        ap.error("nothing to do: pass --train")
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
