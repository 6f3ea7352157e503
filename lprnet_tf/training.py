"""Training: the paper's recipe (``lprnet.md`` §3.2) as a resumable run.

A run directory holds the resolved ``config.yaml``, ``plate_format.yaml``, ``checkpoints/``
(keep-N, atomic), ``last.keras`` (model + optimizer state), ``best.keras`` (best validation exact
match), ``metrics.jsonl`` (one line per evaluation) and TensorBoard logs in ``logs/``.

Steps are grouped in "epochs" of ``train.eval_every`` steps; after each, validation runs and
checkpoints are written. ``resume=True`` reloads ``last.keras`` (or the newest intact checkpoint),
and continues at the same step with the same optimizer state, LocNet gate and data order (sample g
of the run depends only on (seed, g)).
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

import keras

from lprnet_tf.config import ConfigError, ExperimentConfig, save_config
from lprnet_tf.data.pipeline import SynthSource, build_dataset, make_batch_sequence, open_source
from lprnet_tf.evaluation import predict_logits, score
from lprnet_tf.layers import locnet_enabled, set_locnet_enabled
from lprnet_tf.losses import CTCLoss
from lprnet_tf.modelio import ModelFileError, load_model, resolve_model, save_model, transfer_weights
from lprnet_tf.models import build_model
from lprnet_tf.optim import make_optimizer
from lprnet_tf.progress import Progress
from lprnet_tf.vocab import load_plate_format


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def current_step(model) -> int:
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


class LocNetGate(keras.callbacks.Callback):
    """Switch the LocNet on at ``start_step`` (paper: after 5k iterations).

    With ``steps_per_execution`` > 1 the switch happens at the first call at or after that step.
    """

    def __init__(self, start_step: int):
        super().__init__()
        self.start_step = int(start_step)
        self.on = None

    def on_train_begin(self, logs=None):
        if locnet_enabled(self.model) is not None:
            self.on = current_step(self.model) >= self.start_step
            set_locnet_enabled(self.model, self.on)

    def on_train_batch_end(self, batch, logs=None):
        if self.on is False and current_step(self.model) >= self.start_step:
            self.on = set_locnet_enabled(self.model, True)
            log(f"step {current_step(self.model)}: LocNet switched on")


class ProgressCallback(keras.callbacks.Callback):
    def __init__(self, total_steps: int, start_step: int, batch_size: int):
        super().__init__()
        self.bar = Progress(total_steps, "train", "step", start=start_step)
        self.batch_size = batch_size
        self.loss = None

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
        step = current_step(self.model)
        if step >= self.bar.total:  # --steps not a multiple of eval_every: stop mid-epoch, on target
            self.model.stop_training = True
        r = self.bar.rate() * self.batch_size
        self.bar.update(step - self.bar.n, extra=f"loss {self.loss:.3f} {r:.0f} samples/s" if self.loss is not None else "")

    def on_train_end(self, logs=None):
        self.bar.close()


class RunKeeper(keras.callbacks.Callback):
    """Validation, metrics.jsonl, TensorBoard scalars and atomic checkpoints after every epoch."""

    def __init__(self, run_dir, cfg: ExperimentConfig, fmt, val_source, state: dict, progress: ProgressCallback):
        super().__init__()
        self.run_dir, self.cfg, self.fmt, self.val = run_dir, cfg, fmt, val_source
        self.state = state
        self.progress = progress
        self.writer = None
        self.t_epoch = time.time()

    def on_train_begin(self, logs=None):
        if keras.backend.backend() == "tensorflow":
            try:
                import tensorboard  # noqa: F401  (tf.summary needs it)
                import tensorflow as tf

                self.writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "logs"))
            except ImportError:
                log("warning: tensorboard is not installed; no TensorBoard logs (metrics.jsonl is still written)")

    def on_epoch_begin(self, epoch, logs=None):
        self.t_epoch = time.time()

    def on_epoch_end(self, epoch, logs=None):
        step = current_step(self.model)
        dt = time.time() - self.t_epoch
        rec = {"step": step, "epoch": epoch + 1, "loss": float((logs or {}).get("loss", float("nan"))),
               "samples_per_s": round(self.cfg.train.eval_every * self.cfg.train.batch_size / max(dt, 1e-9), 2),
               "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               "locnet": locnet_enabled(self.model), "time": time.time()}
        if self.val is not None:
            logits = predict_logits(self.model, self.val, self.fmt, batch_size=128)
            m, _, _ = score(logits, self.val_texts, self.fmt, "greedy")
            rec.update({f"val_{k}": m[k] for k in ("accuracy", "acc1", "char_accuracy", "accuracy_no_first")})
        self._save(step, rec)
        if self.writer is not None:
            import tensorflow as tf

            with self.writer.as_default(step=step):
                for k, v in rec.items():
                    if isinstance(v, float) and k != "time":
                        tf.summary.scalar(k, v)
            self.writer.flush()
        msg = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items() if k != "time")
        log(f"\n[epoch {epoch + 1}] {msg}")

    @property
    def val_texts(self):
        if not hasattr(self, "_val_texts"):
            self._val_texts = self.val.texts()
        return self._val_texts

    def _save(self, step: int, rec: dict):
        # the metrics line goes first: a crash before the checkpoint only repeats this epoch (the
        # line appears twice), a crash after it never loses the epoch's record
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        ck_dir = os.path.join(self.run_dir, "checkpoints")
        os.makedirs(ck_dir, exist_ok=True)
        ck = save_model(self.model, os.path.join(ck_dir, f"step_{step:08d}.keras"))
        for old in sorted(glob.glob(os.path.join(ck_dir, "step_*.keras")))[: -self.cfg.train.keep_checkpoints]:
            os.remove(old)
        acc = rec.get("val_accuracy")
        if acc is not None and acc >= self.state.get("best_val_accuracy", -1.0):
            self.state.update(best_val_accuracy=acc, best_step=step)
            save_model(self.model, os.path.join(self.run_dir, "best.keras"))
        # last.keras is written last: it is the resume point, and it always points at an intact file
        tmp = os.path.join(self.run_dir, "last.keras.tmp.keras")
        with open(ck, "rb") as src, open(tmp, "wb") as dst:
            dst.write(src.read())
        os.replace(tmp, os.path.join(self.run_dir, "last.keras"))
        self.state["step"] = step
        _write_json(os.path.join(self.run_dir, "state.json"), self.state)


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _load_resume_point(run_dir: str):
    """Newest loadable of last.keras and checkpoints/step_*.keras; broken files are reported and kept."""
    candidates = [os.path.join(run_dir, "last.keras")] + sorted(
        glob.glob(os.path.join(run_dir, "checkpoints", "step_*.keras")), reverse=True)
    for path in candidates:
        if not os.path.isfile(path):
            continue
        try:
            return load_model(path, compile=True), path
        except ModelFileError as e:
            log(f"warning: {e}; trying an older checkpoint (the broken file is left in place)")
    return None, None


def build_training_model(cfg: ExperimentConfig, fmt):
    if cfg.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    model = build_model(cfg.model.name, fmt, **cfg.model.options)
    if cfg.train.init_from:
        path, _ = resolve_model(cfg.train.init_from, fmt)
        src = load_model(path)
        copied, skipped = transfer_weights(src, model)
        log(f"init_from {path}: copied {copied} layers" + (f", re-initialised {skipped}" if skipped else ""))
    return model


def compile_model(model, cfg: ExperimentConfig):
    model.compile(optimizer=make_optimizer(cfg.train), loss=CTCLoss(), jit_compile=False,
                  steps_per_execution=cfg.train.steps_per_execution)
    return model


def train(cfg: ExperimentConfig, run_dir: str, resume: bool = False, steps: int | None = None,
          verbose: bool = True) -> dict:
    """Train (or resume) a run; returns the final ``state.json`` contents."""
    keras.utils.set_random_seed(cfg.train.seed)
    fmt = load_plate_format(cfg.plate_format)
    total = int(steps or cfg.train.steps)
    os.makedirs(run_dir, exist_ok=True)
    state_path = os.path.join(run_dir, "state.json")
    model = None
    if resume:
        model, path = _load_resume_point(run_dir)
        if model is None:
            log(f"{run_dir}: nothing to resume from; starting a new run")
        else:
            log(f"resuming from {path}")
    elif os.path.isfile(os.path.join(run_dir, "last.keras")):
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new --run_dir")
    if model is None:
        model = compile_model(build_training_model(cfg, fmt), cfg)
        state = {"name": cfg.name, "step": 0}
    else:
        state = {"name": cfg.name}
        if os.path.isfile(state_path):
            with open(state_path, encoding="utf-8") as f:
                state = json.load(f)
    save_config(cfg, os.path.join(run_dir, "config.yaml"))
    fmt.save(os.path.join(run_dir, "plate_format.yaml"))

    start_step = current_step(model)
    e = cfg.train.eval_every
    if start_step >= total:
        log(f"run already at step {start_step} >= {total}; nothing to do")
        return state
    if start_step % e:
        log(f"warning: resume step {start_step} is not a multiple of eval_every={e}")
    initial_epoch, epochs = start_step // e, -(-total // e)
    bs = cfg.train.batch_size

    d = cfg.data
    train_src = open_source(d.train, fmt, split=d.train_split or None, skip_bad=d.skip_bad)
    val_src = open_source(d.val, fmt, split=d.val_split or None, skip_bad=d.skip_bad) if d.val else None
    if isinstance(val_src, SynthSource) and val_src.size is None:
        raise ConfigError("data.val: a synthetic validation set needs a count, e.g. synth:1000003:512")
    log(f"train data: {d.train} ({'stream' if isinstance(train_src, SynthSource) and train_src.size is None else len(train_src)}), "
        f"val: {d.val} ({len(val_src) if val_src is not None else 0}), steps {start_step}->{total}, batch {bs}")
    start_sample = start_step * bs
    if keras.backend.backend() == "tensorflow":
        data = build_dataset(train_src, fmt, bs, augment=d.augment, shuffle=True, seed=cfg.train.seed,
                             start=start_sample, repeat=True, drop_remainder=True, workers=d.workers)
    else:
        data = make_batch_sequence(train_src, fmt, bs, steps=(epochs - initial_epoch) * e, augment=d.augment,
                                   shuffle=True, seed=cfg.train.seed, start=start_sample,
                                   workers=cfg.train.backend_workers)
    prog = ProgressCallback(total, start_step, bs)
    prog.bar.enabled = verbose
    callbacks = [LocNetGate(cfg.train.locnet_start_step), prog, RunKeeper(run_dir, cfg, fmt, val_src, state, prog)]
    t0 = time.time()
    model.fit(data, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=e, callbacks=callbacks, verbose=0, shuffle=False)
    state["train_seconds"] = state.get("train_seconds", 0.0) + (time.time() - t0)
    _write_json(state_path, state)
    if cfg.train.ema:  # fit() swapped the EMA weights in at the end: save them as the final model
        save_model(model, os.path.join(run_dir, "final_ema.keras"))
    return state


def summarize(model) -> dict:
    """Parameter count and forward GFLOPs for one image (TensorFlow graph profiler; TF backend)."""
    import tensorflow as tf

    spec = tf.TensorSpec((1,) + tuple(model.input_shape[1:]), tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    prof = tf.compat.v1.profiler.profile(graph=concrete.graph, options=opts)
    return {"params": int(model.count_params()), "gflops": prof.total_float_ops / 1e9}
