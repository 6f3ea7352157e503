"""Crash safety of training runs: atomic writes, disk full, corrupt checkpoints, kill -9 + resume.

Fast tests drive the writers directly (a tiny Dense model, no fit); the slow test SIGKILLs a real
``train.py`` process several times (at seeded random moments and inside checkpoint writes) and
resumes it each time. "Continuous metrics" means: ``metrics.jsonl`` holds exactly one parseable
line per epoch, steps ``eval_every, 2*eval_every, ..., steps`` in order (strictly increasing, no
gap, no duplicate), whatever the kills did.
"""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from conftest import REPO
from lprnet_tf.config import config_from_dict
from lprnet_tf.modelio import TMP_PREFIX, ModelFileError, copy_atomic, load_model, save_model

TINY_CFG = {"name": "crash", "plate_format": "cn", "model": {"name": "lprnet_reduced"},
            "data": {"train": "synth:0", "val": ""},
            "train": {"batch_size": 4, "steps": 8, "eval_every": 2, "keep_checkpoints": 2}}


def _model(step=0, units=2):
    import keras

    inp = keras.Input((units,))
    model = keras.Model(inp, keras.layers.Dense(units)(inp))
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(np.zeros((1, units), np.float32), np.zeros((1, units), np.float32))
    model.optimizer.iterations.assign(step)
    return model


def _temps(folder):
    return [os.path.join(r, n) for r, _, files in os.walk(folder) for n in files if n.startswith(TMP_PREFIX)]


def _disk_full_save(model):
    """Make model.save write part of a file, then fail like a full disk."""
    def save(path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04" + b"\x00" * 4096)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    model.save = save
    return model


def _keeper(run_dir, cfg=None):
    from lprnet_tf.training import RunKeeper

    cfg = cfg or config_from_dict(TINY_CFG)
    os.makedirs(run_dir, exist_ok=True)  # train() makes it
    return RunKeeper(str(run_dir), cfg, None, None, {"name": cfg.name, "step": 0}, None)


def _epoch(keeper, model, step, acc):
    model.optimizer.iterations.assign(step)
    keeper.set_model(model)
    keeper._save(step, {"step": step, "epoch": step // 2, "loss": 1.0, "val_accuracy": acc})


# ------------------------------------------------------------------------------------------------
# atomic writes and disk full
def test_disk_full_midway_keeps_the_previous_file(tmp_path):
    path = str(tmp_path / "m.keras")
    save_model(_model(step=1), path)
    before = open(path, "rb").read()
    with pytest.raises(ModelFileError) as e:
        save_model(_disk_full_save(_model(step=2)), path)
    msg = str(e.value)
    assert path in msg and "No space left" in msg and "disk is full" in msg and "unchanged" in msg
    assert open(path, "rb").read() == before
    assert int(load_model(path, compile=True).optimizer.iterations.numpy()) == 1
    assert _temps(tmp_path) == []


def test_failed_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "m.keras")
    save_model(_model(step=1), path)
    before = open(path, "rb").read()

    def replace(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ModelFileError, match="disk is full"):
        save_model(_model(step=2), path)
    with pytest.raises(ModelFileError, match="last.keras"):
        copy_atomic(path, str(tmp_path / "last.keras"))
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert not os.path.exists(tmp_path / "last.keras")
    assert _temps(tmp_path) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE semantics checked on Linux")
def test_real_write_failure_from_the_kernel(tmp_path):
    """No mock: a file-size limit makes the kernel fail model.save's writes midway (EFBIG)."""
    import resource

    path = str(tmp_path / "m.keras")
    model = _model(step=1, units=200)  # ~0.5 MB with the Adam moments
    save_model(model, path)
    before = open(path, "rb").read()
    assert len(before) > 256 << 10
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (128 << 10, hard))  # Python ignores SIGXFSZ: writes fail
    try:
        model.optimizer.iterations.assign(2)
        with pytest.raises(ModelFileError, match="disk is full") as e:
            save_model(model, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path in str(e.value)
    assert open(path, "rb").read() == before
    assert _temps(tmp_path) == []


def test_disk_full_during_a_checkpoint_loses_no_earlier_checkpoint(tmp_path):
    from lprnet_tf.training import checkpoint_files, trim_metrics

    run = tmp_path / "run"
    keeper, model = _keeper(run), _model()
    _epoch(keeper, model, 2, 0.5)
    _epoch(keeper, model, 4, 0.25)
    files = {p: open(p, "rb").read() for p in [*(q for _, q in checkpoint_files(run)), str(run / "last.keras"),
                                               str(run / "best.keras"), str(run / "state.json")]}
    with pytest.raises(ModelFileError, match=r"step_00000006\.keras.*No space left"):
        _epoch(keeper, _disk_full_save(model), 6, 0.75)
    assert [s for s, _ in checkpoint_files(run)] == [2, 4]
    for p, data in files.items():  # every earlier file byte for byte, all loadable
        assert open(p, "rb").read() == data, p
        if p.endswith(".keras"):
            load_model(p, compile=True)
    assert json.load(open(run / "state.json"))["step"] == 4
    assert _temps(run) == []
    # the metrics line of the failed epoch went first; the resume drops it (that epoch is retrained)
    assert [r["step"] for r in trim_metrics(str(run), 4)] == [2, 4]


def test_metrics_append_failure_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    from lprnet_tf.training import _append_metrics

    real_open = builtins.open

    def full_open(path, mode="r", *a, **k):
        if "a" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(ModelFileError, match=r"metrics\.jsonl.*step 6.*No space left.*intact.*disk is full.*--resume"):
        _append_metrics(str(tmp_path / "metrics.jsonl"), {"step": 6})


# ------------------------------------------------------------------------------------------------
# resume point selection
def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capfd):
    from lprnet_tf.training import _load_resume_point, current_step

    run = tmp_path / "run"
    keeper, model = _keeper(run), _model()
    for step in (2, 4, 6):
        _epoch(keeper, model, step, 0.1)
    newest = run / "checkpoints" / "step_00000006.keras"
    for p in (newest, run / "last.keras"):  # last.keras is a copy of the newest checkpoint
        with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) // 2)
    capfd.readouterr()
    resumed, path = _load_resume_point(str(run))
    err = capfd.readouterr().err
    assert path.endswith("step_00000004.keras") and current_step(resumed) == 4
    assert "warning:" in err and str(newest) in err and str(run / "last.keras") in err
    assert os.path.isfile(newest)  # the broken file is reported and kept, not deleted


def test_a_checkpoint_newer_than_last_keras_wins(tmp_path):
    """A kill between writing step_N and updating last.keras: resume from step_N, not the older copy."""
    from lprnet_tf.training import _load_resume_point, current_step

    run = tmp_path / "run"
    keeper, model = _keeper(run), _model()
    _epoch(keeper, model, 2, 0.1)
    model.optimizer.iterations.assign(4)
    save_model(model, str(run / "checkpoints" / "step_00000004.keras"))
    resumed, path = _load_resume_point(str(run))
    assert path.endswith("step_00000004.keras") and current_step(resumed) == 4
    os.remove(run / "checkpoints" / "step_00000004.keras")
    resumed, path = _load_resume_point(str(run))
    assert path.endswith("last.keras") and current_step(resumed) == 2


def test_trim_metrics_makes_one_line_per_epoch(tmp_path, capfd):
    from lprnet_tf.training import read_metrics, trim_metrics

    m = tmp_path / "metrics.jsonl"
    lines = [{"step": 2, "loss": 3.0}, {"step": 4, "loss": 2.0}, {"step": 4, "loss": 1.9}, {"step": 6, "loss": 1.0}]
    m.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 8, "lo', encoding="utf-8")
    kept = trim_metrics(str(tmp_path), 4)
    assert [(r["step"], r["loss"]) for r in kept] == [(2, 3.0), (4, 1.9)]  # the retrained line wins
    assert read_metrics(str(m)) == kept and m.read_text(encoding="utf-8").endswith("\n")
    assert "kept 2 of 5 lines" in capfd.readouterr().err
    mtime = os.stat(m).st_mtime_ns
    assert trim_metrics(str(tmp_path), 4) == kept and os.stat(m).st_mtime_ns == mtime  # clean: not rewritten
    m.write_text(json.dumps({"step": 2}), encoding="utf-8")  # torn right before its newline
    trim_metrics(str(tmp_path), 2)
    assert m.read_text(encoding="utf-8") == json.dumps({"step": 2}) + "\n"
    assert trim_metrics(str(tmp_path), 0) == [] and m.read_text(encoding="utf-8") == ""


def test_recovered_state_and_best_keras_follow_the_resume_point(tmp_path):
    """A kill after step_N but before best.keras/state.json: the resume repairs both."""
    from lprnet_tf.training import _recover_state, trim_metrics

    run = tmp_path / "run"
    keeper, model = _keeper(run), _model()
    _epoch(keeper, model, 2, 0.5)
    ck4 = run / "checkpoints" / "step_00000004.keras"
    model.optimizer.iterations.assign(4)
    save_model(model, str(ck4))
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "val_accuracy": 0.9}) + "\n")
    state = json.load(open(run / "state.json"))
    assert state["step"] == 2 and state["best_step"] == 2
    state = _recover_state(str(run), state, 4, str(ck4), trim_metrics(str(run), 4))
    assert state["step"] == 4 and state["best_step"] == 4 and state["best_val_accuracy"] == 0.9
    assert open(run / "best.keras", "rb").read() == open(ck4, "rb").read()


def test_train_removes_stale_temps_and_refuses_to_clobber(tmp_path):
    """Stale temp files from a killed writer are removed at start; a run dir is never overwritten."""
    from lprnet_tf.training import train

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = [run / f"{TMP_PREFIX}last.keras", run / "checkpoints" / f"{TMP_PREFIX}step_00000002.keras"]
    for p in stale:
        p.write_bytes(b"PK\x03\x04partial")
    (run / "metrics.jsonl").write_text('{"step": 2}\n', encoding="utf-8")  # no checkpoint made it
    cfg = config_from_dict(TINY_CFG)
    state = train(cfg, str(run), steps=2, verbose=False)
    assert state["step"] == 2 and _temps(run) == []
    assert [json.loads(x)["step"] for x in open(run / "metrics.jsonl")] == [2]
    with pytest.raises(FileExistsError):
        train(cfg, str(run), steps=4, verbose=False)


# ------------------------------------------------------------------------------------------------
# kill -9 at random points, resume each time
# Enough steps that no launch can reach the end before its kill: at batch 4 a fast 2-core machine trains
# ~16 steps/s, and with 48 steps a "random" launch (killed up to 2.5 s after its first new checkpoint)
# finished the run, leaving the next launch nothing to do (2026-12-03). Batch 16 and 96 steps: a launch
# uses at most ~40 steps, the six use well under 96 together.
STEPS, EVERY, KEEP, LOCNET_AT = 96, 4, 3, 20
KILL_CFG = {
    "name": "killed", "plate_format": "cn",
    "model": {"name": "lprnet_reduced", "options": {"locnet": True}},
    "data": {"train": "synth:0", "val": "synth:99:8", "augment": "full"},
    "train": {"batch_size": 16, "steps": STEPS, "eval_every": EVERY, "locnet_start_step": LOCNET_AT,
              "keep_checkpoints": KEEP, "steps_per_execution": 2},
}
# "early": a seeded random moment after launch (import, build, first epoch or a checkpoint);
# "random": a seeded random moment after this process saved an epoch; "in_write": while a
# checkpoint's temp file exists (the kill lands inside model.save), after one saved epoch
KILL_PLAN = ["early", "in_write", "random", "in_write", "random", "in_write"]


def _newest_step(run):
    from lprnet_tf.training import checkpoint_files

    return max((s for s, _ in checkpoint_files(str(run))), default=0)


def _ck_temps(run):
    ck = run / "checkpoints"
    return [n for n in os.listdir(ck) if n.startswith(TMP_PREFIX)] if ck.is_dir() else []


def _wait_for(cond, proc, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError(f"timed out after {timeout}s waiting for the training process")


def _check_history(run):
    """Every checkpoint on disk is a complete archive (cheap; full loads come at the end)."""
    from lprnet_tf.training import checkpoint_files

    for _, p in checkpoint_files(str(run)):
        with zipfile.ZipFile(p) as z:
            assert z.testzip() is None, p
    for name in ("last.keras", "best.keras"):
        if (run / name).exists():
            with zipfile.ZipFile(run / name) as z:
                assert z.testzip() is None, name


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path):
    import yaml

    from lprnet_tf.training import checkpoint_files, current_step, read_metrics

    rng = random.Random(20261123)
    run = tmp_path / "run"
    cfg_path = tmp_path / "killed.yaml"
    cfg_path.write_text(yaml.safe_dump(KILL_CFG), encoding="utf-8")
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--config", str(cfg_path), "--run_dir", str(run), "--quiet"]
    env = dict(os.environ, PYTHONPATH=REPO)
    log_path = tmp_path / "train.log"
    kills, in_write_hits = [], 0
    for i, kind in enumerate(KILL_PLAN):
        with open(log_path, "ab") as logf:
            logf.write(f"\n===== launch {i} ({kind}) =====\n".encode())
            logf.flush()
            p = subprocess.Popen(cmd + (["--resume"] if i else []), env=env, stdout=logf, stderr=subprocess.STDOUT)
            try:
                base = _newest_step(run)
                if kind == "early":
                    time.sleep(rng.uniform(4.0, 14.0))
                    alive = p.poll() is None
                else:
                    alive = _wait_for(lambda: _newest_step(run) > base, p, 400)
                    if alive and kind == "random":
                        time.sleep(rng.uniform(0.0, 2.5))
                    elif alive:
                        alive = _wait_for(lambda: bool(_ck_temps(run)), p, 400)
                        time.sleep(rng.uniform(0.0, 0.03))
                assert alive and p.poll() is None, f"launch {i} ended before its kill:\n{log_path.read_text()[-3000:]}"
                p.send_signal(signal.SIGKILL)
            finally:
                if p.poll() is None:
                    p.kill()
                p.wait()
        hit = bool(_ck_temps(run))  # the writer removes or renames its temp: still there = died inside the write
        in_write_hits += hit
        kills.append((kind, _newest_step(run), hit))
        _check_history(run)
    assert in_write_hits >= 2, f"no kill landed inside a checkpoint write: {kills}"

    r = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=900)
    with open(log_path, "a") as logf:
        logf.write(r.stdout + r.stderr)
    assert r.returncode == 0, r.stderr[-3000:]
    log = log_path.read_text(errors="replace")
    assert log.count("a temp file left by an interrupted write") >= in_write_hits, log[-3000:]

    # same final step
    state = json.load(open(run / "state.json"))
    assert state["step"] == STEPS, kills
    # metrics continuous: one line per epoch, in order, no gap, no duplicate, nothing torn
    raw = (run / "metrics.jsonl").read_text(encoding="utf-8")
    recs = read_metrics(str(run / "metrics.jsonl"))
    assert len(recs) == len(raw.splitlines()), "a torn or foreign line survived"
    assert [r["step"] for r in recs] == list(range(EVERY, STEPS + 1, EVERY)), kills
    assert [r["epoch"] for r in recs] == list(range(1, STEPS // EVERY + 1))
    assert [r["locnet"] for r in recs] == [s >= LOCNET_AT for s in range(EVERY, STEPS + 1, EVERY)]
    # checkpoint history intact: the newest KEEP epochs, every file loads at its own step
    kept = checkpoint_files(str(run))
    assert [s for s, _ in kept] == list(range(STEPS - (KEEP - 1) * EVERY, STEPS + 1, EVERY))
    for s, p in kept:
        assert current_step(load_model(p, compile=True)) == s, p
    assert current_step(load_model(str(run / "last.keras"), compile=True)) == STEPS
    load_model(str(run / "best.keras"), compile=True)
    best = max(r["val_accuracy"] for r in recs)
    assert state["best_val_accuracy"] == best
    assert state["best_step"] == max(r["step"] for r in recs if r["val_accuracy"] == best)
    assert _temps(run) == []
