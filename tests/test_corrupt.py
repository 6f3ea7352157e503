"""lprnet_tf.data.corrupt (fixed corruptions of plate crops) and benchmarks/robustness.py on a tiny stand-in set."""

import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO
from lprnet_tf.data.corrupt import CORRUPTIONS, SEVERITIES, corrupt, corruption_param
from lprnet_tf.data.pipeline import SynthSource
from lprnet_tf.vocab import load_plate_format


def _crop(h=40, w=120, seed=0):
    rng = np.random.default_rng(seed)
    im = np.full((h, w, 3), 200, np.uint8)
    im[10:30, 10:110] = rng.integers(0, 80, (20, 100, 3), dtype=np.uint8)  # dark "characters" on a light plate
    return im


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_corruption_is_deterministic_uint8_rgb_and_changes_the_crop(name):
    im = _crop()
    for s in SEVERITIES:
        out = corrupt(im, name, s, index=3)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        np.testing.assert_array_equal(out, corrupt(im, name, s, index=3))  # same inputs, same image
        if name in ("pad", "clutter"):
            d = max(int(round(corruption_param(name, s) * 40)), 1)
            assert out.shape == (40 + 2 * d, 120 + 2 * d, 3)
            np.testing.assert_array_equal(out[d:d + 40, d:d + 120], im)  # the crop itself is untouched
        else:
            assert out.shape == im.shape
            assert np.abs(out.astype(int) - im).max() > 0, (name, s)
    np.testing.assert_array_equal(im, _crop())  # the input is not modified in place


@pytest.mark.parametrize("name", ["dark", "bright", "contrast", "blur", "motion", "noise", "jpeg", "rotate", "shear"])
def test_higher_severity_changes_the_crop_more(name):
    im = _crop()
    err = [np.abs(corrupt(im, name, s).astype(float) - im).mean() for s in SEVERITIES]
    assert err[0] < err[1] < err[2], (name, err)


def test_photometric_corruptions_move_the_right_way():
    im = _crop()
    assert corrupt(im, "dark", 3).mean() < corrupt(im, "dark", 1).mean() < im.mean()
    assert corrupt(im, "bright", 3).mean() > corrupt(im, "bright", 1).mean() > im.mean()
    assert corrupt(im, "contrast", 3).std() < corrupt(im, "contrast", 1).std() < im.std()
    g = corrupt(im, "grey", 1)
    assert (g[:, :, 0] == g[:, :, 1]).all() and (g[:, :, 1] == g[:, :, 2]).all()
    # rotation and shear alternate their direction crop by crop; noise changes with the crop's index
    assert not np.array_equal(corrupt(im, "rotate", 2, index=0), corrupt(im, "rotate", 2, index=1))
    assert not np.array_equal(corrupt(im, "noise", 2, index=0), corrupt(im, "noise", 2, index=1))


def test_clutter_surrounds_the_crop_with_its_own_colours_not_its_edges():
    """clutter is a looser crop whose border is neither of the two data.loose_crops trains with (edges repeated,
    crop mirrored): a texture with the crop's mean colour and spread, different for every crop index."""
    im = _crop()
    out = corrupt(im, "clutter", 2, index=5)
    d = max(int(round(corruption_param("clutter", 2) * 40)), 1)
    border = np.concatenate([out[:d].reshape(-1, 3), out[-d:].reshape(-1, 3)]).astype(float)
    assert abs(border.mean() - im.mean()) < 0.25 * im.std()  # the crop's colours
    assert border.std() > 0.3 * im.std()  # a texture, not a flat fill
    for mode in (cv2.BORDER_REPLICATE, cv2.BORDER_REFLECT_101):
        assert not np.array_equal(out, cv2.copyMakeBorder(im, d, d, d, d, mode))
    assert not np.array_equal(out, corrupt(im, "clutter", 2, index=6))
    flat = np.full((40, 120, 3), 90, np.uint8)
    assert corrupt(flat, "clutter", 1).std() > 0  # a flat crop still gets a textured border


def test_bad_corruption_arguments_are_named():
    with pytest.raises(ValueError, match="unknown corruption 'fog'.*dark"):
        corrupt(_crop(), "fog", 1)
    with pytest.raises(ValueError, match="severity must be one of"):
        corrupt(_crop(), "dark", 4)
    with pytest.raises(ValueError, match="uint8 RGB"):
        corrupt(_crop().astype(np.float32), "dark", 1)


def test_evaluate_corrupt_help_names_every_corruption():
    # a subprocess: importing a CLI module here would define its absl flags in the test process
    r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.evaluate", "--help"], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert r.returncode == 0, r.stderr[-1000:]
    assert ", ".join(CORRUPTIONS) in " ".join(r.stdout.split()), r.stdout


def test_corrupted_source_keeps_texts_and_changes_images():
    from lprnet_tf.evaluation import corrupted_source

    src = SynthSource(load_plate_format("cn"), 5, 3)
    bad = corrupted_source(src, "dark", 2)
    assert bad.texts() == src.texts() and len(bad) == 3
    image, text = bad.get(1)
    np.testing.assert_array_equal(image, corrupt(src.get(1)[0], "dark", 2, 1))
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupted_source(src, "smoke", 1)


def test_robustness_benchmark_end_to_end(tmp_path):
    from lprnet_tf.modelio import save_model
    from lprnet_tf.models import build_model

    fmt = load_plate_format("br")
    folder = tmp_path / "data" / "br_openalpr_crops"
    (folder / "images").mkdir(parents=True)
    src = SynthSource(fmt, 31, 4)
    with open(folder / "labels.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "text", "split"])
        for i in range(4):
            image, text = src.get(i)
            cv2.imwrite(str(folder / "images" / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            w.writerow([f"images/{i}.png", text, "val" if i < 3 else "train"])
    model = save_model(build_model("lprnet_reduced", fmt), str(tmp_path / "m" / "model.keras"), fmt)
    out = str(tmp_path / "rob")
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "robustness.py"), "--models", model, "--data_root",
           str(tmp_path / "data"), "--corruptions", "dark,pad", "--out", out]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.load(open(out + ".json", encoding="utf-8"))
    assert len(results) == 1 and results[0]["count"] == 3  # the val split only
    res = results[0]["results"]
    assert set(res) == {"clean", "dark", "pad"} and len(res["dark"]) == 3
    assert all(0.0 <= e <= 1.0 and 0.0 <= c <= 1.0 for e, c in res["dark"] + res["pad"] + [res["clean"]])
    md = open(out + ".md", encoding="utf-8").read()
    assert "| dark |" in md and "| pad |" in md and "## Summary" in md
    bad = subprocess.run(cmd[:-4] + ["--corruptions", "fog", "--out", out], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "unknown corruption 'fog'" in bad.stderr
    sheet = str(tmp_path / "sheet.jpg")
    r = subprocess.run(cmd[:-4] + ["--corruptions", "dark,pad", "--sheet", sheet, "--sheet_only", "--out", out + "2"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    im = cv2.imread(sheet)
    assert im is not None and im.shape[0] == 2 * 36 + 8 and not os.path.exists(out + "2.json")  # nothing measured


def test_evaluate_cli_corrupt(tmp_path):
    """lprnet-evaluate --corrupt NAME:SEVERITY scores the changed crops (metrics name it; errors.csv keeps the files'
    paths) and refuses a bad spec before reading any data."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    fmt = load_plate_format("cn")
    folder = tmp_path / "set"
    (folder / "images").mkdir(parents=True)
    src = SynthSource(fmt, 77, 6)
    with open(folder / "labels.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "text"])
        for i in range(6):
            image, text = src.get(i)
            cv2.imwrite(str(folder / "images" / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            w.writerow([f"images/{i}.png", text])

    def evaluate(*extra, out):
        return subprocess.run([sys.executable, "-m", "lprnet_tf.cli.evaluate", "--model", "cn_lprnet_basic", "--data",
                               str(folder / "labels.csv"), "--out", str(tmp_path / out), *extra], env=env,
                              capture_output=True, text=True, timeout=300)

    clean, bad = evaluate(out="clean"), evaluate("--corrupt", "blur:3", out="blur")
    assert clean.returncode == 0 and bad.returncode == 0, (clean.stderr[-1500:], bad.stderr[-1500:])
    m0 = json.load(open(tmp_path / "clean" / "metrics.json", encoding="utf-8"))
    m1 = json.load(open(tmp_path / "blur" / "metrics.json", encoding="utf-8"))
    assert m1["corrupt"] == "blur:3" and "corrupt" not in m0 and m1["count"] == m0["count"] == 6
    assert m1["char_accuracy"] < m0["char_accuracy"]  # a strong blur of 24-px-high text costs characters
    rows = list(csv.reader(open(tmp_path / "blur" / "errors.csv", encoding="utf-8")))[1:]
    assert rows and all(r[1].endswith(".png") for r in rows)  # the crops' own paths, not synthetic:i
    for spec, part in (("fog:1", "unknown corruption 'fog'"), ("dark:4", "severity must be one of"),
                       ("dark", "the severity is a number 1-3"), ("dark:x", "the severity is a number 1-3")):
        r = evaluate("--corrupt", spec, out="never")
        assert r.returncode != 0 and part in r.stderr and "e.g. --corrupt dark:2" in r.stderr, (spec, r.stderr[-800:])
        assert not (tmp_path / "never").exists()  # refused before the output folder is made
    r = subprocess.run([sys.executable, "-m", "lprnet_tf.cli.evaluate", "--model", "cn_iq_stan", "--data", "synth:1:2",
                        "--out", str(tmp_path / "iq"), "--corrupt", "dark:1"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode != 0 and "--corrupt is for single-crop models" in r.stderr, r.stderr[-800:]
