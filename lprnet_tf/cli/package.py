"""lprnet-package: turn a training run into a shipped pretrained model folder.

  lprnet-package --model runs/cn_basic --name my_lprnet [--average N] [--soup FILE ...] [--eval_dir eval/cn]
                 [--overwrite]

Writes ``lprnet_tf/pretrained/NAME/`` (or ``--out_root``): ``model.keras`` (weights only, no
optimizer state), ``plate_format.yaml``, ``config.yaml`` (the run's resolved training config),
``train_state.json`` and ``metrics/*.json`` copied from evaluation folders. ``--average N`` ships the
mean of the weights of the run's last N checkpoints (``RUN/checkpoints/step_*.keras``) instead of one
file (:func:`lprnet_tf.modelio.average_models`); ``train_state.json`` then lists the steps averaged. ``--soup FILE``
(repeatable) averages those model files in too, each with the same weight as the ``--model`` weights (a uniform
model soup of fine-tunes of one base; ``train_state.json`` lists them as ``soup``). The README of the
folder is written by hand: it says how the model was trained and what it scores. A folder that already
holds a model is replaced only with ``--overwrite`` (its README.md and other files of its own are kept;
the files above are rewritten and its ``metrics/*.json`` are replaced by those of ``--eval_dir``).
"""

from __future__ import annotations

import json
import os
import shutil

from absl import app, flags

from lprnet_tf.cli.common import check_output_dir, parse_flags, run_guarded
from lprnet_tf.config import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Run directory (its best.keras) or a .keras file.")
flags.DEFINE_string("name", None, "Name of the shipped model, e.g. cn_lprnet_basic.")
flags.DEFINE_string("out_root", None, "Folder of shipped models (default: lprnet_tf/pretrained).")
flags.DEFINE_integer("average", 0, "Ship the mean of the weights of the run's last N checkpoints "
                     "(RUN/checkpoints/step_*.keras; --model must be the run directory); 0: --model as it is.")
flags.DEFINE_multi_string("soup", [], "A model file (or packaged model folder) to average in with the --model "
                          "weights, each with an equal share: other fine-tunes of the same base (repeatable). They "
                          "must be the same architecture and plate format (alphabet, input size) as --model.")
flags.DEFINE_multi_string("eval_dir", [], "Evaluation output folders whose metrics.json to ship (repeatable).")
flags.DEFINE_bool("overwrite", False, "Replace the model of an existing folder OUT_ROOT/NAME (default: refuse; its "
                  "README.md is kept).")


def _main(argv):
    del argv
    from lprnet_tf.modelio import (FORMAT_FILE, PRETRAINED_DIR, average_models, check_architecture, load_for_inference,
                                   load_model, resolve_model, save_model)
    from lprnet_tf.training import checkpoint_files

    if not FLAGS.model or not FLAGS.name:
        raise UsageError("--model and --name are required (see --help)")
    if FLAGS.average < 0:
        raise UsageError(f"--average must be >= 0, got {FLAGS.average}")
    steps, path = [], FLAGS.model
    if FLAGS.average:
        if not os.path.isdir(FLAGS.model):
            raise UsageError(f"--average needs --model to be a run directory (with checkpoints/), got {FLAGS.model}")
        found = checkpoint_files(FLAGS.model)
        if len(found) < FLAGS.average:
            raise UsageError(f"--average {FLAGS.average}: {FLAGS.model}/checkpoints holds {len(found)} checkpoint(s) "
                             f"({[s for s, _ in found]}); train with --set train.keep_checkpoints={FLAGS.average} "
                             f"or average fewer")
        steps, paths = zip(*found[-FLAGS.average:])
        path = paths[-1]  # the checkpoints sit in RUN/checkpoints, the plate format in RUN
    path, fmt = resolve_model(path, os.path.join(FLAGS.model, FORMAT_FILE) if steps else None)
    run_dir = FLAGS.model if steps else os.path.dirname(os.path.abspath(path))
    if FLAGS.name in (".", "..") or os.sep in FLAGS.name or (os.altsep and os.altsep in FLAGS.name):
        raise UsageError(f"--name {FLAGS.name!r}: a folder name (e.g. my_lprnet), not a path; use --out_root for the "
                         f"parent folder")
    root = FLAGS.out_root or PRETRAINED_DIR
    out = os.path.join(root, FLAGS.name)
    check_output_dir(out, "--out_root/--name")
    if os.path.isfile(os.path.join(out, "model.keras")) and not FLAGS.overwrite:
        raise UsageError(f"{out} already holds a model; pass --overwrite to replace it (its README.md is kept) or "
                         f"choose another --name")
    evals = []
    for d in FLAGS.eval_dir:
        if not os.path.isfile(os.path.join(d, "metrics.json")):
            raise UsageError(f"--eval_dir {d}: no metrics.json there; pass the --out folder of lprnet-evaluate")
        try:
            with open(os.path.join(d, "metrics.json"), encoding="utf-8") as f:
                evals.append((os.path.basename(os.path.normpath(d)), json.load(f)))
        except ValueError as e:
            raise UsageError(f"--eval_dir {d}: metrics.json is not valid JSON ({e}); re-run lprnet-evaluate") from None
    # everything is read and checked before the folder is touched; weights only (no optimizer state: a small file)
    soup = [load_for_inference(p, fmt)[0] for p in FLAGS.soup]  # checked against the run's format, by path
    model = average_models(list(paths)) if steps else load_model(path, compile=False)
    for p, m in zip(FLAGS.soup, soup):
        check_architecture(m, model, p, "--soup takes other fine-tunes of the --model's base only")
    if soup:
        # the --model weights last: its counters and seeds are kept
        model = average_models([*soup, model], names=[*FLAGS.soup, f"--model {FLAGS.model}"])
    os.makedirs(os.path.join(out, "metrics"), exist_ok=True)
    if evals:
        for old in os.listdir(os.path.join(out, "metrics")):
            if old.endswith(".json"):
                os.remove(os.path.join(out, "metrics", old))
    save_model(model, os.path.join(out, "model.keras"))
    fmt.save(os.path.join(out, "plate_format.yaml"))
    for name, dst in (("config.yaml", "config.yaml"), ("metrics.jsonl", "train_metrics.jsonl")):
        if os.path.isfile(os.path.join(run_dir, name)):
            shutil.copyfile(os.path.join(run_dir, name), os.path.join(out, dst))
    state_path = os.path.join(run_dir, "state.json")
    if os.path.isfile(state_path) or steps or soup:
        state = {}
        if os.path.isfile(state_path):
            with open(state_path, encoding="utf-8") as f:
                state = json.load(f)
        if steps:
            state["averaged_checkpoint_steps"] = list(steps)
        if soup:
            state["soup"] = list(FLAGS.soup)
        with open(os.path.join(out, "train_state.json"), "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
    for tag, m in evals:
        with open(os.path.join(out, "metrics", f"{tag}.json"), "w", encoding="utf-8") as f:
            json.dump(m, f, indent=2, ensure_ascii=False)
    size = os.path.getsize(os.path.join(out, "model.keras"))
    what = f", the mean of steps {list(steps)}" if steps else ""
    what += f", souped with {len(soup)} more model(s)" if soup else ""
    print(f"wrote {out} (model.keras {size / 1e6:.2f} MB{what})")


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
