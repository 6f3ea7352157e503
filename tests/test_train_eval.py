"""Tiny end-to-end runs on synthetic plates: train -> resume -> evaluate (CLI too)."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from lprnet_tf.config import ConfigError, config_from_dict
from lprnet_tf.training import train

TINY = {
    "name": "tiny", "plate_format": "cn",
    "model": {"name": "lprnet_reduced", "options": {"locnet": True}},
    "data": {"train": "synth:0", "val": "synth:99:8", "augment": "full"},
    "train": {"batch_size": 4, "steps": 4, "eval_every": 2, "locnet_start_step": 2, "keep_checkpoints": 2,
              "steps_per_execution": 2},
}


def test_train_resume_and_evaluate(tmp_path):
    run = str(tmp_path / "run")
    cfg = config_from_dict(TINY)
    state = train(cfg, run, steps=2, verbose=False)
    assert state["step"] == 2
    for f in ("config.yaml", "plate_format.yaml", "last.keras", "best.keras", "metrics.jsonl", "state.json"):
        assert os.path.isfile(os.path.join(run, f)), f
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, run, steps=4, verbose=False)
    state = train(cfg, run, resume=True, verbose=False)
    assert state["step"] == 4
    recs = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    assert [r["step"] for r in recs] == [2, 4]
    assert recs[-1]["locnet"] is True  # switched on at step 2 and kept through resume
    assert len(os.listdir(os.path.join(run, "checkpoints"))) == 2

    out = str(tmp_path / "eval")
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, os.path.join(REPO, "evaluate.py"), "--model", run, "--data", "synth:7:6",
                        "--out", out, "--decoder", "template"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.load(open(os.path.join(out, "metrics.json")))
    for k in ("count", "accuracy", "acc1", "char_accuracy", "length_accuracy", "accuracy_no_first",
              "per_position_accuracy", "decoder", "merges"):
        assert k in m
    assert m["count"] == 6 and m["decoder"] == "template"
    assert os.path.isfile(os.path.join(out, "errors.csv"))


def test_resume_skips_a_corrupt_last_checkpoint(tmp_path):
    run = str(tmp_path / "run")
    cfg = config_from_dict(TINY)
    train(cfg, run, steps=2, verbose=False)
    with open(os.path.join(run, "last.keras"), "r+b") as f:
        f.truncate(100)  # simulate a torn write of the resume point
    state = train(cfg, run, resume=True, steps=4, verbose=False)
    assert state["step"] == 4


# same seed -> same data and first losses, across fresh processes: tests/test_distributed.py


def test_evaluate_cli_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    r = subprocess.run([sys.executable, os.path.join(REPO, "evaluate.py"), "--model", str(tmp_path / "none.keras"),
                        "--data", "synth:1:2", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 2 and "error:" in r.stderr and "none.keras" in r.stderr


def test_ema_option_writes_final_ema_model(tmp_path):
    cfg = config_from_dict({**TINY, "train": {**TINY["train"], "ema": True}})
    train(cfg, str(tmp_path / "run"), steps=2, verbose=False)
    assert os.path.isfile(tmp_path / "run" / "final_ema.keras")


# kill -9 + --resume (several kills, inside checkpoint writes too): tests/test_crash_safety.py


def test_steps_not_a_multiple_of_eval_every_stops_on_target(tmp_path):
    cfg = config_from_dict({**TINY, "model": {"name": "lprnet_reduced"},
                            "train": {**TINY["train"], "steps_per_execution": 1}})
    state = train(cfg, str(tmp_path / "run"), steps=3, verbose=False)
    assert state["step"] == 3
    steps = [json.loads(x)["step"] for x in open(tmp_path / "run" / "metrics.jsonl")]
    assert steps == [2, 3]


def test_time_limit_stops_checkpoints_and_resumes(tmp_path):
    """``--time_limit``: the run stops at the first step done after the limit (a limit already past: step 1,
    mid-epoch), validates and checkpoints that step, records it in state.json; a resume without a limit
    goes on to the target and drops the record."""
    cfg = config_from_dict({**TINY, "model": {"name": "lprnet_reduced"},
                            "train": {**TINY["train"], "steps_per_execution": 1}})
    run = tmp_path / "run"
    state = train(cfg, str(run), steps=4, verbose=False, time_limit=1e-6)
    assert state["step"] == 1 and state["stopped_by_time_limit"] == 1
    assert json.load(open(run / "state.json"))["stopped_by_time_limit"] == 1
    assert [json.loads(x)["step"] for x in open(run / "metrics.jsonl")] == [1]
    assert os.path.isfile(run / "checkpoints" / "step_00000001.keras") and os.path.isfile(run / "last.keras")
    state = train(cfg, str(run), resume=True, steps=1, verbose=False)  # already there: nothing trained
    assert state["step"] == 1 and "stopped_by_time_limit" not in state
    state = train(cfg, str(run), resume=True, steps=4, verbose=False)
    assert state["step"] == 4 and "stopped_by_time_limit" not in state
    with pytest.raises(ConfigError, match="time_limit"):
        train(cfg, str(tmp_path / "run2"), steps=4, verbose=False, time_limit=0)


def test_train_cli_time_limit(tmp_path):
    """The flag end to end: parsed and passed through, exit 0 (whether the limit struck depends on this
    machine's speed; the stop itself is checked above), refused with a distributed strategy."""
    cfg = tmp_path / "tiny.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump({**TINY, "model": {"name": "lprnet_reduced"}}))
    env = dict(os.environ, PYTHONPATH=REPO)
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--config", str(cfg), "--quiet"]
    r = subprocess.run(cmd + ["--run_dir", str(tmp_path / "run"), "--time_limit", "1"], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "done: step" in r.stdout
    r = subprocess.run(cmd + ["--run_dir", str(tmp_path / "run2"), "--time_limit", "5", "--strategy", "mirrored"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "--time_limit works with --strategy none only" in r.stderr


def test_reference_sets_of_a_multi_country_format(tiny_csv, tmp_path):
    """A model of the multi-country format ``latin`` (configs/variants/latin.yaml, ``reports_on``) is
    reported on the real sets of every format it names (their reportable split), a single-country model
    only on its own; each list starts with the held-apart synthetic set. ``reports_on`` survives the
    format's save/load with a model and does not make two formats differ."""
    import shutil

    from lprnet_tf.evaluation import reference_sets
    from lprnet_tf.vocab import load_plate_format

    root = tmp_path / "data"
    for name in ("br_openalpr_crops", "uz_plates", "cn_ccpd_like_1000"):
        shutil.copytree(tiny_csv.parent, root / name, ignore=shutil.ignore_patterns("data"))
    latin = reference_sets(load_plate_format(os.path.join(REPO, "configs", "variants", "latin.yaml")), str(root),
                           synth_count=4)
    assert [label for label, _, _ in latin] == ["synthetic held-out (4)", "br_openalpr_crops (val)", "uz_plates (val)"]
    assert [len(src) for _, src, _ in latin] == [4, 2, 2] and latin[1][2] == ["O0", "I1"]
    br = reference_sets(load_plate_format("br"), str(root), synth_count=4)
    assert [label for label, _, _ in br] == ["synthetic held-out (4)", "br_openalpr_crops (val)"]
    fmt = load_plate_format(os.path.join(REPO, "configs", "variants", "latin.yaml"))
    fmt.save(str(tmp_path / "saved.yaml"))
    again = load_plate_format(str(tmp_path / "saved.yaml"))
    assert again.reports_on == ("br", "uz", "tw", "us", "ar") and again == fmt
    assert dataclasses.replace(fmt, reports_on=()) == fmt


def test_epoch_log_line_keeps_small_learning_rates_readable():
    from lprnet_tf.training import format_record

    line = format_record({"step": 250, "loss": 1.99483, "lr": 1e-05, "val_accuracy": 0.96679, "time": 12.5})
    assert line == "step=250 loss=1.995 lr=1e-05 val_accuracy=0.9668"
