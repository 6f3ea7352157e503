"""Helpers shared by the dataset tools: text normalization without a format, safe CSV output."""

from __future__ import annotations

import csv
import os
import tempfile

from lprnet_tf.config import UsageError
from lprnet_tf.data.readers import DataError
from lprnet_tf.vocab import PlateFormat

# Normalization (NFKC, strip separators, upper-case) does not depend on the alphabet; this
# one-character format is only used for its normalize() when no --format is given.
_GENERIC = PlateFormat(name="generic", alphabet="?", max_length=1)


def normalize(text: str, fmt: PlateFormat | None = None) -> str:
    """Plate text as the plate format writes it (``abc-1234`` -> ``ABC1234``)."""
    return (fmt or _GENERIC).normalize(text)


def rel_path(path: str, folder: str) -> str:
    """``path`` relative to ``folder`` with ``/`` separators (how labels.csv stores paths)."""
    return os.path.relpath(os.path.abspath(path), os.path.abspath(folder)).replace(os.sep, "/")


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_output_file(out: str, flag: str, overwrite: bool, inputs: tuple = ()) -> None:
    """Refuse to replace an existing file (the input above all) unless ``overwrite``."""
    if os.path.isdir(out):
        raise UsageError(f"{flag} {out} is a folder; give a file name such as {os.path.join(out, 'labels.csv')}")
    if not os.path.exists(out) or overwrite:
        return
    if any(same_file(out, i) for i in inputs):
        raise UsageError(f"{flag} {out} is the input file; write to another file, or pass --overwrite to "
                         f"replace the input")
    raise UsageError(f"{flag} {out} already exists; choose another file or pass --overwrite to replace it")


def write_csv(path: str, columns: list, rows: list) -> str:
    """Write dicts as a UTF-8 CSV (LF line ends) atomically: a temporary file renamed over ``path``,
    so an interrupted run never leaves half a labels file (nor destroys the one it replaces)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".csv", dir=folder)
    except OSError as e:
        raise DataError(f"{path}: cannot write here ({e.strerror}); choose another output path") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600: keep the replaced file's mode, else the umask's
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _file_mode(path: str) -> int:
    """The permission bits a rewritten ``path`` should keep: its own, or those of a new file (0666 less umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def require_png(out: str, flag: str, what: str) -> None:
    """Refuse an output name that does not end in .png (contact sheets are written as PNG)."""
    if not out.lower().endswith(".png"):
        raise UsageError(f"{flag} {out}: the {what} is a PNG; give a name ending in .png")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def one_apart(texts) -> list[tuple[str, str]]:
    """Pairs of distinct plate texts of the same length that differ in exactly one character, sorted.

    Such a pair is either two plates of one series (a fleet's consecutive numbers) or the same plate
    under a one-character label error (``AYQ2915`` / ``AVQ2915``); only a look at the images tells.
    Linear in the number of texts: texts sharing a key with one position masked are one apart.
    """
    buckets: dict = {}
    for t in set(texts):
        for i in range(len(t)):
            buckets.setdefault((i, t[:i], t[i + 1:]), []).append(t)
    pairs = set()
    for members in buckets.values():
        members.sort()
        pairs.update((a, b) for j, a in enumerate(members) for b in members[j + 1:])
    return sorted(pairs)
