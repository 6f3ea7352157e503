"""Distributed training with TensorFlow's own engine: a custom training loop under ``tf.distribute``.

``model.fit`` + ``MultiWorkerMirroredStrategy`` fails under Keras 3, so ``lprnet-train --strategy
mirrored|multiworker`` trains here instead (``docs/distributed.md``):

- ``mirrored``: ``tf.distribute.MirroredStrategy``, one host, one replica per GPU (or per logical
  CPU device with ``cpu_replicas``, to try the path without GPUs).
- ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy`` across hosts described by the
  ``TF_CONFIG`` environment variable; every host runs the same command.

The recipe is :mod:`lprnet_tf.training`'s: the same config, model builder, CTC loss, optimizer with
its lr schedule and gradient noise, LocNet gate, validation, run directory, checkpoints and resume
(:func:`~lprnet_tf.training.open_run`, :class:`~lprnet_tf.training.RunKeeper`), so a run started
with ``model.fit`` can continue here and the other way round. What differs:

- The global batch ``train.batch_size`` is cut into one equal slice per replica; every step covers
  the samples ``step * batch_size ..`` of the single-device run, each worker computing only its own
  replicas' slices (``build_dataset(slices=...)``). A slice is augmented as a batch of its own, so
  with augmentation the pixels (not the samples) differ from a single-device run; batch
  normalization uses each replica's own slice statistics, as ``fit`` under a strategy does, and
  the replicas' moving statistics are averaged at every epoch end.
- The loss is the per-sample CTC loss summed over the replica's slice and divided by the global
  batch; the optimizer sums the replicas' gradients (all-reduce), so a step equals one step on
  the global batch.
- Only the chief (``TF_CONFIG`` task ``chief``, else ``worker`` 0) validates and writes the run
  directory, from a plain (non-distributed) copy of the model refreshed at every epoch end. At the
  start, every worker takes the chief's weights and optimizer state by a collective broadcast, so
  only the chief needs the checkpoint to resume. At the end every worker of a multi-worker run
  writes its own copy of the final weights to ``workers/<task>_<index>/`` (proof that the replicas
  agree).
- A worker that loses another one (process died, host silent) stops with :class:`ClusterError`;
  all of them are restarted with ``--resume``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import keras

from lprnet_tf.config import ConfigError, ExperimentConfig, UsageError, check_model_inputs
from lprnet_tf.data.pipeline import SampleOptions, SynthSource, build_dataset, open_source, open_train_source
from lprnet_tf.modelio import ModelFileError, atomic_write, save_model
from lprnet_tf.training import (LocNetGate, ProgressCallback, RunKeeper, _write_json, build_training_model,
                                compile_model, current_step, log, open_run, steps_left)
from lprnet_tf.vocab import load_plate_format

STRATEGIES = ("mirrored", "multiworker")


# ---- strategy -------------------------------------------------------------------------------------
def read_tf_config(environ=None) -> dict:
    """The parsed ``TF_CONFIG`` of a multi-worker run; a missing or malformed one is a UsageError."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\' (see docs/distributed.md)')
    if not raw.strip():
        raise UsageError(f"--strategy multiworker needs the TF_CONFIG environment variable; {example}")
    try:
        tf_config = json.loads(raw)
    except ValueError as e:
        raise UsageError(f"TF_CONFIG is not valid JSON ({e}); {example}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise UsageError(f"TF_CONFIG: 'cluster' must list the 'worker' (and optional 'chief') addresses; {example}")
    for kind, hosts in cluster.items():
        if kind not in ("chief", "worker"):
            raise UsageError(f"TF_CONFIG: cluster job '{kind}' is not used here (only 'chief' and 'worker'); {example}")
        if not isinstance(hosts, list) or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise UsageError(f"TF_CONFIG: cluster.{kind} must be a list of 'host:port' strings, got {hosts!r}")
    if len(cluster.get("chief", [])) > 1:
        raise UsageError("TF_CONFIG: a cluster has at most one 'chief'")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise UsageError(f"TF_CONFIG: 'task' must name this process's job ({sorted(cluster)}) and index; {example}")
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise UsageError(f"TF_CONFIG: task index {index!r} is out of range for the "
                         f"{len(cluster[task['type']])} '{task['type']}' address(es)")
    return tf_config


def make_strategy(kind: str, cpu_replicas: int = 0, devices=None):
    """``mirrored`` or ``multiworker``; create it before anything else touches TensorFlow.

    ``cpu_replicas`` > 0 (mirrored only) splits the CPU into that many logical devices, one replica
    each; ``devices`` (mirrored only) lists the devices to use (default: every GPU, else the CPU).
    """
    if kind not in STRATEGIES:
        raise UsageError(f"unknown strategy '{kind}'; choose one of {STRATEGIES}")
    if keras.backend.backend() != "tensorflow":
        raise UsageError(f"--strategy {kind} needs the TensorFlow backend (KERAS_BACKEND={keras.backend.backend()}); "
                         f"the JAX backend trains on one device with the default strategy")
    import tensorflow as tf

    if kind == "multiworker":
        if cpu_replicas or devices:
            raise UsageError("--cpu_replicas and --devices apply to --strategy mirrored only; a multi-worker "
                             "run uses every GPU of each host (or its CPU)")
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_replicas:
        if cpu_replicas < 1:
            raise UsageError(f"--cpu_replicas must be >= 1, got {cpu_replicas}")
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        except RuntimeError as e:  # TensorFlow is already initialised in this process
            raise UsageError(f"--cpu_replicas must be applied before TensorFlow starts ({e})") from None
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    task_type: str  # "chief" / "worker" (a one-host MirroredStrategy reads as the chief)
    task_id: int
    is_chief: bool
    num_workers: int

    @property
    def name(self) -> str:
        return f"{self.task_type}_{self.task_id}"


def task_info(strategy) -> TaskInfo:
    """Who this process is in the cluster; the chief is task ``chief``, else ``worker`` 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return TaskInfo("chief", 0, True, 1)
    spec = resolver.cluster_spec().as_dict()
    n = sum(len(v) for k, v in spec.items() if k in ("chief", "worker"))
    t, i = resolver.task_type, int(resolver.task_id or 0)
    return TaskInfo(t, i, t == "chief" or (t == "worker" and i == 0 and "chief" not in spec), n)


# ---- model state ------------------------------------------------------------------------------------
def state_variables(model) -> list:
    """Everything a step changes: model weights (incl. BN statistics, LocNet gate, seeds) and the
    optimizer's variables (step counter, moments, EMA), in a fixed order."""
    return list(model.variables) + list(model.optimizer.variables)


def copy_state(src, dst, where: str = "checkpoint"):
    """Copy weights and optimizer state from ``src`` to ``dst`` (same architecture and optimizer)."""
    a, b = state_variables(src), state_variables(dst)
    bad = [i for i, (x, y) in enumerate(zip(a, b)) if tuple(x.shape) != tuple(y.shape)]
    if len(a) != len(b) or bad:
        raise ModelFileError(f"{where}: its weights/optimizer state ({len(a)} variables) do not fit the configured "
                             f"model and optimizer ({len(b)} variables); resume with the config the run was started "
                             f"with (train.ema and train.mixed_precision included) or choose a new --run_dir")
    for x, y in zip(a, b):
        y.assign(keras.ops.convert_to_numpy(x))


def sync_from_chief(strategy, model):
    """Give every replica of every worker the chief's weights and optimizer state (collective
    broadcast from replica 0, which lives on the chief). Refuses workers whose model differs."""
    import tensorflow as tf

    variables = state_variables(model)
    shape_sig = tf.constant([len(variables), sum(int(v.shape.num_elements() or 0) for v in variables)], tf.float32)

    def check():
        ctx = tf.distribute.get_replica_context()
        return ctx.all_reduce("SUM", shape_sig) - shape_sig * ctx.num_replicas_in_sync

    diff = strategy.experimental_local_results(strategy.run(tf.function(check)))[0]
    if float(tf.reduce_max(tf.abs(diff))) != 0.0:
        raise ConfigError("the workers built different models (variable count or size differ); run every worker "
                          "with the same --config, --schedule and --set flags")

    groups: dict = {}  # one all-reduce per dtype (a batched all-reduce packs same-dtype tensors)
    for v in variables:
        groups.setdefault(v.dtype, []).append(v)

    @tf.function
    def broadcast():
        def fn():
            ctx = tf.distribute.get_replica_context()
            src = tf.equal(ctx.replica_id_in_sync_group, 0)
            return [ctx.all_reduce("SUM", [tf.where(src, tf.convert_to_tensor(v), tf.zeros(v.shape, v.dtype))
                                           for v in group]) for group in groups.values()]
        return strategy.run(fn)

    for group, values in zip(groups.values(), broadcast()):
        for v, value in zip(group, values):
            v.assign(strategy.experimental_local_results(value)[0])


def make_statistics_sync(strategy, model):
    """-> ``sync()``: every replica's non-trainable float weights (batch-norm moving statistics) set
    to their mean over the replicas. Each replica updates its own copy from its own slices (as
    ``fit`` under a strategy does); averaging them before every checkpoint makes all workers hold
    the same weights and turns the per-replica estimates into one estimate over the global batch."""
    import tensorflow as tf

    stats = [v for v in model.non_trainable_variables if keras.backend.is_float_dtype(v.dtype)]

    @tf.function
    def mean():
        def fn():
            return tf.distribute.get_replica_context().all_reduce("MEAN", [tf.identity(v.value) for v in stats])
        return strategy.run(fn)

    def sync():
        if stats and strategy.num_replicas_in_sync > 1:
            for v, value in zip(stats, mean()):
                v.assign(strategy.experimental_local_results(value)[0])
    return sync


# ---- training ---------------------------------------------------------------------------------------
def _fresh_model(cfg: ExperimentConfig, fmt, init: bool):
    """A compiled training model with its optimizer built (``init``: apply ``train.init_from``)."""
    if not init:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init_from=""))
    model = compile_model(build_training_model(cfg, fmt), cfg)
    model.optimizer.build(model.trainable_variables)
    return model


def _make_step(strategy, model, global_batch: int):
    import tensorflow as tf

    per_sample_ctc = model.loss.call  # CTC, or per-slot cross-entropy: compile_model picks it by model kind
    optimizer = model.optimizer

    def step_fn(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.nn.compute_average_loss(per_sample_ctc(y, logits), global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(loss)  # mixed precision: the loss-scale optimizer's factor
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)  # all-reduces (sums) the replicas' gradients
        return loss

    @tf.function
    def train_steps(iterator, n):
        """``n`` steps in one call; returns the sum of their (global-batch) losses."""
        total = tf.constant(0.0)
        for _ in tf.range(n):
            x, y = next(iterator)
            total += strategy.reduce("SUM", strategy.run(step_fn, args=(x, y)), axis=None)
        return total

    return train_steps


class ClusterError(RuntimeError):
    """A multi-worker run lost another worker (it died, or a collective timed out): every worker
    stops; restart all of them with ``--resume``. The chief's last checkpoint is intact."""


def train_distributed(cfg: ExperimentConfig, run_dir: str, strategy, resume: bool = False,
                      steps: int | None = None, verbose: bool = True) -> dict:
    """Train (or resume) a run under ``strategy`` (:func:`make_strategy`); returns the state dict
    (the chief's ``state.json`` contents; a non-chief worker's own summary).

    A worker that loses another one raises :class:`ClusterError`: TensorFlow aborts the collectives
    with ``UnavailableError`` when a peer's connection drops (its process died) or its heartbeats
    stop (its host froze or left the network), within seconds.
    """
    import tensorflow as tf

    from lprnet_tf.models import model_kind

    if model_kind(cfg.model.name) in ("image", "gan"):  # the custom loop is the recognizers' (one loss, one optimizer)
        raise ConfigError(f"model {cfg.model.name} trains on (HR, LR) pairs with model.fit only; run lprnet-train "
                          f"without --strategy")
    try:
        return _train(cfg, run_dir, strategy, resume, steps, verbose)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError) as e:
        lines = [line.strip() for line in (e.message or "").splitlines() if line.strip()] or [type(e).__name__]
        first = next((line for line in lines if "aborted by" in line or "timed out" in line.lower()), lines[0])[:240]
        raise ClusterError(f"lost contact with another worker ({type(e).__name__}: {first}); every worker stops: "
                           f"restart all of them with --resume (the chief's run directory keeps its last "
                           f"checkpoint)") from None


def strategy_name(strategy) -> str:
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def _train(cfg: ExperimentConfig, run_dir: str, strategy, resume: bool, steps: int | None, verbose: bool) -> dict:
    import tensorflow as tf

    info = task_info(strategy)
    keras.utils.set_random_seed(cfg.train.seed)
    fmt = load_plate_format(cfg.plate_format)
    check_model_inputs(cfg)
    total = int(steps or cfg.train.steps)
    replicas = strategy.num_replicas_in_sync
    gb = cfg.train.batch_size
    if gb % replicas:
        raise ConfigError(f"train.batch_size={gb} must be a multiple of the {replicas} replicas "
                          f"(each replica takes an equal slice of the global batch)")
    log(f"{info.name}: {strategy_name(strategy)}, {info.num_workers} worker(s), {replicas} replica(s), "
        f"{gb // replicas} samples per replica per step" + (" (chief)" if info.is_chief else ""))

    # The chief opens the run directory as model.fit does (resume point, checks, metrics trimmed);
    # its plain model is also the copy that validates and saves. Workers start from the config and
    # take the chief's state below.
    twin, state = open_run(cfg, fmt, run_dir, resume) if info.is_chief else (None, None)
    resumed = twin is not None and current_step(twin) > 0
    if twin is not None and not twin.optimizer.built:
        twin.optimizer.build(twin.trainable_variables)
    with strategy.scope():
        model = _fresh_model(cfg, fmt, init=False)
    if twin is not None:
        copy_state(twin, model, where=f"{run_dir} (resume point)" if resumed else "train.init_from")
    if info.num_workers > 1:
        sync_from_chief(strategy, model)
    start_step = current_step(model)
    if state is None:
        state = {"name": cfg.name, "task": info.name, "step": start_step, "chief": False}

    e = cfg.train.eval_every
    if not steps_left(start_step, total, e):
        return state

    d = cfg.data
    train_src = open_train_source(d.train, fmt, split=d.train_split or None, mix=d.mix, seed=cfg.train.seed,
                                  skip_bad=d.skip_bad)
    val_src = None
    if info.is_chief and d.val:
        val_src = open_source(d.val, fmt, split=d.val_split or None, skip_bad=d.skip_bad)
        if isinstance(val_src, SynthSource) and val_src.size is None:
            raise ConfigError("data.val: a synthetic validation set needs a count, e.g. synth:1000003:512")

    def dataset_fn(ctx):
        local = replicas // ctx.num_input_pipelines  # this worker's replicas take consecutive slices
        return build_dataset(train_src, fmt, gb, augment=d.augment, shuffle=True, seed=cfg.train.seed,
                             start=start_step * gb, repeat=True, drop_remainder=True, workers=d.workers,
                             slices=(ctx.input_pipeline_id * local, local, replicas),
                             options=SampleOptions.from_config(d))

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    train_steps = _make_step(strategy, model, gb)
    sync_statistics = make_statistics_sync(strategy, model)

    gate = LocNetGate(cfg.train.locnet_start_step)
    prog = ProgressCallback(total, start_step, gb)
    prog.bar.enabled = verbose
    for cb in (gate, prog):
        cb.set_model(model)
    keeper = None
    if info.is_chief:
        keeper = RunKeeper(run_dir, cfg, fmt, val_src, state, prog)
        keeper.set_model(twin)
        keeper.on_train_begin()
    gate.on_train_begin()

    t0 = time.time()
    step = start_step
    while step < total:
        epoch = step // e
        epoch_end = min((epoch + 1) * e, total)
        if keeper is not None:
            keeper.on_epoch_begin(epoch)
        loss_sum, n_steps, first = 0.0, 0, step
        for cb in (gate, prog):
            cb.on_epoch_begin(epoch)
        while step < epoch_end:
            n = min(cfg.train.steps_per_execution, epoch_end - step)
            chunk = float(train_steps(iterator, tf.constant(n, tf.int32)))
            loss_sum, n_steps, step = loss_sum + chunk, n_steps + n, step + n
            batch = step - first - 1  # as Keras passes it: the index in the epoch of the last step done
            prog.on_train_batch_end(batch, {"loss": chunk / n})
            gate.on_train_batch_end(batch)
        sync_statistics()  # every worker, before the chief's checkpoint
        if keeper is not None:
            copy_state(model, twin)
            keeper.on_epoch_end(epoch, {"loss": loss_sum / n_steps})
    prog.on_train_end()
    seconds = time.time() - t0

    if cfg.train.ema:  # as fit() does at the end: swap the moving averages in and save them
        model.optimizer.finalize_variable_values(model.trainable_variables)
    if info.is_chief:
        state["train_seconds"] = state.get("train_seconds", 0.0) + seconds
        state["strategy"] = {"name": strategy_name(strategy), "workers": info.num_workers, "replicas": replicas}
        _write_json(os.path.join(run_dir, "state.json"), state)
        if cfg.train.ema:
            copy_state(model, twin)
            save_model(twin, os.path.join(run_dir, "final_ema.keras"))
    if info.num_workers > 1:
        state = save_worker_copy(model, run_dir, info, step, state)
    return state


def save_worker_copy(model, run_dir: str, info: TaskInfo, step: int, state: dict) -> dict:
    """Every worker of a multi-worker run: ``workers/<task>_<index>/final.weights.h5`` + ``worker.json``."""
    folder = os.path.join(run_dir, "workers", info.name)
    atomic_write(os.path.join(folder, "final.weights.h5"), model.save_weights)
    summary = {"task": info.name, "step": step, "chief": info.is_chief, "workers": info.num_workers}
    _write_json(os.path.join(folder, "worker.json"), summary)
    return state if info.is_chief else dict(state, **summary)
