"""Dataset readers: every supported layout becomes a list of :class:`Sample`.

Layouts (see ``datasets/README.md``):
- ``labels.csv`` with header ``path,text`` (+ optional ``split``, ``group``, ``track``, ``frame``,
  ``quality`` and any other columns), paths relative to the CSV; a folder holding ``labels.csv``.
- OpenVINO-style list files: one ``relative/path.jpg LABEL`` per line (``.txt``/``.list``).
- CCPD folders: the file name encodes the box and the plate (``…-x1&y1_x2&y2-…-0_0_22_27_27_33_16-…``);
  the plate is cropped from the box when the image is loaded.
- Folders with the label in the file name: ``皖A12345.jpg``, ``皖A12345_2.jpg``.

Every problem (missing file, undecodable image, character outside the alphabet, empty or
malformed CSV, wrong columns) raises :class:`DataError` naming the file and row, or, with
``skip_bad=True``, is counted in the returned :class:`ReadReport` and skipped with a warning.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import sys
from typing import Iterable

import cv2
import numpy as np

from lprnet_tf.vocab import PlateFormat

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_IMAGE_PIXELS = 50_000_000  # a crop larger than this is certainly not a plate crop


class DataError(ValueError):
    """Bad dataset input; the message names the file (and row) and how to fix it."""


@dataclasses.dataclass
class Sample:
    """One labelled image. ``box`` = (x1, y1, x2, y2) to crop on load, or None."""

    path: str
    text: str
    split: str = ""
    group: str = ""
    box: tuple | None = None
    where: str = ""  # "file:row" for messages
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ReadReport:
    """What a reader kept and skipped."""

    source: str
    kept: int = 0
    skipped: list = dataclasses.field(default_factory=list)  # (where, reason)
    duplicates: list = dataclasses.field(default_factory=list)  # (where, where of the row it repeats)

    def summary(self) -> str:
        s = f"{self.source}: {self.kept} samples"
        if self.skipped:
            s += f", {len(self.skipped)} skipped (first: {self.skipped[0][0]}: {self.skipped[0][1]})"
        if self.duplicates:
            s += (f", {len(self.duplicates)} duplicate row(s) used once (first: {self.duplicates[0][0]} repeats "
                  f"{self.duplicates[0][1]}; remove the repeats)")
        return s


# ---------------------------------------------------------------------------------------------
# images
def load_image(path: str, box: tuple | None = None) -> np.ndarray:
    """Read an image file as uint8 RGB ``(H, W, 3)``, optionally cropped to ``box``.

    Grayscale, RGBA and 16-bit files are converted; anything unreadable raises DataError.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread
    except OSError as e:
        raise DataError(f"{path}: cannot read image file ({e.strerror}); check the path") from None
    if data.size == 0:
        raise DataError(f"{path}: image file is empty (0 bytes); re-export or remove it")
    check_header_size(data, path)
    if _jpeg_truncated(data):
        raise DataError(f"{path}: not a decodable image (JPEG cut short: no end-of-image marker); re-export or remove it")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: not a decodable image (truncated or not JPEG/PNG/BMP/WebP); re-export or remove it")
    if img.dtype != np.uint8:
        img = (img.astype(np.float32) * (255.0 / max(float(np.iinfo(img.dtype).max), 1.0))).astype(np.uint8) \
            if np.issubdtype(img.dtype, np.integer) else np.clip(img * 255.0, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise DataError(f"{path}: image has {img.shape[2]} channels; expected 1, 3 or 4")
    if box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        h, w = img.shape[:2]
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 2 or y2 - y1 < 2:
            raise DataError(f"{path}: box {box} lies outside the {w}x{h} image; fix the box")
        img = img[y1:y2, x1:x2]
    return np.ascontiguousarray(img)


def check_header_size(data: np.ndarray, path: str, limit: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """Refuse images whose header declares more than ``limit`` pixels, before decoding them.

    Returns the (width, height) read from a PNG or JPEG header, (0, 0) when it cannot tell.
    """
    b = data[:64].tobytes()
    w = h = 0
    if b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) >= 24:
        w, h = int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    elif b[:2] == b"\xff\xd8":
        w, h = _jpeg_size(data)
    elif b[:2] == b"BM" and len(b) >= 26:
        w, h = abs(int.from_bytes(b[18:22], "little", signed=True)), abs(int.from_bytes(b[22:26], "little", signed=True))
    elif b[:4] == b"RIFF" and b[8:12] == b"WEBP" and len(b) >= 30:
        w, h = _webp_size(b)
    if w * h > limit:
        raise DataError(f"{path}: image header says {w}x{h} pixels, more than a plate crop can be "
                        f"(limit {limit}); crop the plate first")
    return w, h


def _webp_size(b: bytes) -> tuple[int, int]:
    chunk = b[12:16]
    if chunk == b"VP8X":  # extended: 24-bit (width-1), (height-1)
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    if chunk == b"VP8L" and b[20] == 0x2F:  # lossless: 14-bit (width-1), (height-1)
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and b[23:26] == b"\x9d\x01\x2a":  # lossy key frame: 14-bit width, height
        return int.from_bytes(b[26:28], "little") & 0x3FFF, int.from_bytes(b[28:30], "little") & 0x3FFF
    return 0, 0


def _jpeg_truncated(data: np.ndarray) -> bool:
    """True for a JPEG whose segments end before the image data or that has no end-of-image marker
    after its first scan (a cut-off download or copy). Decoders differ on such files: some fill the
    missing part with grey, so the check is ours. Non-JPEG data gives False."""
    b = data.tobytes()
    if b[:2] != b"\xff\xd8":
        return False
    i = 2
    while i + 4 <= len(b):
        if b[i] != 0xFF:
            return False  # not the segment structure we know: let the decoder judge
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data follows; it must end with EOI
            return b.find(b"\xff\xd9", i + 2) < 0
        if marker == 0xD9:
            return False
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + int.from_bytes(b[i + 2:i + 4], "big")
    return True  # the headers run past the end of the file


def _jpeg_size(data: np.ndarray) -> tuple[int, int]:
    b = data[: 1 << 16].tobytes()
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            i += 1
            continue
        marker = b[i + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int.from_bytes(b[i + 7:i + 9], "big"), int.from_bytes(b[i + 5:i + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + int.from_bytes(b[i + 2:i + 4], "big")
    return 0, 0


# ---------------------------------------------------------------------------------------------
# readers
class _Collector:
    def __init__(self, source: str, fmt: PlateFormat, skip_bad: bool, verify_images: bool):
        self.report = ReadReport(source)
        self.fmt, self.skip_bad, self.verify = fmt, skip_bad, verify_images
        self.samples: list[Sample] = []
        self.seen: dict = {}  # (image path, box) -> (where, normalized text) of the row that added it

    def bad(self, where: str, reason: str):
        if not self.skip_bad:
            raise DataError(f"{where}: {reason} (or skip bad rows: --skip_bad, or data.skip_bad=true in training)")
        self.report.skipped.append((where, reason))

    def add(self, sample: Sample):
        text = self.fmt.normalize(sample.text)
        why = self.fmt.check(text)
        if why:
            return self.bad(sample.where, why)
        key = (os.path.normcase(os.path.abspath(sample.path)), sample.box)
        if key in self.seen:
            first, first_text = self.seen[key]
            if first_text != text:
                return self.bad(sample.where, f"image {sample.path} is labelled {first_text!r} at {first} and "
                                              f"{text!r} here; keep one label per image")
            self.report.duplicates.append((sample.where, first))  # same image, same label: used once
            return None
        if not os.path.isfile(sample.path):
            return self.bad(sample.where, f"image {sample.path} does not exist; fix the path (paths are relative to the label file)")
        if self.verify:
            try:
                load_image(sample.path, sample.box)
            except DataError as e:
                return self.bad(sample.where, str(e))
        sample.text = text
        self.samples.append(sample)
        self.seen[key] = (sample.where, text)
        self.report.kept += 1

    def finish(self) -> tuple[list[Sample], ReadReport]:
        if self.report.skipped or self.report.duplicates:
            print(f"warning: {self.report.summary()}", file=sys.stderr)
        if not self.samples:
            if self.report.skipped:
                raise DataError(f"{self.report.source}: no usable samples ({len(self.report.skipped)} skipped as "
                                f"bad, first: {self.report.skipped[0][0]}: {self.report.skipped[0][1]})")
            raise DataError(f"{self.report.source}: no samples (only a header?); add one row per labelled image")
        return self.samples, self.report


def _read_text(path: str) -> str:
    """A label file as text (UTF-8, BOM dropped, line ends kept for the csv module)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save the file as UTF-8") from None
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror})") from None


def _open_labels_csv(path: str) -> tuple:
    """A ``labels.csv`` as a DictReader with stripped header names, and the names; an empty file or
    a header without ``path,text`` raises DataError."""
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the CSV is empty; it needs a header 'path,text' and one row per image")
    reader = csv.DictReader(io.StringIO(text))
    cols = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = cols
    repeated = sorted({c for c in cols if cols.count(c) > 1})
    if repeated:
        raise DataError(f"{path}: the header names column(s) {repeated} more than once ({cols}); keep one of each")
    missing = [c for c in ("path", "text") if c not in cols]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {cols}. The first line must be a header "
                        f"with at least 'path,text'")
    return reader, cols


def read_csv(path: str, fmt: PlateFormat, skip_bad=False, verify_images=True, split=None):
    """Read ``labels.csv`` (``path,text[,split,group,...]``; UTF-8, BOM and CRLF accepted)."""
    col = _Collector(path, fmt, skip_bad, verify_images)
    root = os.path.dirname(os.path.abspath(path))
    reader, cols = _open_labels_csv(path)
    n, seen = 0, set()
    for i, row in enumerate(reader, start=2):
        where = f"{path}:{i}"
        if None in row or any(row.get(c) is None for c in ("path", "text")):
            col.bad(where, f"row does not have the {len(cols)} fields of the header {cols}; fix the row")
            continue
        if split and row.get("split", "") != split:
            seen.add(row.get("split") or "")
            continue
        n += 1
        rel = row["path"].strip()
        extra = {k: v for k, v in row.items() if k not in ("path", "text", "split", "group")}
        col.add(Sample(path=os.path.join(root, rel), text=row["text"], split=row.get("split", "") or "",
                       group=row.get("group", "") or "", where=where, extra=extra))
    if n == 0 and split:
        if "split" not in cols:
            raise DataError(f"{path}: no 'split' column, so no rows with split '{split}'; drop --split (or add "
                            f"the column)")
        raise DataError(f"{path}: no rows with split '{split}'; its splits are {sorted(s for s in seen if s)}")
    return col.finish()


def read_list(path: str, fmt: PlateFormat, skip_bad=False, verify_images=True):
    """Read an OpenVINO-style list: ``relative/path.jpg LABEL`` per line."""
    col = _Collector(path, fmt, skip_bad, verify_images)
    root = os.path.dirname(os.path.abspath(path))
    lines = _read_text(path).splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: the list file is empty; write one 'path LABEL' per line")
    for i, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.strip().rsplit(None, 1)
        if len(parts) != 2:
            col.bad(f"{path}:{i}", f"expected 'path LABEL', got {line.strip()!r}")
            continue
        col.add(Sample(path=os.path.join(root, parts[0]), text=parts[1], where=f"{path}:{i}"))
    return col.finish()


CCPD_PROVINCES = ["皖", "沪", "津", "渝", "冀", "晋", "蒙", "辽", "吉", "黑", "苏", "浙", "京", "闽", "赣",
                  "鲁", "豫", "鄂", "湘", "粤", "桂", "琼", "川", "贵", "云", "藏", "陕", "甘", "青", "宁",
                  "新", "警", "学", "O"]
CCPD_LETTERS = list("ABCDEFGHJKLMNPQRSTUVWXYZ") + ["O"]
CCPD_ADS = list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") + ["O"]


def parse_ccpd_name(name: str) -> tuple[str, tuple]:
    """Decode a CCPD file name into (plate text, box x1,y1,x2,y2). Raises ValueError."""
    fields = os.path.splitext(os.path.basename(name))[0].split("-")
    if len(fields) < 7:
        raise ValueError("not a CCPD name (expected 7 '-'-separated fields)")
    (x1, y1), (x2, y2) = ([int(v) for v in p.split("&")] for p in fields[2].split("_"))
    idx = [int(v) for v in fields[4].split("_")]
    if len(idx) < 7:
        raise ValueError("CCPD plate field has fewer than 7 indices")
    text = CCPD_PROVINCES[idx[0]] + CCPD_LETTERS[idx[1]] + "".join(CCPD_ADS[k] for k in idx[2:])
    return text, (x1, y1, x2, y2)


def _image_files(folder: str) -> list[str]:
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS))


def read_ccpd(folder: str, fmt: PlateFormat, skip_bad=False, verify_images=True):
    """Read a CCPD folder; each plate is cropped from the box in its file name when loaded."""
    col = _Collector(folder, fmt, skip_bad, verify_images)
    for f in _image_files(folder):
        where = os.path.join(folder, f)
        try:
            text, box = parse_ccpd_name(f)
        except (ValueError, IndexError) as e:
            col.bad(where, f"cannot decode CCPD file name ({e})")
            continue
        col.add(Sample(path=where, text=text, box=box, where=where))
    return col.finish()


def read_filenames(folder: str, fmt: PlateFormat, skip_bad=False, verify_images=True):
    """Read a folder whose file names are labels (``皖A12345.jpg``, ``皖A12345_2.jpg``)."""
    col = _Collector(folder, fmt, skip_bad, verify_images)
    for f in _image_files(folder):
        text = os.path.splitext(f)[0].split("_")[0]
        col.add(Sample(path=os.path.join(folder, f), text=text, where=os.path.join(folder, f)))
    return col.finish()


def _looks_ccpd(files: Iterable[str]) -> bool:
    files = list(files)[:20]
    if not files:
        return False
    ok = 0
    for f in files:
        try:
            parse_ccpd_name(f)
            ok += 1
        except (ValueError, IndexError):
            pass
    return ok == len(files)


def read_samples(source: str, fmt: PlateFormat, skip_bad=False, verify_images=True, split=None,
                 layout: str = "auto"):
    """Read any supported layout (``layout``: auto, csv, list, ccpd, filenames).

    ``source`` may be a CSV, a list file, a folder with ``labels.csv`` or a folder of images.
    Returns ``(samples, report)``.
    """
    if not os.path.exists(source):
        raise DataError(f"{source}: no such file or folder; pass a labels.csv, a list file or an image folder")
    if layout == "auto":
        if os.path.isdir(source):
            if os.path.isfile(os.path.join(source, "labels.csv")):
                source, layout = os.path.join(source, "labels.csv"), "csv"
            else:
                files = _image_files(source)
                if not files:
                    raise DataError(f"{source}: folder has no labels.csv and no images; pass the folder "
                                    f"holding labels.csv or the images (names carry the label), or a labels.csv")
                layout = "ccpd" if _looks_ccpd(files) else "filenames"
        else:
            layout = "csv" if source.lower().endswith(".csv") else "list"
    if split and layout != "csv":
        raise DataError(f"{source}: --split needs a labels.csv with a 'split' column")
    if layout == "csv":
        return read_csv(source, fmt, skip_bad, verify_images, split=split)
    if layout == "list":
        return read_list(source, fmt, skip_bad, verify_images)
    if layout == "ccpd":
        return read_ccpd(source, fmt, skip_bad, verify_images)
    if layout == "filenames":
        return read_filenames(source, fmt, skip_bad, verify_images)
    raise DataError(f"unknown layout '{layout}'; use auto, csv, list, ccpd or filenames")


# ---------------------------------------------------------------------------------------------
# raw scanning, for the dataset tools (lprnet-data): every row as written, no label or image checks
LAYOUTS = ("auto", "csv", "list", "ccpd", "filenames")


def detect_layout(source: str, layout: str = "auto") -> tuple[str, str]:
    """Resolve ``(source, layout)`` the way :func:`read_samples` does: a folder holding
    ``labels.csv`` means that CSV; a folder of images is CCPD when its names decode as CCPD, else a
    label-in-file-name folder; a file is a CSV by its ``.csv`` extension, else a list file."""
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout '{layout}'; use one of {', '.join(LAYOUTS)}")
    if not os.path.exists(source):
        raise DataError(f"{source}: no such file or folder; pass a labels.csv, a list file or an image folder")
    if layout == "csv" and os.path.isdir(source):
        source = os.path.join(source, "labels.csv")
    if layout == "auto":
        if os.path.isdir(source):
            if os.path.isfile(os.path.join(source, "labels.csv")):
                return os.path.join(source, "labels.csv"), "csv"
            files = _image_files(source)
            if not files:
                raise DataError(f"{source}: folder has no labels.csv and no images; pass the folder "
                                f"holding labels.csv or the images (names carry the label), or a labels.csv")
            return source, ("ccpd" if _looks_ccpd(files) else "filenames")
        return source, ("csv" if source.lower().endswith(".csv") else "list")
    if layout in ("ccpd", "filenames") and not os.path.isdir(source):
        raise DataError(f"{source}: layout '{layout}' needs a folder of images")
    if layout in ("csv", "list") and not os.path.isfile(source):
        raise DataError(f"{source}: layout '{layout}' needs a label file")
    return source, layout


@dataclasses.dataclass
class RawRow:
    """One row of a label source as written.

    ``fields``: the CSV columns (or ``path``/``text`` for the other layouts) exactly as written;
    ``sample``: the :class:`Sample` the row describes (image path resolved, box for CCPD, text NOT
    normalized), or None when the row cannot be parsed, and then ``problem`` says why.
    """

    where: str
    fields: dict
    sample: Sample | None
    problem: str = ""


@dataclasses.dataclass
class RawScan:
    """Every row of a label source (:func:`scan_rows`)."""

    source: str  # the resolved label file or image folder
    layout: str
    columns: list  # CSV header, or ["path", "text"]
    rows: list  # RawRow

    @property
    def root(self) -> str:
        """The folder image paths are relative to."""
        return self.source if os.path.isdir(self.source) else os.path.dirname(os.path.abspath(self.source))


def scan_rows(source: str, layout: str = "auto") -> RawScan:
    """Parse a label source of any layout into :class:`RawRow` s without checking labels or images
    (those checks are :func:`read_samples`' and ``lprnet-data validate``'s). A file-level problem
    (empty CSV, missing ``path,text`` header, unreadable file) raises DataError."""
    source, layout = detect_layout(source, layout)
    rows: list[RawRow] = []
    if layout == "csv":
        root = os.path.dirname(os.path.abspath(source))
        reader, cols = _open_labels_csv(source)
        for i, row in enumerate(reader, start=2):
            where = f"{source}:{i}"
            if None in row or any(row.get(c) is None for c in ("path", "text")):
                fields = {k: (v or "") for k, v in row.items() if k is not None}
                rows.append(RawRow(where, fields, None,
                                   f"row does not have the {len(cols)} fields of the header {cols}; fix the row"))
                continue
            fields = {k: (v if v is not None else "") for k, v in row.items()}
            extra = {k: v for k, v in fields.items() if k not in ("path", "text", "split", "group")}
            sample = Sample(path=os.path.join(root, fields["path"].strip()), text=fields["text"],
                            split=fields.get("split", "") or "", group=fields.get("group", "") or "",
                            where=where, extra=extra)
            rows.append(RawRow(where, fields, sample))
        return RawScan(source, layout, cols, rows)
    if layout == "list":
        root = os.path.dirname(os.path.abspath(source))
        lines = _read_text(source).splitlines()
        if not any(line.strip() for line in lines):
            raise DataError(f"{source}: the list file is empty; write one 'path LABEL' per line")
        for i, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{source}:{i}"
            parts = line.strip().rsplit(None, 1)
            if len(parts) != 2:
                rows.append(RawRow(where, {"path": line.strip(), "text": ""}, None,
                                   f"expected 'path LABEL', got {line.strip()!r}"))
                continue
            rows.append(RawRow(where, {"path": parts[0], "text": parts[1]},
                               Sample(path=os.path.join(root, parts[0]), text=parts[1], where=where)))
        return RawScan(source, layout, ["path", "text"], rows)
    for f in _image_files(source):
        where = os.path.join(source, f)
        if layout == "ccpd":
            try:
                text, box = parse_ccpd_name(f)
            except (ValueError, IndexError) as e:
                rows.append(RawRow(where, {"path": f, "text": ""}, None, f"cannot decode CCPD file name ({e})"))
                continue
        else:
            text, box = os.path.splitext(f)[0].split("_")[0], None
        rows.append(RawRow(where, {"path": f, "text": text}, Sample(path=where, text=text, box=box, where=where)))
    if not rows:
        raise DataError(f"{source}: folder has no images")
    return RawScan(source, layout, ["path", "text"], rows)


def image_size(path: str, box: tuple | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image file (of its ``box`` crop when given), read from the file header
    (:func:`check_header_size`) when it says, else by decoding. Raises DataError naming the file when it
    cannot be read. Unlike :func:`load_image` it does not prove the whole file decodes."""
    try:
        head = np.fromfile(path, dtype=np.uint8, count=1 << 16)
    except OSError as e:
        raise DataError(f"{path}: cannot read image file ({e.strerror}); check the path") from None
    if head.size == 0:
        raise DataError(f"{path}: image file is empty (0 bytes); re-export or remove it")
    w, h = check_header_size(head, path)
    if not (w and h):
        img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DataError(f"{path}: not a decodable image (truncated or not JPEG/PNG/BMP/WebP); "
                            f"re-export or remove it")
        h, w = img.shape[:2]
    if box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 2 or y2 - y1 < 2:
            raise DataError(f"{path}: box {box} lies outside the {w}x{h} image; fix the box")
        return x2 - x1, y2 - y1
    return w, h
