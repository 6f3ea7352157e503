"""Training: the paper's recipe (``lprnet.md`` §3.2) as a resumable run.

A run directory holds the resolved ``config.yaml``, ``plate_format.yaml``, ``checkpoints/``
(keep-N, atomic), ``last.keras`` (model + optimizer state), ``best.keras`` (best validation exact
match), ``metrics.jsonl`` (one line per evaluation) and TensorBoard logs in ``logs/``.

Steps are grouped in "epochs" of ``train.eval_every`` steps; after each, validation runs and
checkpoints are written. ``resume=True`` reloads the newest intact of ``last.keras`` and
``checkpoints/step_*.keras`` and continues at the same step with the same optimizer state, LocNet
gate and data order (sample g of the run depends only on (seed, g)).

Crash safety (``docs/reliability.md``): every file is written atomically (:func:`modelio.atomic_write`);
an epoch's bookkeeping runs metrics line -> checkpoint -> best.keras -> last.keras -> state.json, and
a resume first removes temp files left by a killed writer, drops ``metrics.jsonl`` lines past the
resumed step (the epoch they describe is trained again) and recomputes the best-model record from
the kept lines, so after any number of kills ``metrics.jsonl`` holds exactly one line per epoch.

Image-to-image and GAN models train here too, on (HR, LR) pairs of the one pipeline (``data.pairs:
lowres``, :data:`lprnet_tf.data.pipeline.PAIR_MODES`): the DGM (kind ``image``) with its pixel loss
(:class:`lprnet_tf.losses.ImageMSE`), validated by ``val_mse`` / ``val_psnr`` of DGM(HR) against the LR
target; the MTGAN (kind ``gan``) with its two optimizers (generator: ``model.optimizer``, whose step is
the run's step; discriminator: ``model.d_optimizer``; both saved in every ``.keras`` file, so a resume
restores both Adam states), validated by the exact match of its discriminator's recognition head on
SR(LR) (``val_accuracy``, greedy slot decoding; ``val_accuracy_hr`` on the HR crops) and ``val_psnr`` /
``val_mse`` of SR against HR (:func:`lprnet_tf.evaluation.evaluate_pairs`). The best model is chosen
on the first of :data:`BEST_KEYS` an epoch's record has: exact match for recognizers and the MTGAN,
SROCC for quality networks, PSNR for image models (higher is better for all; ties go to the later epoch).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time

import keras

from lprnet_tf.config import ConfigError, ExperimentConfig, check_model_inputs, save_config
from lprnet_tf.data.pipeline import (PAIR_MODES, SYNTH_STREAM, SampleOptions, SynthSource, build_dataset,
                                     make_batch_sequence, open_source, open_train_source)
from lprnet_tf.evaluation import evaluate_pairs, predict_logits, score
from lprnet_tf.layers import locnet_enabled, set_locnet_enabled
from lprnet_tf.losses import loss_for_kind
from lprnet_tf.modelio import (ModelFileError, atomic_write, copy_atomic, load_model, remove_stale_temps,
                                resolve_model, save_model, transfer_weights, write_error)
from lprnet_tf.models import build_model, model_kind
from lprnet_tf.modelio import check_architecture, check_model_format
from lprnet_tf.optim import make_optimizer
from lprnet_tf.progress import Progress
from lprnet_tf.vocab import load_plate_format


def log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def format_record(rec: dict) -> str:
    """One epoch's metrics as ``key=value`` pairs for the log: floats to 4 significant digits, so a small
    learning rate reads ``lr=1e-05`` (not ``0.0000``); the wall-clock ``time`` is left out."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items() if k != "time")


def current_step(model) -> int:
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


# The validation score the best model is chosen on: the first of these keys a metrics record has
# (recognizers and the MTGAN: exact match; quality networks: SROCC; image models: PSNR); higher is better.
BEST_KEYS = ("val_accuracy", "val_srocc", "val_psnr")


def best_score(rec: dict) -> tuple[str | None, float | None]:
    """``(key, value)`` of the record's best-model score (:data:`BEST_KEYS`), ``(None, None)`` without one."""
    for key in BEST_KEYS:
        if rec.get(key) is not None:
            return key, rec[key]
    return None, None


class StepCallback(keras.callbacks.Callback):
    """A callback that knows the global step after each batch without touching the model: the step at
    the epoch's start plus the batches done. Under JAX the jitted step keeps the training state outside
    the model inside an epoch, and every ``self.model`` of a callback copies all of it back
    (``jax_state_sync``) and makes the next step gather it again: per-step work that a callback acting
    once (the LocNet switch, the last step) need not cause every step. ``batch`` is Keras' index of the
    epoch's last step done by the call (the custom loop of :mod:`lprnet_tf.distributed` passes the same)."""

    epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = current_step(self.model)  # synced at epoch boundaries on every backend

    def global_step(self, batch: int) -> int:
        return self.epoch_start + int(batch) + 1


class LocNetGate(StepCallback):
    """Switch the LocNet on at ``start_step`` (paper: after 5k iterations).

    With ``steps_per_execution`` > 1 the switch happens at the first call at or after that step. Under
    JAX ``self.model`` syncs the state into the model first, so the next step reads the switch.
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
        if self.on is False and self.global_step(batch) >= self.start_step:
            self.on = set_locnet_enabled(self.model, True)
            log(f"step {self.global_step(batch)}: LocNet switched on")


class ProgressCallback(StepCallback):
    """Progress bar, and the end of the run: at ``total_steps`` (mid-epoch when ``--steps`` is not a
    multiple of ``eval_every``) or at the first step done after the wall-clock ``deadline`` (``time.time()``
    value; ``--time_limit``). Either way Keras then ends the epoch, so :class:`RunKeeper` validates and
    checkpoints the step reached; ``stopped_at`` records the step where the deadline struck."""

    def __init__(self, total_steps: int, start_step: int, batch_size: int, deadline: float | None = None):
        super().__init__()
        self.bar = Progress(total_steps, "train", "step", start=start_step)
        self.batch_size = batch_size
        self.loss = None
        self.deadline = deadline
        self.stopped_at = None

    def on_train_batch_end(self, batch, logs=None):
        if logs and ("loss" in logs or "g_loss" in logs):  # a GAN logs its generator and discriminator losses
            self.loss = float(logs.get("loss", logs.get("g_loss")))
        step = self.global_step(batch)
        if step >= self.bar.total:  # --steps not a multiple of eval_every: stop mid-epoch, on target
            self.model.stop_training = True
        elif self.deadline is not None and self.stopped_at is None and time.time() >= self.deadline:
            self.stopped_at = step
            self.model.stop_training = True
            log(f"\nstep {step}: --time_limit reached; saving this step (continue with --resume, or "
                f"reproduce the run with --steps {step})")
        r = self.bar.rate() * self.batch_size
        self.bar.update(step - self.bar.n, extra=f"loss {self.loss:.3f} {r:.0f} samples/s" if self.loss is not None else "")

    def on_train_end(self, logs=None):
        self.bar.close()


class RunKeeper(StepCallback):
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
        super().on_epoch_begin(epoch, logs)
        self.t_epoch = time.time()

    def on_epoch_end(self, epoch, logs=None):
        step = current_step(self.model)
        dt = time.time() - self.t_epoch
        done = step - self.epoch_start  # fewer than eval_every when the run stopped mid-epoch
        rec = {"step": step, "epoch": epoch + 1, "loss": float((logs or {}).get("loss", float("nan"))),
               "samples_per_s": round(done * self.cfg.train.batch_size / max(dt, 1e-9), 2),
               "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               "locnet": locnet_enabled(self.model), "time": time.time()}
        kind = model_kind(self.model)
        if kind == "gan":  # no single loss: the generator's is "loss", then every loss the GAN step logs
            rec["loss"] = float((logs or {}).get("g_loss", float("nan")))
            rec.update({k: float(v) for k, v in (logs or {}).items() if k != "loss"})
        if self.val is not None and kind in PAIR_MODES:
            m = evaluate_pairs(self.model, self.val, self.fmt, self.cfg.data.lr_heights)
            rec.update({f"val_{k}": v for k, v in m.items() if k != "count"})
        elif self.val is not None and kind == "quality":
            from lprnet_tf.evaluation import evaluate_quality_net

            m = evaluate_quality_net(self.model, self.val, self.fmt)
            rec.update({f"val_{k}": m[k] for k in ("mae", "lcc", "srocc")})
        elif self.val is not None:
            logits = predict_logits(self.model, self.val, self.fmt, batch_size=128)
            m, _, _ = score(logits, self.val_texts, self.fmt, "greedy", kind=model_kind(self.model))
            rec.update({f"val_{k}": m[k] for k in ("accuracy", "acc1", "char_accuracy", "accuracy_no_first")})
        self._save(step, rec)
        if self.writer is not None:
            import tensorflow as tf

            with self.writer.as_default(step=step):
                for k, v in rec.items():
                    if isinstance(v, float) and k != "time":
                        tf.summary.scalar(k, v)
            self.writer.flush()
        log(f"\n[epoch {epoch + 1}] {format_record(rec)}")

    @property
    def val_texts(self):
        if not hasattr(self, "_val_texts"):
            self._val_texts = self.val.texts()
        return self._val_texts

    def _save(self, step: int, rec: dict):
        # Order matters for kill -9: the metrics line goes first (a kill before the checkpoint makes
        # the resume train this epoch again and drop the line, see trim_metrics); the checkpoint
        # before best/last; last.keras, the usual resume point, is a copy of an intact checkpoint.
        # Every write is atomic; a failed one (disk full) raises ModelFileError and stops the run
        # with the earlier files intact.
        _append_metrics(os.path.join(self.run_dir, "metrics.jsonl"), rec)
        ck_dir = os.path.join(self.run_dir, "checkpoints")
        ck = save_model(self.model, os.path.join(ck_dir, f"step_{step:08d}.keras"))
        for _, old in checkpoint_files(self.run_dir)[: -self.cfg.train.keep_checkpoints]:
            os.remove(old)
        key, acc = best_score(rec)  # exact match; quality networks: SROCC; image models: PSNR
        if acc is not None and acc >= self.state.get("best_val_accuracy", -1.0):
            copy_atomic(ck, os.path.join(self.run_dir, "best.keras"))
            self.state.update(best_val_accuracy=acc, best_step=step, best_metric=key)
        copy_atomic(ck, os.path.join(self.run_dir, "last.keras"))
        self.state["step"] = step
        _write_json(os.path.join(self.run_dir, "state.json"), self.state)


def _append_metrics(path: str, rec: dict):
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
    except OSError as e:
        raise write_error(path, e, f"could not append the step {rec.get('step')} record",
                          "the run's checkpoints are intact") from None


def _write_json(path, obj):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)

    atomic_write(path, write)


_CHECKPOINT = re.compile(r"^step_(\d+)\.keras$")


def checkpoint_files(run_dir: str) -> list[tuple[int, str]]:
    """``[(step, path)]`` of ``run_dir/checkpoints/step_*.keras``, oldest first (temp files excluded)."""
    ck_dir = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(ck_dir):
        return []
    found = [(int(m[1]), os.path.join(ck_dir, n)) for n in os.listdir(ck_dir) if (m := _CHECKPOINT.match(n))]
    return sorted(found)


def _try_load(path: str):
    try:
        return load_model(path, compile=True)
    except ModelFileError as e:
        log(f"warning: {e}; falling back to an older checkpoint (the broken file is left in place)")
        return None


def _load_resume_point(run_dir: str):
    """The newest intact model of last.keras and checkpoints/step_*.keras -> (model, path).

    last.keras is tried first; a checkpoint with a higher step (a kill between writing it and
    updating last.keras) wins over it. Broken files are reported with a warning and kept.
    """
    last_path = os.path.join(run_dir, "last.keras")
    last = _try_load(last_path) if os.path.isfile(last_path) else None
    floor = current_step(last) if last is not None else -1
    for step, path in reversed(checkpoint_files(run_dir)):
        if step <= floor:
            break
        model = _try_load(path)
        if model is not None:
            return model, path
    return (last, last_path) if last is not None else (None, None)


def _parse_metrics(text: str) -> list[dict]:
    recs = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            recs.append(rec)
    return recs


def read_metrics(path: str) -> list[dict]:
    """The records of a ``metrics.jsonl``; a torn or foreign line (a kill mid-append) is skipped."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return _parse_metrics(f.read())


def trim_metrics(run_dir: str, step: int) -> list[dict]:
    """Make ``metrics.jsonl`` one line per epoch up to ``step`` (the step training continues from).

    Drops torn lines and lines past ``step`` (written for an epoch whose checkpoint a kill
    prevented; that epoch is trained again) and keeps the last line of any repeated step.
    Rewritten atomically only when something changes. Returns the kept records.
    """
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    n_lines = sum(1 for line in text.splitlines() if line.strip())
    by_step = {rec["step"]: rec for rec in _parse_metrics(text) if rec["step"] <= step}
    kept = [by_step[k] for k in sorted(by_step)]
    if len(kept) != n_lines or (text and not text.endswith("\n")):
        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)

        atomic_write(path, write)
        log(f"{path}: kept {len(kept)} of {n_lines} lines (dropped torn, repeated or past-step-{step} lines)")
    return kept


def _recover_state(run_dir: str, state: dict, step: int, resume_path: str | None, kept: list[dict]) -> dict:
    """Bring state.json in line with the resume point (a kill can leave it one epoch behind)."""
    state = dict(state, step=step)
    scored = [(*best_score(r), r["step"]) for r in kept]
    for k in ("best_val_accuracy", "best_step", "best_metric"):
        state.pop(k, None)
    for key, acc, step_ in scored:  # same rule as RunKeeper: the latest epoch with the highest score
        if acc is not None and acc >= state.get("best_val_accuracy", -1.0):
            state.update(best_val_accuracy=acc, best_step=step_, best_metric=key)
    best_path = os.path.join(run_dir, "best.keras")
    if resume_path and state.get("best_step") == step and not _same_file(resume_path, best_path):
        copy_atomic(resume_path, best_path)  # the kill came before best.keras was updated
    return state


def _same_file(a: str, b: str) -> bool:
    if not (os.path.isfile(a) and os.path.isfile(b)) or os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def steps_left(start_step: int, total: int, eval_every: int) -> bool:
    """False (and says so) when a resumed run is already at its target; warns when it resumes off the
    evaluation grid."""
    if start_step >= total:
        log(f"run already at step {start_step} >= {total}; nothing to do")
        return False
    if start_step % eval_every:
        log(f"warning: resume step {start_step} is not a multiple of eval_every={eval_every}")
    return True


def check_frames(model, frames: int):
    """A multi-frame model needs ``data.frames`` = its K; a single-crop model needs 0."""
    k = getattr(model, "frames", 0)
    if k != frames:
        raise ConfigError(f"model {model.name} reads {k or 'single'} frame(s) but data.frames is {frames}; "
                          f"set data.frames: {k}" + (f" (and model.options.frames: {frames})" if k else ""))


def build_training_model(cfg: ExperimentConfig, fmt):
    if cfg.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    model = build_model(cfg.model.name, fmt, **cfg.model.options)
    if cfg.train.init_from:
        path, _ = resolve_model(cfg.train.init_from, fmt)
        src = load_model(path)
        fix = (f"initialise from a {model.name} model (train.init_from) or set model.name: {src.name}")
        check_architecture(src, model, path, fix, shapes=False)  # the head may differ (another alphabet)
        copied, skipped = transfer_weights(src, model)
        if not copied:
            raise ModelFileError(f"{path}: no layer of it fits the configured {model.name} (train.init_from); {fix}")
        log(f"init_from {path}: copied {copied} layers" + (f", re-initialised {skipped}" if skipped else ""))
    return model


def _jit_compile() -> bool:
    """Keras' ``jit_compile`` for the recognizers' train step. TensorFlow: False, a ``tf.function`` graph
    without XLA (its CTC loss has no XLA kernel). JAX: True; without ``jax.jit`` every op of the step
    runs eagerly, compiled one by one (tens of times slower, and XLA's GPU compiler crashed compiling
    the CTC scan as a lone primitive)."""
    return keras.backend.backend() != "tensorflow"


def compile_model(model, cfg: ExperimentConfig):
    """Compile for training: the optimizer of :func:`lprnet_tf.optim.make_optimizer` and the kind's loss
    (:func:`lprnet_tf.losses.loss_for_kind`). A GAN (MTGAN) gets two such optimizers, generator and
    discriminator (the discriminator's gradient noise seeded ``train.seed + 1``), and computes its losses
    in its own train step; EMA and mixed precision are not supported for it (ConfigError)."""
    kind = model_kind(model)
    if kind == "gan":
        t = cfg.train
        if t.ema or t.mixed_precision:
            raise ConfigError(f"model {model.name} trains two networks with its own step: set train.ema: false and "
                              f"train.mixed_precision: false")
        d_opt = make_optimizer(dataclasses.replace(t, seed=t.seed + 1))
        model.compile(g_optimizer=make_optimizer(t), d_optimizer=d_opt, jit_compile=False,
                      steps_per_execution=t.steps_per_execution)
        return model
    loss = loss_for_kind(kind, model.name)  # CTC, per-slot cross-entropy for slot models, pixel MSE for images
    model.compile(optimizer=make_optimizer(cfg.train), loss=loss, jit_compile=_jit_compile(),
                  steps_per_execution=cfg.train.steps_per_execution)
    return model


def open_run(cfg: ExperimentConfig, fmt, run_dir: str, resume: bool):
    """Open ``run_dir`` to (re)start training -> (compiled model at its resume step, state dict).

    Shared by :func:`train` and :mod:`lprnet_tf.distributed`: refuses to overwrite a run without
    ``resume``, removes stale temp files, loads and checks the resume point, writes the resolved
    config and plate format, and trims ``metrics.jsonl`` / recovers ``state.json`` to that step.
    """
    os.makedirs(run_dir, exist_ok=True)
    state_path = os.path.join(run_dir, "state.json")
    model = path = None
    if not resume and os.path.isfile(os.path.join(run_dir, "last.keras")):
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose a new --run_dir")
    for folder in (run_dir, os.path.join(run_dir, "checkpoints")):
        for p in remove_stale_temps(folder):
            log(f"removed {p} (a temp file left by an interrupted write)")
    if resume:
        model, path = _load_resume_point(run_dir)
        if model is None:
            log(f"{run_dir}: nothing to resume from; starting a new run")
        else:
            log(f"resuming from {path}")
            fix = (f"resume with the config the run was started with ({os.path.join(run_dir, 'config.yaml')}) "
                   f"or choose a new --run_dir")
            check_model_format(model, fmt, path)
            check_architecture(model, build_model(cfg.model.name, fmt, **cfg.model.options), path, fix)
    if model is None:
        model = compile_model(build_training_model(cfg, fmt), cfg)
        state = {"name": cfg.name, "step": 0}
    else:
        state = {"name": cfg.name}
        if os.path.isfile(state_path):
            try:
                with open(state_path, encoding="utf-8") as f:
                    state = dict(json.load(f))
            except (ValueError, TypeError):  # rebuilt from metrics.jsonl by _recover_state below
                log(f"warning: {state_path} is unreadable; rebuilding it from metrics.jsonl")
    atomic_write(os.path.join(run_dir, "config.yaml"), lambda tmp: save_config(cfg, tmp))
    atomic_write(os.path.join(run_dir, "plate_format.yaml"), fmt.save)

    kept = trim_metrics(run_dir, current_step(model))
    if path is not None:
        state = _recover_state(run_dir, state, current_step(model), path, kept)
    return model, state


def train(cfg: ExperimentConfig, run_dir: str, resume: bool = False, steps: int | None = None,
          verbose: bool = True, time_limit: float | None = None) -> dict:
    """Train (or resume) a run; returns the final ``state.json`` contents.

    ``time_limit`` (seconds, ``--time_limit``): stop at the first step done that long after this call
    began (model loading and compilation included), validate and checkpoint it as at an epoch's end;
    ``state["stopped_by_time_limit"]`` is then that step (a later call without a limit removes it)."""
    t_start = time.time()
    if steps is not None and steps < 1:
        raise ConfigError(f"steps (--steps) must be >= 1, got {steps}")
    if time_limit is not None and not time_limit > 0:
        raise ConfigError(f"time_limit (--time_limit) must be > 0 seconds, got {time_limit}")
    keras.utils.set_random_seed(cfg.train.seed)
    fmt = load_plate_format(cfg.plate_format)
    check_model_inputs(cfg)
    total = int(steps or cfg.train.steps)
    state_path = os.path.join(run_dir, "state.json")
    model, state = open_run(cfg, fmt, run_dir, resume)
    start_step = current_step(model)
    e = cfg.train.eval_every
    if not steps_left(start_step, total, e):
        state.pop("stopped_by_time_limit", None)  # this call trained nothing, so no limit stopped it
        return state
    initial_epoch, epochs = start_step // e, -(-total // e)
    bs = cfg.train.batch_size

    d = cfg.data
    check_frames(model, d.frames)
    # what each sample is made of; dgm / mtgan read (HR, LR) pairs (config: data.pairs lowres)
    options = SampleOptions.from_config(d, pairs=PAIR_MODES.get(model_kind(model), ""))
    tracks = {"frames": d.frames, "track_policy": d.track_policy}
    train_src = open_train_source(d.train, fmt, split=d.train_split or None, mix=d.mix, seed=cfg.train.seed,
                                  skip_bad=d.skip_bad, **tracks)
    val_src = open_source(d.val, fmt, split=d.val_split or None, skip_bad=d.skip_bad, **tracks) if d.val else None
    if isinstance(val_src, SynthSource) and val_src.size is None:
        raise ConfigError("data.val: a synthetic validation set needs a count, e.g. synth:1000003:512")
    mixed = "".join(f" + {m['weight']:g} {m['source']}" + (f" ({m['plate_format']})" if m.get("plate_format") else "")
                    for m in d.mix)
    log(f"train data: {d.train}{mixed} ({'stream' if len(train_src) >= SYNTH_STREAM else len(train_src)}), "
        f"val: {d.val} ({len(val_src) if val_src is not None else 0}), steps {start_step}->{total}, batch {bs}")
    start_sample = start_step * bs
    if keras.backend.backend() == "tensorflow":
        data = build_dataset(train_src, fmt, bs, augment=d.augment, shuffle=True, seed=cfg.train.seed,
                             start=start_sample, repeat=True, drop_remainder=True, workers=d.workers, options=options)
    else:
        data = make_batch_sequence(train_src, fmt, bs, steps=(epochs - initial_epoch) * e, augment=d.augment,
                                   shuffle=True, seed=cfg.train.seed, start=start_sample,
                                   workers=cfg.train.backend_workers, processes=d.workers, options=options)
    prog = ProgressCallback(total, start_step, bs, deadline=t_start + time_limit if time_limit else None)
    prog.bar.enabled = verbose
    callbacks = [LocNetGate(cfg.train.locnet_start_step), prog, RunKeeper(run_dir, cfg, fmt, val_src, state, prog)]
    t0 = time.time()
    model.fit(data, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=e, callbacks=callbacks, verbose=0, shuffle=False)
    state["train_seconds"] = state.get("train_seconds", 0.0) + (time.time() - t0)
    state.pop("stopped_by_time_limit", None)
    if prog.stopped_at is not None:
        state["stopped_by_time_limit"] = prog.stopped_at
    _write_json(state_path, state)
    if cfg.train.ema:  # fit() swapped the EMA weights in at the end: save them as the final model
        save_model(model, os.path.join(run_dir, "final_ema.keras"))
    return state


def summarize(model) -> dict:
    """Parameter count and forward GFLOPs for one image (TensorFlow graph profiler; TF backend)."""
    import tensorflow as tf

    from lprnet_tf.modelio import input_shape_of

    spec = tf.TensorSpec((1,) + input_shape_of(model), tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    prof = tf.compat.v1.profiler.profile(graph=concrete.graph, options=opts)
    return {"params": int(model.count_params()), "gflops": prof.total_float_ops / 1e9}
