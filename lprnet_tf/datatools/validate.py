"""Check every row of a label source against a plate format, and write a cleaned copy.

A row is bad when it cannot be parsed (``malformed``), its label is empty, has a character outside
the alphabet or is longer than ``max_length`` (``label``), matches none of the format's templates
(``template``; a warning only with ``templates="warn"``, not checked with ``"off"``), its image is
missing, does not decode (or its CCPD box lies outside it) or is smaller than the minimum size
(``image``), or it repeats an image another row already lists (``duplicate``: same label;
``conflict``: another label, both rows are bad).

Every image is decoded with :func:`lprnet_tf.data.readers.load_image`, exactly as training reads it.
:func:`write_fixed` writes the good rows (labels normalized, paths relative to the new file) and a
rejects CSV with a ``reason`` for every bad row.
"""

from __future__ import annotations

import collections
import dataclasses
import os

from lprnet_tf.config import UsageError
from lprnet_tf.data.readers import DataError, RawRow, RawScan, load_image, scan_rows
from lprnet_tf.datatools.common import rel_path, same_file, write_csv
from lprnet_tf.progress import Progress
from lprnet_tf.vocab import PlateFormat

TEMPLATE_MODES = ("error", "warn", "off")
KINDS = ("malformed", "label", "template", "image", "duplicate", "conflict")


@dataclasses.dataclass
class RowCheck:
    """The verdict on one row: ``problems`` make it bad, ``warnings`` do not."""

    row: RawRow
    text: str = ""  # normalized label
    problems: list = dataclasses.field(default_factory=list)  # (kind, message)
    warnings: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def reason(self) -> str:
        return "; ".join(f"{k}: {m}" for k, m in self.problems)


@dataclasses.dataclass
class Validation:
    scan: RawScan
    fmt: PlateFormat
    checks: list  # RowCheck, in file order

    @property
    def bad(self) -> list:
        return [c for c in self.checks if not c.ok]

    @property
    def warned(self) -> list:
        return [c for c in self.checks if c.warnings]

    def counts(self) -> dict:
        """Bad rows per problem kind (a row with two kinds counts in both)."""
        c = collections.Counter(k for ch in self.checks for k in {k for k, _ in ch.problems})
        return {k: c[k] for k in KINDS if c[k]}


def _check_label(check: RowCheck, fmt: PlateFormat, templates: str) -> None:
    text = check.text
    why = fmt.check(text)
    if why:
        check.problems.append(("label", why))
        return
    if templates != "off" and not fmt.matches_template(text):
        msg = (f"label {text!r} matches none of the {len(fmt.templates)} templates of plate format '{fmt.name}'; "
               f"fix the label, add a template to the format YAML, or pass --templates=warn")
        (check.problems if templates == "error" else check.warnings).append(("template", msg))


def validate(source: str, fmt: PlateFormat, layout: str = "auto", templates: str = "error", min_height: int = 8,
             min_width: int = 16, progress: bool = True) -> Validation:
    """Check every row of ``source`` (any reader layout) against ``fmt``; see the module docstring."""
    if templates not in TEMPLATE_MODES:
        raise UsageError(f"--templates must be one of {', '.join(TEMPLATE_MODES)}, got '{templates}'")
    if min_height < 1 or min_width < 1:
        raise UsageError(f"--min_height and --min_width must be positive, got {min_height} and {min_width}")
    scan = scan_rows(source, layout)
    checks: list[RowCheck] = []
    first_use: dict = {}  # (file, box) -> RowCheck of the first row using it
    image_verdict: dict = {}  # (file, box) -> problem message or ""
    bar = Progress(len(scan.rows), "lprnet-data validate", "rows", enabled=progress)
    for row in scan.rows:
        check = RowCheck(row)
        checks.append(check)
        bar.update(1)
        if row.sample is None:
            check.problems.append(("malformed", row.problem))
            continue
        s = row.sample
        check.text = fmt.normalize(s.text)
        _check_label(check, fmt, templates)
        key = (os.path.realpath(s.path), s.box)
        if key in first_use:
            first = first_use[key]
            if first.text == check.text:
                check.problems.append(("duplicate", f"same image as {first.row.where} with the same label; "
                                                    f"keep one of the rows"))
            else:
                msg = (f"{first.row.where} labels the same image {first.text!r}, this row {check.text!r}; "
                       f"fix the wrong label and remove one row")
                check.problems.append(("conflict", msg))
                if not any(k == "conflict" for k, _ in first.problems):
                    first.problems.append(("conflict", f"{row.where} labels the same image {check.text!r}, "
                                                       f"this row {first.text!r}; fix the wrong label and "
                                                       f"remove one row"))
        else:
            first_use[key] = check
        if key not in image_verdict:
            image_verdict[key] = _check_image(s.path, s.box, min_height, min_width)
        if image_verdict[key]:
            check.problems.append(("image", image_verdict[key]))
    bar.close()
    return Validation(scan, fmt, checks)


def _check_image(path: str, box, min_height: int, min_width: int) -> str:
    if not os.path.isfile(path):
        return f"image {path} does not exist; fix the path (paths are relative to the label file)"
    try:
        img = load_image(path, box)
    except DataError as e:
        return str(e)
    h, w = img.shape[:2]
    if h < min_height or w < min_width:
        return (f"{path}: image is {w}x{h} pixels, smaller than the minimum {min_width}x{min_height} "
                f"(--min_width x --min_height); remove it or lower the limits")
    return ""


def render_report(v: Validation, max_listed: int = 20) -> str:
    """Summary, problem counts and the first ``max_listed`` bad rows (0 = all)."""
    n, bad = len(v.checks), v.bad
    lines = [f"validated {v.scan.source} ({v.scan.layout}) against plate format '{v.fmt.name}': "
             f"{n} rows, {n - len(bad)} ok, {len(bad)} bad"]
    if bad:
        lines.append("bad rows by problem: " + ", ".join(f"{k} {c}" for k, c in v.counts().items()))
        listed = bad if not max_listed else bad[:max_listed]
        for c in listed:
            lines.append(f"  {c.row.where}: {c.reason()}")
        if len(listed) < len(bad):
            lines.append(f"  ... {len(bad) - len(listed)} more (--max_listed=0 lists all, --fix_out writes them all)")
    warned = v.warned
    if warned:
        lines.append(f"warnings (rows kept): {len(warned)}, first: {warned[0].row.where}: {warned[0].warnings[0][1]}")
    return "\n".join(lines)


def default_rejects_path(fix_out: str) -> str:
    stem, _ = os.path.splitext(fix_out)
    return stem + ".rejects.csv"


def check_fixable(source: str, layout: str) -> None:
    """A cleaned CSV cannot hold CCPD boxes: refuse before the work, with the way out."""
    if layout == "ccpd":
        raise UsageError(f"{source}: the plates are boxes in CCPD file names, which a labels.csv cannot hold; "
                         f"run `lprnet-data convert` to cut them out, then validate its labels.csv with --fix_out")


def write_fixed(v: Validation, fix_out: str, rejects_out: str | None = None) -> tuple[str, str]:
    """Write the good rows to ``fix_out`` and the bad ones with their ``reason`` to ``rejects_out``
    (default ``<fix_out stem>.rejects.csv``). Labels are written normalized and image paths relative
    to the file written, so both files work from wherever they are put. Returns both paths."""
    rejects_out = rejects_out or default_rejects_path(fix_out)
    if same_file(fix_out, rejects_out) or os.path.abspath(fix_out) == os.path.abspath(rejects_out):
        raise UsageError(f"--fix_out and --rejects_out are the same file {fix_out}; give two names")
    check_fixable(v.scan.source, v.scan.layout)
    cols = list(v.scan.columns)
    good_rows, bad_rows = [], []
    fix_dir, rej_dir = os.path.dirname(os.path.abspath(fix_out)), os.path.dirname(os.path.abspath(rejects_out))
    for c in v.checks:
        fields = dict(c.row.fields)
        if c.ok:
            fields["path"] = rel_path(c.row.sample.path, fix_dir)
            fields["text"] = c.text
            good_rows.append(fields)
        else:
            src = c.row.sample.path if c.row.sample is not None else os.path.join(v.scan.root, fields.get("path", ""))
            if fields.get("path"):
                fields["path"] = rel_path(src, rej_dir)
            fields["row"], fields["reason"] = c.row.where, c.reason()
            bad_rows.append(fields)
    write_csv(fix_out, cols, good_rows)
    write_csv(rejects_out, ["row", "reason"] + cols, bad_rows)
    return fix_out, rejects_out
