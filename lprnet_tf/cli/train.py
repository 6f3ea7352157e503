"""lprnet-train: train (or resume) a recognizer from an experiment YAML.

  lprnet-train --config configs/experiments/lprnet_cn_basic.yaml --run_dir runs/cn_basic \
      [--schedule cpu] [--steps N] [--resume] [--set train.batch_size=64 --set data.train=DIR]
"""

from __future__ import annotations

from absl import app, flags

from lprnet_tf.cli.common import run_guarded
from lprnet_tf.config import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "Experiment YAML (see configs/experiments/).")
flags.DEFINE_string("run_dir", None, "Run directory: config.yaml, checkpoints/, best.keras, last.keras, "
                    "metrics.jsonl, logs/ (TensorBoard).")
flags.DEFINE_string("schedule", None, "Named schedule from the YAML's schedules: section (e.g. 'cpu' for the "
                    "short CPU schedule; default: the paper schedule written at the top level).")
flags.DEFINE_integer("steps", None, "Stop at this global step (default: train.steps of the config).")
flags.DEFINE_bool("resume", False, "Continue the run in --run_dir from last.keras (same step, optimizer "
                  "state, LocNet stage and data order).")
flags.DEFINE_multi_string("set", [], "Override a config value: key=value with a dotted key, e.g. "
                          "--set train.batch_size=64 (repeatable).")
flags.DEFINE_bool("quiet", False, "No progress bar.")


def _main(argv):
    del argv
    from lprnet_tf.config import load_config
    from lprnet_tf.training import train

    if not FLAGS.config or not FLAGS.run_dir:
        raise UsageError("--config and --run_dir are required (see --help)")
    cfg = load_config(FLAGS.config, FLAGS.set, FLAGS.schedule)
    state = train(cfg, FLAGS.run_dir, resume=FLAGS.resume, steps=FLAGS.steps, verbose=not FLAGS.quiet)
    print(f"done: step {state.get('step')} best val accuracy {state.get('best_val_accuracy')} "
          f"(step {state.get('best_step')}) -> {FLAGS.run_dir}")


def main():
    app.run(lambda argv: run_guarded(_main, argv))


if __name__ == "__main__":
    main()
