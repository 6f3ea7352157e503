"""lprnet-info: parameter counts and GFLOPs of the LPRNet family next to the paper's Table 4.

  lprnet-info [--format cn] [--models lprnet_basic,lprnet_reduced,lprnet_baseline] [--locnet]
"""

from __future__ import annotations

from absl import app, flags

from lprnet_tf.cli.common import parse_flags, run_guarded
from lprnet_tf.config import ConfigError, UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("format", "cn", "Plate format (sets classes and input size).")
flags.DEFINE_list("models", ["lprnet_basic", "lprnet_reduced", "lprnet_baseline"], "Registered model names.")
flags.DEFINE_bool("locnet", False, "Include the LocNet spatial transformer.")
flags.DEFINE_list("set", [], "Model options as key=value (YAML values), e.g. recognizer=cn_lprnet_basic for the "
                  "eq_lpr_* quality networks, frames=5 for iq_stan.")

PAPER_GFLOPS = {"lprnet_basic": 0.34, "lprnet_reduced": 0.163, "lprnet_baseline": 0.71}


def _main(argv):
    del argv
    from lprnet_tf.models import build_model
    from lprnet_tf.training import summarize
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format(FLAGS.format)
    print("| model | input | classes | output steps | params | GFLOPs | paper GFLOPs (Table 4) |")
    print("|---|---|---|---|---|---|---|")
    for name in FLAGS.models:
        import yaml

        opts = {"locnet": True} if FLAGS.locnet else {}
        for item in FLAGS.set:
            key, _, value = item.partition("=")
            if not key or not _:
                raise UsageError(f"--set {item!r}: use key=value, e.g. --set recognizer=cn_lprnet_basic")
            opts[key.strip()] = yaml.safe_load(value)
        try:
            model = build_model(name, fmt, options_from="--set", **opts)
        except ConfigError as e:  # an unknown option, or a value the model refuses
            sets = f" --set {','.join(FLAGS.set)}" if FLAGS.set else ""
            raise UsageError(f"model {name} (--format {FLAGS.format}{sets}): {e}") from None
        s = summarize(model)
        from lprnet_tf.modelio import input_shape_of

        if hasattr(model, "steps"):  # IQ-STAN: attention decoder steps
            steps = model.steps
        elif hasattr(model, "net"):  # EQ-LPR quality network: one score
            steps = 1
        else:
            steps = model.output_shape[1]  # CTC time steps T (slot models: character slots)
        h, w = input_shape_of(model)[:2]
        print(f"| {name}{' +LocNet' if FLAGS.locnet else ''} | {h}x{w} | {fmt.num_classes} | "
              f"{steps} | {s['params']:,} | {s['gflops']:.3f} | {PAPER_GFLOPS.get(name, '-')} |")


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
