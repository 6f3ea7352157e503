"""benchmarks/confidence.py: the confidence operating points of a shipped recognizer on a real-layout set."""

import json
import os
import sys

import cv2
import pytest

from conftest import REPO


def test_confidence_benchmark_on_a_small_set(tmp_path):
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import confidence

    from lprnet_tf.data.pipeline import SynthSource
    from lprnet_tf.modelio import load_for_inference

    _, fmt, _ = load_for_inference("uz_lprnet_basic")
    folder = tmp_path / "uz_plates"  # a set named like the real one, so reference_sets finds it
    (folder / "images").mkdir(parents=True)
    rows, src = ["path,text,split"], SynthSource(fmt, 4)
    for i in range(12):
        image, text = src.get(i)
        cv2.imwrite(str(folder / "images" / f"{i}.png"), image[..., ::-1])
        rows.append(f"images/{i}.png,{text},{'val' if i < 8 else 'train'}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = str(tmp_path / "conf")
    assert confidence.main(["--models", "uz_lprnet_basic", "--data_root", str(tmp_path), "--out", out]) == 0
    (row,) = json.load(open(out + ".json", encoding="utf-8"))["rows"]
    assert row["count"] == 8 and row["set"].startswith("uz_plates")
    errors = 8 - round(row["accuracy"] * 8)
    assert [p["threshold"] for p in row["points"]] == [0.3, 0.5, 0.7, 0.9]
    assert all(p["errors_accepted"] + p["errors_rejected"] == errors for p in row["points"])
    assert [p["accepted"] for p in row["points"]] == sorted((p["accepted"] for p in row["points"]), reverse=True)
    assert "| `uz_lprnet_basic` |" in open(out + ".md", encoding="utf-8").read()
    with pytest.raises(SystemExit):  # not a single-crop CTC recognizer
        confidence.main(["--models", "br_iq_stan", "--data_root", str(tmp_path), "--out", out])
