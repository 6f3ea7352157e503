import os

import cv2
import numpy as np
import pytest

from conftest import SHARED_DATA, write_image
from lprnet_tf.data.readers import DataError, load_image, parse_ccpd_name, read_samples


def test_csv_reader_and_split(tiny_csv, br):
    samples, report = read_samples(str(tiny_csv), br)
    assert len(samples) == 6 and report.kept == 6
    train, _ = read_samples(str(tiny_csv), br, split="train")
    assert [s.text for s in train] == ["ABC1234", "XYZ9876", "BRA2E19", "QWE1A23"]
    assert train[0].group == "ABC1234"
    # the folder holding labels.csv works too
    assert len(read_samples(str(tiny_csv.parent), br)[0]) == 6
    with pytest.raises(DataError, match=r"no rows with split 'tset'; its splits are \['train', 'val'\]"):
        read_samples(str(tiny_csv), br, split="tset")


def test_csv_bom_crlf_and_normalization(tmp_path, br):
    write_image(str(tmp_path / "a.jpg"))
    (tmp_path / "labels.csv").write_bytes("\ufeffpath,text\r\na.jpg,abc-1234\r\n".encode("utf-8"))
    samples, _ = read_samples(str(tmp_path / "labels.csv"), br)
    assert samples[0].text == "ABC1234"


@pytest.mark.parametrize("content,match", [
    ("", "empty"),
    ("file,label\na.jpg,ABC1234\n", "missing column"),
    ("path,text\nmissing.jpg,ABC1234\n", "does not exist"),
    ("path,text\na.jpg,ABC12#4\n", "outside"),
    ("path,text\na.jpg,ABCD12345\n", "max_length"),
    ("path,text\na.jpg\n", "fields"),
])
def test_csv_errors_name_file_and_row(tmp_path, br, content, match):
    write_image(str(tmp_path / "a.jpg"))
    p = tmp_path / "labels.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match) as e:
        read_samples(str(p), br)
    assert "labels.csv" in str(e.value)
    if match not in ("empty", "missing column"):
        assert "labels.csv:2" in str(e.value)


def test_skip_bad_counts(tmp_path, br):
    write_image(str(tmp_path / "a.jpg"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "labels.csv").write_text(
        "path,text\na.jpg,ABC1234\nbroken.jpg,ABC1234\nnope.jpg,ABC1234\na.jpg,ABC!234\n", encoding="utf-8")
    with pytest.raises(DataError, match="labels.csv:3.*not a decodable image"):
        read_samples(str(tmp_path / "labels.csv"), br)
    samples, report = read_samples(str(tmp_path / "labels.csv"), br, skip_bad=True)
    assert len(samples) == 1 and len(report.skipped) == 3


def test_image_loading_conversions(tmp_path):
    gray = np.full((20, 60), 100, np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    rgba = np.zeros((20, 60, 4), np.uint8)
    rgba[..., 2] = 255  # red in BGRA
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    deep = np.full((20, 60, 3), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "d16.png"), deep)
    assert load_image(str(tmp_path / "g.png")).shape == (20, 60, 3)
    assert tuple(load_image(str(tmp_path / "rgba.png"))[0, 0]) == (255, 0, 0)
    assert load_image(str(tmp_path / "d16.png")).max() == 255
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_image(str(tmp_path / "zero.jpg"))
    # a PNG header claiming 20000x20000 pixels is refused before decoding
    hdr = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (20000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    (tmp_path / "huge.png").write_bytes(hdr + b"\x00" * 32)
    with pytest.raises(DataError, match="20000x20000"):
        load_image(str(tmp_path / "huge.png"))


def test_list_reader(tmp_path, br):
    write_image(str(tmp_path / "a.jpg"))
    write_image(str(tmp_path / "b.jpg"))
    (tmp_path / "list.txt").write_text("a.jpg ABC1234\n\nb.jpg BRA2E19\n", encoding="utf-8")
    samples, _ = read_samples(str(tmp_path / "list.txt"), br)
    assert [s.text for s in samples] == ["ABC1234", "BRA2E19"]
    (tmp_path / "bad.txt").write_text("a.jpg\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.txt:1"):
        read_samples(str(tmp_path / "bad.txt"), br)


def test_filename_reader(tmp_path, cn):
    write_image(str(tmp_path / "皖A12345.jpg"))
    write_image(str(tmp_path / "皖A12345_2.jpg"))
    samples, _ = read_samples(str(tmp_path), cn)
    assert [s.text for s in samples] == ["皖A12345", "皖A12345"]


def test_ccpd_reader_crops_box(tmp_path, cn):
    name = "025-95_113-10&5_70&25-70&25_10&25_10&5_70&5-0_0_22_27_27_33_16-37-15.jpg"
    text, box = parse_ccpd_name(name)
    assert text == "皖AY339S" and box == (10, 5, 70, 25)
    write_image(str(tmp_path / name), h=40, w=100)
    samples, _ = read_samples(str(tmp_path), cn)
    assert samples[0].text == "皖AY339S"
    assert load_image(samples[0].path, samples[0].box).shape == (20, 60, 3)


def test_missing_source(br):
    with pytest.raises(DataError, match="no such file"):
        read_samples("/nonexistent/labels.csv", br)


def test_reads_real_cn_set(cn):
    path = os.path.join(SHARED_DATA, "cn_ccpd_like_1000")
    if not os.path.isdir(path):
        pytest.skip("shared data not present")
    samples, report = read_samples(path, cn)
    assert len(samples) == 1000 and not report.skipped
