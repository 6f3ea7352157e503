"""lprnet-demo: the quick-start job. Renders sample plates with the bundled synthetic generator (a
seed the shipped model never trained on), recognizes them with a shipped pretrained model, and
writes the metrics, the errors and a contact sheet of what it read.

  lprnet-demo [--model cn_lprnet_basic] [--count 200] [--seed 20261123] [--out demo_out]
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from lprnet_tf.cli.common import check_output_dir, parse_flags, run_guarded
from lprnet_tf.config import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "cn_lprnet_basic", "Shipped model name, run directory or .keras file.")
flags.DEFINE_integer("count", 200, "Number of sample plates to render.")
flags.DEFINE_integer("seed", 20261123, "Seed of the rendered sample plates (training used other seeds).",
                     lower_bound=0)
flags.DEFINE_string("out", "demo_out", "Output folder.")
flags.DEFINE_enum("decoder", "template", ["greedy", "beam", "template"], "CTC decoder.")


def _main(argv):
    del argv
    from lprnet_tf.data.pipeline import SynthSource, to_model_input
    from lprnet_tf.evaluation import evaluate_model
    from lprnet_tf.modelio import load_for_inference
    from lprnet_tf.synth.contact import save_contact_sheet

    if FLAGS.count < 1:
        raise UsageError("--count must be >= 1")
    check_output_dir(FLAGS.out, "--out")
    model, fmt, path = load_for_inference(FLAGS.model)
    print(f"model: {path} (plate format '{fmt.name}', input {fmt.height}x{fmt.width})")
    source = SynthSource(fmt, seed=FLAGS.seed, size=FLAGS.count)
    m, preds, conf = evaluate_model(model, source, fmt, FLAGS.out, decoder=FLAGS.decoder, return_predictions=True,
                                    extra={"model": path, "data": f"synth:{FLAGS.seed}:{FLAGS.count}"})
    n = min(32, FLAGS.count)
    texts = source.texts()
    images = [to_model_input(source.get(i)[0], fmt) for i in range(n)]
    labels = [f"{p or '-'} {c:.2f}" + ("" if p == t else f"\n(truth {t})") for p, c, t in zip(preds, conf, texts)]
    save_contact_sheet(os.path.join(FLAGS.out, "recognized.png"), images, labels[:n], cols=8)
    print("first plates (truth -> prediction, confidence):")
    for t, p, c in list(zip(texts, preds, conf))[:10]:
        print(f"  {t:10s} -> {p:10s} {c:.2f} {'ok' if t == p else 'WRONG'}")
    keys = ("count", "accuracy", "acc1", "char_accuracy", "accuracy_no_first", "decoder")
    print(json.dumps({k: m[k] for k in keys}, indent=2, ensure_ascii=False))
    print(f"wrote {FLAGS.out}/metrics.json, errors.csv, recognized.png")


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
