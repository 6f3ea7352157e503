"""lprnet-info: parameter counts and GFLOPs of the LPRNet family next to the paper's Table 4.

  lprnet-info [--format cn] [--models lprnet_basic,lprnet_reduced,lprnet_baseline] [--locnet]
"""

from __future__ import annotations

from absl import app, flags

from lprnet_tf.cli.common import parse_flags, run_guarded

FLAGS = flags.FLAGS
flags.DEFINE_string("format", "cn", "Plate format (sets classes and input size).")
flags.DEFINE_list("models", ["lprnet_basic", "lprnet_reduced", "lprnet_baseline"], "Registered model names.")
flags.DEFINE_bool("locnet", False, "Include the LocNet spatial transformer.")

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
        opts = {"locnet": True} if FLAGS.locnet else {}
        model = build_model(name, fmt, **opts)
        s = summarize(model)
        steps = model.output_shape[1]  # CTC time steps T (slot models: character slots)
        print(f"| {name}{' +LocNet' if FLAGS.locnet else ''} | {fmt.height}x{fmt.width} | {fmt.num_classes} | "
              f"{steps} | {s['params']:,} | {s['gflops']:.3f} | {PAPER_GFLOPS.get(name, '-')} |")


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
