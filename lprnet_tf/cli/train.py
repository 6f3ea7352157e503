"""lprnet-train: train (or resume) a model from an experiment YAML (recognizers, quality networks, and the
low-resolution DGM / MTGAN on HR/LR pairs: configs/experiments/dgm_cn.yaml, mtgan_cn.yaml).

  lprnet-train --config configs/experiments/lprnet_cn_basic.yaml --run_dir runs/cn_basic \
      [--schedule cpu] [--steps N] [--resume] [--set train.batch_size=64 --set data.train=DIR]

  Several GPUs of one host, or several hosts (TF_CONFIG): add --strategy mirrored|multiworker
  (a custom tf.distribute loop, docs/distributed.md).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from lprnet_tf.cli.common import EXIT_PEER_LOST, check_output_dir, one_line, parse_flags, run_guarded
from lprnet_tf.config import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "Experiment YAML (see configs/experiments/).")
flags.DEFINE_string("run_dir", None, "Run directory: config.yaml, checkpoints/, best.keras, last.keras, "
                    "metrics.jsonl, logs/ (TensorBoard).")
flags.DEFINE_string("schedule", None, "Named schedule from the YAML's schedules: section (e.g. 'cpu' for the "
                    "short CPU schedule; default: the paper schedule written at the top level).")
flags.DEFINE_integer("steps", None, "Stop at this global step (default: train.steps of the config).", lower_bound=1)
flags.DEFINE_float("time_limit", None, "Wall-clock limit in seconds (model loading and compilation included): "
                   "stop at the first step done after it, validate and checkpoint that step, exit 0; continue "
                   "with --resume. Leave time for the last validation and checkpoint. Only with --strategy none.",
                   lower_bound=1.0)
flags.DEFINE_bool("resume", False, "Continue the run in --run_dir from last.keras (same step, optimizer "
                  "state, LocNet stage and data order).")
flags.DEFINE_multi_string("set", [], "Override a config value: key=value with a dotted key, e.g. "
                          "--set train.batch_size=64 (repeatable).")
flags.DEFINE_bool("quiet", False, "No progress bar.")
flags.DEFINE_enum("strategy", "none", ["none", "mirrored", "multiworker"],
                  "none: model.fit on one device (default). mirrored: tf.distribute.MirroredStrategy, one "
                  "replica per GPU of this host. multiworker: MultiWorkerMirroredStrategy across the hosts "
                  "in the TF_CONFIG environment variable (run the same command on every host). Both use "
                  "a custom training loop with the same recipe, run directory and --resume (docs/distributed.md).")
flags.DEFINE_integer("cpu_replicas", 0, "With --strategy mirrored: split the CPU into this many logical "
                     "devices, one replica each (to try the mirrored path on a machine without GPUs).")
flags.DEFINE_bool("deterministic", False, "Bitwise-reproducible runs: TensorFlow deterministic ops (XLA "
                  "deterministic ops under JAX); same seed and config give the same losses. Slower on GPU.")


def _enable_determinism():
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _main(argv):
    del argv
    from lprnet_tf.config import load_config

    if not FLAGS.config or not FLAGS.run_dir:
        raise UsageError("--config and --run_dir are required (see --help)")
    check_output_dir(FLAGS.run_dir, "--run_dir")
    if FLAGS.cpu_replicas and FLAGS.strategy != "mirrored":
        raise UsageError("--cpu_replicas needs --strategy mirrored")
    if FLAGS.time_limit is not None and FLAGS.strategy != "none":
        raise UsageError("--time_limit works with --strategy none only (the workers of a distributed run must "
                         "stop at the same step); use --steps")
    cfg = load_config(FLAGS.config, FLAGS.set, FLAGS.schedule)
    if FLAGS.strategy == "none":
        from lprnet_tf.training import train

        if FLAGS.deterministic:
            _enable_determinism()
        state = train(cfg, FLAGS.run_dir, resume=FLAGS.resume, steps=FLAGS.steps, verbose=not FLAGS.quiet,
                      time_limit=FLAGS.time_limit)
    else:
        from lprnet_tf.distributed import ClusterError, make_strategy, train_distributed

        strategy = make_strategy(FLAGS.strategy, cpu_replicas=FLAGS.cpu_replicas)  # before TF starts
        if FLAGS.deterministic:
            _enable_determinism()
        try:
            state = train_distributed(cfg, FLAGS.run_dir, strategy, resume=FLAGS.resume, steps=FLAGS.steps,
                                      verbose=not FLAGS.quiet)
        except ClusterError as e:
            print(f"error: {one_line(str(e))}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(EXIT_PEER_LOST)  # TensorFlow's cluster threads would keep a normal exit waiting forever
        if state.get("chief") is False:
            print(f"done: step {state.get('step')} ({state.get('task')}; the chief writes the run directory)")
            return
    if FLAGS.time_limit is not None and state.get("stopped_by_time_limit") is not None:
        print(f"stopped by --time_limit {FLAGS.time_limit:g} s at step {state['stopped_by_time_limit']} (of "
              f"{FLAGS.steps or cfg.train.steps}); continue with --resume")
    print(f"done: step {state.get('step')} best val score {state.get('best_val_accuracy')} "
          f"(step {state.get('best_step')}; {state.get('best_metric') or 'val_accuracy'}: exact match, SROCC for "
          f"quality networks, PSNR for image models) -> {FLAGS.run_dir}")


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
