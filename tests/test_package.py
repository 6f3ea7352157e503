"""lprnet-package: shipping a run as a pretrained folder, and checkpoint averaging (--average N)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from lprnet_tf.modelio import ModelFileError, average_models, load_model, save_model
from lprnet_tf.models import build_model


def _package(*args):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "lprnet_tf.cli.package", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_existing_folder_is_kept_without_overwrite(tmp_path, cn):
    """A folder that holds a model is refused without --overwrite (the shipped models live in the default
    --out_root); with it, the model is replaced and the hand-written README kept. Bad --name / --eval_dir
    are refused before anything is written."""
    model = str(tmp_path / "m.keras")
    save_model(build_model("lprnet_reduced", cn), model, cn)
    root = tmp_path / "shipped"
    assert _package("--model", model, "--name", "mine", "--out_root", str(root)).returncode == 0
    (root / "mine" / "README.md").write_text("how it was trained")
    before = (root / "mine" / "model.keras").read_bytes()
    r = _package("--model", model, "--name", "mine", "--out_root", str(root))
    assert r.returncode == 2 and "already holds a model; pass --overwrite" in r.stderr and "Traceback" not in r.stderr
    r = _package("--model", model, "--name", "mine", "--out_root", str(root), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert (root / "mine" / "README.md").read_text() == "how it was trained"
    assert len((root / "mine" / "model.keras").read_bytes()) == len(before)
    r = _package("--model", model, "--name", "../escape", "--out_root", str(root))
    assert r.returncode == 2 and "a folder name" in r.stderr and not (tmp_path / "escape").exists()
    r = _package("--model", model, "--name", "other", "--out_root", str(root), "--eval_dir", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no metrics.json" in r.stderr and not (root / "other").exists()
    (tmp_path / "bad.keras").write_text("not a model")
    r = _package("--model", str(tmp_path / "bad.keras"), "--name", "third", "--out_root", str(root))
    assert r.returncode != 0 and not (root / "third").exists()


def test_average_checkpoints_of_a_run(tmp_path, cn):
    """--average 3 ships the element-wise mean of the last 3 checkpoints (BatchNorm statistics too); the
    steps are recorded; fewer checkpoints than asked, or another architecture, are refused by name."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    model = build_model("lprnet_reduced", cn)
    weights = []
    for k, step in enumerate((500, 1000, 1500, 2000)):  # the oldest is not averaged
        for v in model.weights:
            if "float" in str(v.dtype):
                v.assign(np.full(v.shape, float(k), np.float32))
        weights.append(k)
        save_model(model, str(run / "checkpoints" / f"step_{step:08d}.keras"))
    cn.save(str(run / "plate_format.yaml"))
    (run / "state.json").write_text(json.dumps({"step": 2000}))
    r = _package("--model", str(run), "--name", "avg", "--out_root", str(tmp_path / "shipped"), "--average", "3")
    assert r.returncode == 0, r.stderr
    assert "the mean of steps [1000, 1500, 2000]" in r.stdout
    shipped = load_model(str(tmp_path / "shipped" / "avg" / "model.keras"))
    for v in shipped.weights:
        if "float" in str(v.dtype):
            np.testing.assert_allclose(v.numpy(), 2.0, atol=1e-6)  # mean of 1, 2, 3
    state = json.loads((tmp_path / "shipped" / "avg" / "train_state.json").read_text())
    assert state == {"step": 2000, "averaged_checkpoint_steps": [1000, 1500, 2000]}

    r = _package("--model", str(run), "--name", "avg", "--out_root", str(tmp_path / "shipped"), "--average", "5")
    assert r.returncode != 0 and "holds 4 checkpoint(s)" in r.stderr and "keep_checkpoints=5" in r.stderr
    r = _package("--model", str(run / "checkpoints" / "step_00002000.keras"), "--name", "avg", "--out_root",
                 str(tmp_path / "shipped"), "--average", "2")
    assert r.returncode != 0 and "run directory" in r.stderr

    other = str(tmp_path / "basic.keras")
    save_model(build_model("lprnet_basic", cn), other)
    with pytest.raises(ModelFileError, match="not the architecture of"):
        average_models([other, str(run / "checkpoints" / "step_00002000.keras")])

    # --soup: other fine-tunes of the same base averaged in, each with the --model weights' share
    for value, name in ((11.0, "a.keras"), (29.0, "b.keras")):
        for v in model.weights:
            if "float" in str(v.dtype):
                v.assign(np.full(v.shape, value, np.float32))
        save_model(model, str(tmp_path / name))
    r = _package("--model", str(run), "--name", "soup", "--out_root", str(tmp_path / "shipped"), "--average", "3",
                 "--soup", str(tmp_path / "a.keras"), "--soup", str(tmp_path / "b.keras"))
    assert r.returncode == 0, r.stderr
    assert "souped with 2 more model(s)" in r.stdout
    shipped = load_model(str(tmp_path / "shipped" / "soup" / "model.keras"))
    for v in shipped.weights:
        if "float" in str(v.dtype):
            np.testing.assert_allclose(v.numpy(), 14.0, atol=1e-5)  # mean of 2 (the run's average), 11, 29
    state = json.loads((tmp_path / "shipped" / "soup" / "train_state.json").read_text())
    assert state["soup"] == [str(tmp_path / "a.keras"), str(tmp_path / "b.keras")]
    # another alphabet or architecture is refused by name, before anything is written
    from lprnet_tf.vocab import load_plate_format

    br = load_plate_format("br")
    save_model(build_model("lprnet_reduced", br), str(tmp_path / "br.keras"))
    r = _package("--model", str(run), "--name", "bad_soup", "--out_root", str(tmp_path / "shipped"), "--average",
                 "3", "--soup", str(tmp_path / "br.keras"))
    assert r.returncode != 0 and "br.keras" in r.stderr and "classes" in r.stderr
    assert not (tmp_path / "shipped" / "bad_soup").exists()
    r = _package("--model", str(run), "--name", "bad_soup", "--out_root", str(tmp_path / "shipped"), "--average",
                 "3", "--soup", other)
    assert r.returncode != 0 and "basic.keras: holds a lprnet_basic model" in r.stderr and "--soup" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "shipped" / "bad_soup").exists()


def test_soup_of_unrelated_weights_is_refused(tmp_path, cn):
    """Models of one architecture whose weights did not start from the same ones (here: two random
    initialisations, as a new head drawn under two seeds is) average to a model that reads nothing: refused by
    name with the fix, nothing written; fine-tunes of one set of weights (the same weights nudged) are averaged."""
    import keras

    paths = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        paths.append(str(tmp_path / f"seed{seed}.keras"))
        save_model(build_model("lprnet_reduced", cn), paths[-1], cn)
    with pytest.raises(ModelFileError, match="do not start from the same weights") as e:
        average_models(paths)
    assert "seed2.keras" in str(e.value) and "train.seed" in str(e.value) and "cosine" in str(e.value)
    r = _package("--model", paths[1], "--name", "mixed", "--out_root", str(tmp_path / "shipped"), "--soup", paths[0])
    assert r.returncode != 0 and "seed1.keras: its weights do not start from the same weights" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "shipped" / "mixed").exists()

    base = load_model(paths[0])
    rng = np.random.default_rng(0)
    for v in base.weights:  # a fine-tune of seed1.keras: every weight moved by a tenth of its spread
        if "float" in str(v.dtype):
            w = v.numpy()
            v.assign((w + 0.1 * (w.std() + 1e-3) * rng.standard_normal(w.shape)).astype(w.dtype))
    save_model(base, str(tmp_path / "tuned.keras"), cn)
    average_models([paths[0], str(tmp_path / "tuned.keras")])
