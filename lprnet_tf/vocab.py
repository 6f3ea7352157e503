"""Plate formats and the vocabulary: the one place that maps plate text to class ids.

A plate format (``configs/plates/<name>.yaml``) names the alphabet, the maximum plate length,
the network input size, the templates (regexes) real plates of that country follow, optional
class merges used only for scoring (``O0`` means "count O and 0 as the same character"), the
number of text rows (``rows: 2`` with ``row_split``: two-row plates, see
:func:`lprnet_tf.runtime.fit_crop`), ``reports_on`` (a multi-country format: the other formats whose
real reference sets its models are also scored on, :func:`lprnet_tf.evaluation.reference_sets`) and a
free-form ``synth`` section read by :mod:`lprnet_tf.synth`.
A format file may start from another one with ``base: NAME_OR_PATH`` and list only what it changes.

Class ids: 0 is the CTC blank (also the label padding value), alphabet character ``i`` is class
``i + 1``; ``num_classes = len(alphabet) + 1``. Nothing else in the project adds ``+1``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import unicodedata
from typing import Iterable, Sequence

import yaml

BLANK = 0
# Shipped formats live in the package (lprnet_tf/plates, installed as package data);
# configs/plates in the repository is a link to them.
_PLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plates")
# Characters users write inside plate strings that are not part of the plate text.
_STRIP = str.maketrans("", "", " -·•._\t\u3000\u00b7\u30fb")



def bad_merges(merges, alphabet: str) -> list:
    """The class merges (``O0``: count O and 0 as one character) that do not list >= 2 characters of ``alphabet``."""
    return [m for m in merges if len(m) < 2 or any(c not in alphabet for c in m)]

class PlateFormatError(ValueError):
    """A plate-format YAML is missing a field, has an unknown key or a wrong type."""


class LabelError(ValueError):
    """A label cannot be encoded in a plate format (unknown character, too long, empty)."""


_ALLOWED_KEYS = {
    "name": str, "description": str, "alphabet": str, "max_length": int, "height": int,
    "width": int, "templates": list, "merges": list, "rows": int, "row_split": float,
    "reports_on": list, "synth": dict,
}
_REQUIRED = ("name", "alphabet", "max_length", "height", "width")


@dataclasses.dataclass(frozen=True)
class PlateFormat:
    """A country's plate format; see the module docstring for the YAML keys."""

    name: str
    alphabet: str
    max_length: int
    height: int = 24
    width: int = 94
    templates: tuple = ()
    merges: tuple = ()
    rows: int = 1
    row_split: float = 0.4
    description: str = ""
    reports_on: tuple = dataclasses.field(default=(), compare=False)  # scoring only, like synth
    synth: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        if len(set(self.alphabet)) != len(self.alphabet):
            dup = sorted({c for c in self.alphabet if self.alphabet.count(c) > 1})
            raise PlateFormatError(f"plate format '{self.name}': alphabet repeats {dup}; list each character once")
        if not self.alphabet:
            raise PlateFormatError(f"plate format '{self.name}': alphabet is empty")
        if self.max_length < 1 or self.height < 8 or self.width < 16:
            raise PlateFormatError(
                f"plate format '{self.name}': need max_length >= 1, height >= 8, width >= 16 "
                f"(got {self.max_length}, {self.height}, {self.width})")
        if self.rows not in (1, 2):
            raise PlateFormatError(f"plate format '{self.name}': rows must be 1 or 2, got {self.rows}")
        for t in self.templates:
            try:
                re.compile(t)
            except re.error as e:
                raise PlateFormatError(f"plate format '{self.name}': template {t!r} is not a valid regex ({e})")
        for m in bad_merges(self.merges, self.alphabet):
            raise PlateFormatError(f"plate format '{self.name}': merge {m!r} must list >= 2 characters of the alphabet")
        shipped = available_formats() if self.reports_on else []
        unknown = [f for f in self.reports_on if f not in shipped]
        if unknown:
            raise PlateFormatError(f"plate format '{self.name}': reports_on lists {unknown}, not shipped plate "
                                   f"formats; choose from {shipped}")
        object.__setattr__(self, "_index", {c: i + 1 for i, c in enumerate(self.alphabet)})
        object.__setattr__(self, "_compiled", tuple(re.compile(t) for t in self.templates))

    # ---- classes -------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Alphabet size + 1 (class 0 is the CTC blank)."""
        return len(self.alphabet) + 1

    def normalize(self, text: str) -> str:
        """Unicode-NFKC, drop spaces/dashes/dots/``·``, upper-case Latin letters."""
        text = unicodedata.normalize("NFKC", str(text)).translate(_STRIP)
        return text.upper()

    def check(self, text: str) -> str | None:
        """Return why ``text`` (already normalized) cannot be a label, or None when it can."""
        if not text:
            return "empty label; write the plate text or remove the row"
        bad = sorted({c for c in text if c not in self._index})
        if bad:
            return (f"label {text!r} has character(s) {''.join(bad)!r} outside the '{self.name}' alphabet; "
                    f"fix the label or add the character(s) to configs/plates/{self.name}.yaml")
        if len(text) > self.max_length:
            return (f"label {text!r} has {len(text)} characters, more than max_length={self.max_length} "
                    f"of plate format '{self.name}'; fix the label or raise max_length in the format")
        return None

    def encode(self, text: str) -> list[int]:
        """Normalize and map a label to class ids (1..num_classes-1); raises LabelError."""
        norm = self.normalize(text)
        why = self.check(norm)
        if why:
            raise LabelError(why)
        return [self._index[c] for c in norm]

    def decode(self, ids: Iterable[int]) -> str:
        """Map class ids back to text, skipping blanks (no CTC collapsing here)."""
        a = self.alphabet
        return "".join(a[i - 1] for i in ids if 0 < int(i) <= len(a))

    def pad(self, ids: Sequence[int]) -> list[int]:
        """Pad ``ids`` with the blank class to ``max_length``."""
        return list(ids) + [BLANK] * (self.max_length - len(ids))

    # ---- templates and scoring -------------------------------------------------------------
    def matches_template(self, text: str) -> bool:
        """True if ``text`` matches one template (always True when the format has none)."""
        if not self._compiled:
            return True
        return any(p.fullmatch(text) for p in self._compiled)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["templates"] = list(self.templates)
        d["merges"] = list(self.merges)
        d["reports_on"] = list(self.reports_on)
        return d

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(self.to_dict(), f, allow_unicode=True, sort_keys=False)


def read_yaml(path: str, error: type[ValueError], missing_hint: str = ""):
    """Parse a YAML file; a missing file, bad encoding or bad syntax raises ``error`` naming the file."""
    if not os.path.isfile(path):
        raise error(f"{path}: file not found{'; ' + missing_hint if missing_hint else ''}")
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:  # one line: "FILE:LINE: not valid YAML (problem)"
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        why = getattr(e, "problem", None) or " ".join(str(e).split())
        raise error(f"{where}: not valid YAML ({why}); fix the syntax at that line") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text; save the file as UTF-8") from None


def plate_format_from_dict(d: dict, source: str = "<dict>") -> PlateFormat:
    """Validate a plate-format mapping: unknown keys, missing fields and wrong types are errors."""
    if not isinstance(d, dict):
        got = "an empty file" if d is None else type(d).__name__
        raise PlateFormatError(f"{source}: a plate format must be a YAML mapping, got {got}; it needs at least "
                               f"{', '.join(_REQUIRED)}")
    unknown = sorted(set(d) - set(_ALLOWED_KEYS), key=str)
    if unknown:
        raise PlateFormatError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(_ALLOWED_KEYS)}")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise PlateFormatError(f"{source}: missing required key(s) {missing}")
    kw = {}
    for k, v in d.items():
        want = _ALLOWED_KEYS[k]
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            raise PlateFormatError(f"{source}: key '{k}' must be {want.__name__}, got {type(v).__name__} ({v!r})")
        if k in ("templates", "merges", "reports_on"):
            if not all(isinstance(x, str) for x in v):
                raise PlateFormatError(f"{source}: every entry of '{k}' must be a string")
            v = tuple(v)
        kw[k] = v
    try:
        return PlateFormat(**kw)
    except PlateFormatError as e:  # name the file (the checks in PlateFormat name the format)
        raise (type(e)(f"{source}: {e}") if source != "<dict>" else e) from None


def available_formats() -> list[str]:
    """Names of the shipped plate formats (``configs/plates`` = ``lprnet_tf/plates``)."""
    return sorted(f[:-5] for f in os.listdir(_PLATES_DIR) if f.endswith(".yaml"))


def plates_dir() -> str:
    return _PLATES_DIR


def load_plate_format(name_or_path: str | dict | PlateFormat) -> PlateFormat:
    """Load a plate format by shipped name (``cn``), by YAML path, or from a mapping."""
    if isinstance(name_or_path, PlateFormat):
        return name_or_path
    if isinstance(name_or_path, dict):
        return plate_format_from_dict(name_or_path)
    path = _format_path(name_or_path)
    return plate_format_from_dict(_raw_format(path), source=path)


LAYOUT_FIELDS = ("alphabet", "max_length", "height", "width", "rows", "row_split")


def layout_differences(a: PlateFormat, b: PlateFormat) -> list[str]:
    """The fields (of :data:`LAYOUT_FIELDS`) in which two formats differ: what a model trained on one would
    see differently in the other (class ids, input size, two-row layout). Formats that differ only in their
    synthetic plates (a variant's ``synth_update``), templates or merges give ``[]``."""
    return [f for f in LAYOUT_FIELDS if getattr(a, f) != getattr(b, f)]


def with_synth_update(fmt: PlateFormat, update: dict) -> PlateFormat:
    """``fmt`` with parts of its ``synth`` section changed as a format file's ``synth_update`` changes them
    (``{degrade: {margin_x: [-0.1, 0.1]}}`` sets one degradation and keeps the others; see :func:`_raw_format`)."""
    d = fmt.to_dict()
    if not d.get("synth"):  # a loaded format without a synth section holds an empty one
        del d["synth"]
    return plate_format_from_dict(_apply_synth_update(f"plate format {fmt.name}", d, update))


def _format_path(name_or_path: str, relative_to: str = "") -> str:
    path = name_or_path
    if not (path.endswith((".yaml", ".yml")) or os.sep in path or "/" in path):
        path = os.path.join(plates_dir(), f"{name_or_path}.yaml")
        if not os.path.isfile(path):
            raise PlateFormatError(
                f"unknown plate format '{name_or_path}'; shipped formats: {available_formats()} "
                f"(or pass a path to your own YAML)")
    elif relative_to and not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(relative_to, path)
    return path


def _raw_format(path: str, seen: tuple = ()) -> dict:
    """The YAML mapping of a format file with its ``base:`` chain applied: a file may start from
    another format (``base: cn2`` -- a shipped name, or a path relative to the file) and set only the
    keys it changes; ``synth`` is replaced as a whole, never merged. ``synth_update`` changes parts of
    the (inherited) ``synth`` section instead: each of its mappings (``sets``, ``styles``, ``degrade``)
    is updated name by name (``synth_update: {sets: {P: {皖: 90, 苏: 3}}}`` replaces the set ``P`` and
    keeps the others); any other key replaces the one in ``synth``."""
    d = read_yaml(path, PlateFormatError)
    if isinstance(d, dict) and "synth_update" in d:
        d = dict(d)
        update = d.pop("synth_update")
        merged = _raw_format_base(path, d, seen)
        return _apply_synth_update(path, merged, update)
    return _raw_format_base(path, d, seen)


def _apply_synth_update(path: str, d: dict, update) -> dict:
    import copy

    if not isinstance(update, dict) or not update:
        raise PlateFormatError(f"{path}: 'synth_update' must be a non-empty mapping such as "
                               f"{{sets: {{P: ...}}}} or {{styles: {{name: ...}}}}, got {update!r}")
    synth = d.get("synth")
    if not isinstance(synth, dict):
        raise PlateFormatError(f"{path}: 'synth_update' needs a 'synth' section to update (in this file or "
                               f"its base); write 'synth:' instead")
    synth = copy.deepcopy(synth)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(synth.get(key), dict):
            synth[key] = {**synth[key], **copy.deepcopy(value)}
        else:
            synth[key] = copy.deepcopy(value)
    return {**d, "synth": synth}


def _raw_format_base(path: str, d, seen: tuple) -> dict:
    if not isinstance(d, dict) or "base" not in d:
        return d
    base = d["base"]
    if not isinstance(base, str):
        raise PlateFormatError(f"{path}: 'base' must be a format name or a YAML path, got {base!r}")
    if path in seen:
        raise PlateFormatError(f"{path}: 'base' cycle {' -> '.join(seen + (path,))}")
    merged = dict(_raw_format(_format_path(base, os.path.dirname(path)), seen + (path,)))
    merged.update({k: v for k, v in d.items() if k != "base"})
    return merged
