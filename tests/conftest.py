import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


@pytest.fixture
def cn():
    from lprnet_tf.vocab import load_plate_format

    return load_plate_format("cn")


@pytest.fixture
def br():
    from lprnet_tf.vocab import load_plate_format

    return load_plate_format("br")


def write_image(path, h=30, w=90, value=None):
    img = np.full((h, w, 3), 128 if value is None else value, np.uint8)
    cv2.putText(img, "AB12", (5, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    ok, buf = cv2.imencode(".jpg", img)
    buf.tofile(path)
    return path


@pytest.fixture
def tiny_csv(tmp_path):
    """A 6-image labels.csv (BR texts) with train/val splits."""
    (tmp_path / "images").mkdir()
    rows = ["path,text,split,group"]
    for i, t in enumerate(["ABC1234", "XYZ9876", "BRA2E19", "QWE1A23", "JKL0000", "MNO5555"]):
        write_image(str(tmp_path / "images" / f"{i}.jpg"))
        rows.append(f"images/{i}.jpg,{t},{'train' if i < 4 else 'val'},{t}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path / "labels.csv"
