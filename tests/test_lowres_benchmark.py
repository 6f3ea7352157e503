"""benchmarks/lowres.py end to end on a tiny stand-in for the BR validation set and tiny models."""

import csv
import json
import os
import subprocess
import sys

import cv2

from conftest import REPO
from lprnet_tf.data.pipeline import SynthSource
from lprnet_tf.vocab import load_plate_format


def _fake_br_set(root, n=6):
    fmt = load_plate_format("br")
    folder = root / "br_openalpr_crops"
    (folder / "images").mkdir(parents=True)
    src = SynthSource(fmt, 31, n)
    with open(folder / "labels.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "text", "split"])
        for i in range(n):
            image, text = src.get(i)
            image = cv2.resize(image, (180, 60), interpolation=cv2.INTER_CUBIC)  # as tall as real BR crops
            cv2.imwrite(str(folder / "images" / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            w.writerow([f"images/{i}.png", text, "val" if i < n - 1 else "train"])
    return n - 1


def test_lowres_benchmark_table(tmp_path):
    from lprnet_tf.modelio import save_model
    from lprnet_tf.models import build_model

    count = _fake_br_set(tmp_path / "data")
    br, br40 = load_plate_format("br"), load_plate_format(os.path.join(REPO, "configs", "variants", "br_120x40.yaml"))
    gan = save_model(build_model("mtgan", br, residual_blocks=1, gen_filters=8, disc_convs=2, disc_fc_units=16),
                     str(tmp_path / "gan" / "model.keras"), br)
    skip = save_model(build_model("mtgan", br, residual_blocks=1, gen_filters=8, disc_convs=2, disc_fc_units=16,
                                  input_skip="bilinear"), str(tmp_path / "gan_skip" / "model.keras"), br)
    slot = save_model(build_model("multitask_cnn", br40, fc_units=16), str(tmp_path / "slot" / "model.keras"), br40)
    out = tmp_path / "res" / "lowres"
    r = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "lowres.py"), "--data", str(tmp_path / "data"),
                        "--lowres", str(tmp_path / "lowres"), "--formats", "br,cn", "--br_mtgan", gan,
                        "--br_multitask", slot, "--br_multitask_bicubic", slot,
                        "--br_multitask_dgm", str(tmp_path / "missing.keras"), "--br_lprnet_sr", "br_lprnet_basic",
                        "--br_lprnet_lowres", str(tmp_path / "missing.keras"), "--br_mtgan_skip", skip,
                        "--br_lprnet_sr_skip", str(tmp_path / "missing.keras"),
                        "--br_lprnet_lowres_more", str(tmp_path / "missing.keras"),
                        "--br_lprnet_sr_lowres", "br_lprnet_basic", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "skipped cn" in r.stderr  # no CN set under --data: said, not fatal
    res = json.load(open(str(out) + ".json", encoding="utf-8"))
    assert [x["format"] for x in res] == ["br"]
    rows = res[0]["rows"]
    assert list(rows) == ["LPRNet", "MTGAN-SR + LPRNet", "MTGAN-SR + LPRNet fine-tuned on SR crops",
                          "MTGAN-SR with bilinear input skip (ours) + LPRNet",
                          "MTGAN-SR with bilinear input skip + the low-res LPRNet fine-tuned on its SR crops",
                          "multi-task CNN, HR training crops only", "multi-task CNN + 1/3 bicubic low-res crops"]
    # PSNR: an untrained generator with the input skip is bilinear upsampling, so it scores as bilinear does
    psnr = res[0]["psnr"]
    assert list(psnr)[:2] == ["bilinear interpolation", "bicubic interpolation"] and len(psnr) == 4
    skip_psnr = next(v for k, v in psnr.items() if k.startswith("MTGAN generator, bilinear input skip"))
    for h in ("12 px", "8 px"):
        assert abs(skip_psnr[h] - psnr["bilinear interpolation"][h]) < 0.05 and psnr["bilinear interpolation"][h] > 15
    assert psnr["bicubic interpolation"]["12 px"] > psnr["bicubic interpolation"]["8 px"]  # less detail lost at 12
    # an SR row names the super-resolver and its recognizer; the same pair gives the same figures
    assert rows["MTGAN-SR + LPRNet fine-tuned on SR crops"]["model"].endswith("+ br_lprnet_basic")
    assert rows["MTGAN-SR + LPRNet fine-tuned on SR crops"]["sets"] == rows["MTGAN-SR + LPRNet"]["sets"]
    sr_lowres = "MTGAN-SR with bilinear input skip + the low-res LPRNet fine-tuned on its SR crops"
    assert rows[sr_lowres]["sets"] == rows["MTGAN-SR with bilinear input skip (ours) + LPRNet"]["sets"]
    assert res[0]["columns"] == ["HR", "16 px", "12 px", "8 px"]
    for row in rows.values():
        for col in res[0]["columns"]:
            m = row["sets"][col]
            assert m["count"] == count and 0 <= m["accuracy"] <= m["char_accuracy"] <= 1
    # the shipped BR LPRNet (trained on real crops) reads these synthetic ones and loses at 8 px
    assert rows["LPRNet"]["sets"]["HR"]["char_accuracy"] > 0.3  # random weights: ~0.03
    assert rows["LPRNet"]["sets"]["8 px"]["char_accuracy"] < rows["LPRNet"]["sets"]["HR"]["char_accuracy"]
    md = open(str(out) + ".md", encoding="utf-8").read()
    assert "| LPRNet |" in md and "Not measured" in md and "missing.keras" in md and "PSNR" in md
    for h in (8, 12, 16):  # the low-resolution sets were built for the run
        assert os.path.isfile(tmp_path / "lowres" / f"br_val_h{h}" / "labels.csv")
