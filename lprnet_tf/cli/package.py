"""lprnet-package: turn a training run into a shipped pretrained model folder.

  lprnet-package --model runs/cn_basic --name cn_lprnet_basic [--eval_dir eval/cn] [--notes "..."]

Writes ``lprnet_tf/pretrained/NAME/`` (or ``--out_root``): ``model.keras`` (weights only, no
optimizer state), ``plate_format.yaml``, ``config.yaml`` (the run's resolved training config),
``train_state.json`` and ``metrics/*.json`` copied from evaluation folders. The README of the
folder is written by hand: it says how the model was trained and what it scores.
"""

from __future__ import annotations

import json
import os
import shutil

from absl import app, flags

from lprnet_tf.cli.common import parse_flags, run_guarded
from lprnet_tf.config import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Run directory (its best.keras) or a .keras file.")
flags.DEFINE_string("name", None, "Name of the shipped model, e.g. cn_lprnet_basic.")
flags.DEFINE_string("out_root", None, "Folder of shipped models (default: lprnet_tf/pretrained).")
flags.DEFINE_multi_string("eval_dir", [], "Evaluation output folders whose metrics.json to ship (repeatable).")


def _main(argv):
    del argv
    from lprnet_tf.modelio import PRETRAINED_DIR, load_model, resolve_model, save_model

    if not FLAGS.model or not FLAGS.name:
        raise UsageError("--model and --name are required (see --help)")
    path, fmt = resolve_model(FLAGS.model)
    out = os.path.join(FLAGS.out_root or PRETRAINED_DIR, FLAGS.name)
    os.makedirs(os.path.join(out, "metrics"), exist_ok=True)
    model = load_model(path, compile=False)  # drops the optimizer state: a small file
    save_model(model, os.path.join(out, "model.keras"))
    fmt.save(os.path.join(out, "plate_format.yaml"))
    run_dir = os.path.dirname(os.path.abspath(path))
    for name, dst in (("config.yaml", "config.yaml"), ("state.json", "train_state.json"),
                      ("metrics.jsonl", "train_metrics.jsonl")):
        if os.path.isfile(os.path.join(run_dir, name)):
            shutil.copyfile(os.path.join(run_dir, name), os.path.join(out, dst))
    for d in FLAGS.eval_dir:
        with open(os.path.join(d, "metrics.json"), encoding="utf-8") as f:
            m = json.load(f)
        tag = os.path.basename(os.path.normpath(d))
        with open(os.path.join(out, "metrics", f"{tag}.json"), "w", encoding="utf-8") as f:
            json.dump(m, f, indent=2, ensure_ascii=False)
    size = os.path.getsize(os.path.join(out, "model.keras"))
    print(f"wrote {out} (model.keras {size / 1e6:.2f} MB)")


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
