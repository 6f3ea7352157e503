"""The shipped models: every folder is complete, loads, matches its plate format, and the quick-start
demo runs offline on the default one."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from lprnet_tf.modelio import PRETRAINED_DIR, load_for_inference, model_io, pretrained_names


def test_default_model_is_shipped():
    assert "cn_lprnet_basic" in pretrained_names()


@pytest.mark.parametrize("name", pretrained_names())
def test_shipped_model_folder(name):
    folder = os.path.join(PRETRAINED_DIR, name)
    for f in ("model.keras", "plate_format.yaml", "config.yaml", "README.md"):
        assert os.path.isfile(os.path.join(folder, f)), f"{name}: {f} missing"
    assert os.path.getsize(os.path.join(folder, "model.keras")) < 8 << 20  # small files only
    model, fmt, _ = load_for_inference(name)  # checks the input size and classes against the format
    assert model_io(model)[1] in (fmt.num_classes, None)  # None: a quality network


def test_demo_runs_offline_on_the_default_model(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.demo", "--count", "24", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.load(open(out / "metrics.json", encoding="utf-8"))
    assert m["count"] == 24
    assert m["char_accuracy"] > 0.8  # a trained model, not random weights
    assert os.path.isfile(out / "recognized.png")


def _reported_rows(decoder: str = "greedy", merged: bool = False):
    """Rows of ``decoder`` in benchmarks/results/accuracy.csv (the table the README quotes): the no-merge
    rows, or with ``merged`` the rows with the format's scoring merges."""
    import csv

    path = os.path.join(REPO, "benchmarks", "results", "accuracy.csv")
    with open(path, encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if r["decoder"] == decoder and (r["merges"] != "-") == merged]


# --tta figures checked on the held-apart synthetic set too (5 renders of 1,000 plates): the models whose
# README claims a target with --tta there
SYNTH_TTA_CHECKED = ("cn_lprnet_basic",)


@pytest.mark.parametrize("name", pretrained_names(kinds=("ctc", "slot", "attn")))
def test_shipped_accuracy_has_not_regressed(name):
    """Each shipped model still scores within 1 point of its reported figures (held-apart synthetic
    set always; its real validation sets when ../shared/data is present), so a change to
    preprocessing, decoding or the renderer cannot silently break the shipped weights. On the real sets
    the test-time-view figures (--tta, greedy) are checked too."""
    from conftest import SHARED_DATA
    from lprnet_tf.evaluation import predict_logits, predict_views, reference_sets, score

    from lprnet_tf.models import model_kind

    reported = {r["set"]: r for r in _reported_rows() if r["model"] == name}
    reported_tta = {r["set"]: r for r in _reported_rows("greedy+tta") if r["model"] == name}
    merged_tta = {r["set"]: r for r in _reported_rows("greedy+tta", merged=True) if r["model"] == name}
    assert reported, f"{name} has no row in benchmarks/results/accuracy.csv; run benchmarks/accuracy.py"
    model, fmt, _ = load_for_inference(name)
    frames = getattr(model, "frames", 0)
    checked = []
    for label, src, merges in reference_sets(fmt, SHARED_DATA, synth_count=200 if frames else 1000, frames=frames):
        if label not in reported:
            continue
        logits = predict_logits(model, src, fmt, batch_size=128)
        def check(lg, row, mg=(), what=""):  # the figure within 1 point of the reported row, same count
            m, _, _ = score(lg, src.texts(), fmt, "greedy", list(mg), kind=model_kind(model))
            want = float(row["accuracy"])
            assert int(row["count"]) == m["count"], label
            assert abs(m["accuracy"] - want) <= 0.01, (f"{name}{what} on {label}: {m['accuracy']:.4f}, "
                                                       f"reported {want:.4f}")

        check(logits, reported[label])
        checked.append(label)
        if label in reported_tta and (not label.startswith("synthetic") or name in SYNTH_TTA_CHECKED):
            views = predict_views(model, src, fmt, batch_size=128, full=logits)
            checks = [([], reported_tta)] + ([(merges, merged_tta)] if merges and label in merged_tta else [])
            for mg, rows in checks:
                check(views, rows[label], mg, f" --tta {','.join(mg)}")
                if not mg:
                    checked.append(label + " --tta")
    assert any(c.startswith("synthetic") for c in checked)


def test_local_prior_figures_have_not_regressed():
    """cn_lprnet_basic with a local prior (--local_prefix 皖) still reads the sets of
    benchmarks/results/local_prior.json within 1 point of the figures the README quotes, at every share."""
    from conftest import SHARED_DATA
    from lprnet_tf.data.pipeline import open_source
    from lprnet_tf.decoding import local_prior
    from lprnet_tf.evaluation import predict_logits, score

    with open(os.path.join(REPO, "benchmarks", "results", "local_prior.json"), encoding="utf-8") as f:
        report = json.load(f)
    assert report["model"] == "cn_lprnet_basic" and not report["tta"]
    model, fmt, _ = load_for_inference(report["model"])
    checked = []
    for s in report["sets"]:
        spec = s["data"]
        if not spec.startswith("synth:"):
            spec = os.path.join(SHARED_DATA, os.path.basename(spec))
            if not os.path.isdir(spec):
                continue
        src = open_source(spec, fmt)
        logits = predict_logits(model, src, fmt, batch_size=128)
        for row in s["rows"]:
            prior = None if row["share"] is None else local_prior(fmt, report["prefix"], row["share"])
            m, _, _ = score(logits, src.texts(), fmt, "template", prior=prior)
            assert m["count"] == s["count"]
            assert abs(m["accuracy"] - row["accuracy"]) <= 0.01, (s["set"], row["share"], m["accuracy"])
        checked.append(s["set"])
    assert "synthetic" in checked
