"""Dataset statistics: what a label source holds and whether its splits leak into each other.

:func:`compute_stats` returns a JSON-ready dict; :func:`render_stats` prints it. Image sizes come
from the file headers (files whose header says nothing are decoded), so a large set is summarized
in seconds; it does not prove that every image decodes (``lprnet-data validate`` does). Plates are
compared as normalized text; "identical images" are files with the same bytes (same file and box
for CCPD).
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import os

from lprnet_tf.data.readers import DataError, image_size, load_image, scan_rows
from lprnet_tf.datatools.common import normalize, one_apart, plural, require_png
from lprnet_tf.progress import Progress
from lprnet_tf.vocab import PlateFormat

HEIGHT_EDGES = (16, 24, 32, 48, 64, 96, 128)
WIDTH_EDGES = (48, 64, 96, 128, 192, 256, 384)
ASPECT_EDGES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
NO_SPLIT = "(none)"
EXAMPLES = 5
NEAR_LISTED = 20


def _split_order(name: str) -> tuple:
    known = ("train", "val", "test")
    return (known.index(name), "") if name in known else (len(known), name)


def _bucket(value: float, edges: tuple, fmt=str) -> str:
    lo = 0
    for e in edges:
        if value < e:
            return f"{fmt(lo)}-{fmt(e)}"
        lo = e
    return f">={fmt(edges[-1])}"


def _bucket_order(edges: tuple, fmt=str) -> list:
    los = (0,) + tuple(edges[:-1])
    return [f"{fmt(lo)}-{fmt(e)}" for lo, e in zip(los, edges)] + [f">={fmt(edges[-1])}"]


def _hist(values, edges, fmt=str) -> dict:
    c = collections.Counter(_bucket(v, edges, fmt) for v in values)
    return {k: c.get(k, 0) for k in _bucket_order(edges, fmt)}


def _file_digest(path: str, box) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if box is not None:
        h.update(repr(tuple(box)).encode())
    return h.hexdigest()


def compute_stats(source: str, layout: str = "auto", fmt: PlateFormat | None = None, hash_images: bool = True,
                  progress: bool = True) -> dict:
    """Counts, label lengths, characters, image sizes and split overlap of ``source`` (any layout).

    With ``fmt`` also how many labels the plate format rejects and how many match no template.
    """
    scan = scan_rows(source, layout)
    parsed = [r for r in scan.rows if r.sample is not None]
    problems = [(r.where, r.problem) for r in scan.rows if r.sample is None]
    texts = [normalize(r.sample.text, fmt) for r in parsed]
    has_group = "group" in scan.columns
    splits = [r.sample.split or NO_SPLIT for r in parsed]

    by_split: dict = {n: None for n in sorted(set(splits), key=_split_order)}
    for r, t, s in zip(parsed, texts, splits):
        d = by_split[s] = by_split[s] or {"rows": 0, "plates": set(), "groups": set()}
        d["rows"] += 1
        d["plates"].add(t)
        if r.sample.group:
            d["groups"].add(r.sample.group)

    sizes, missing, unreadable, digests, digest_of = [], [], [], {}, {}
    path_rows = collections.Counter((os.path.realpath(r.sample.path), r.sample.box) for r in parsed)
    bar = Progress(len(parsed), "lprnet-data stats", "img", enabled=progress)
    for i, r in enumerate(parsed):
        s = r.sample
        if not os.path.isfile(s.path):
            missing.append(r.where)
        else:
            try:
                sizes.append(image_size(s.path, s.box))
                if hash_images:
                    key = (os.path.realpath(s.path), s.box)
                    if key not in digest_of:
                        digest_of[key] = _file_digest(s.path, s.box)
                    digests[i] = digest_of[key]
            except (DataError, OSError) as e:
                unreadable.append(f"{r.where}: {e}")
        bar.update(1)
    bar.close()

    files_per_digest = collections.Counter(digest_of.values())  # distinct files with the same bytes

    overlap = []
    names = list(by_split)
    if len(names) > 1:
        img_sets = {n: set() for n in names}
        for i, d in digests.items():
            img_sets[splits[i]].add(d)
        pairs = one_apart(texts)
        first = {}  # text -> [path, box] of its first crop (where to look at a pair)
        for r, t in zip(parsed, texts):
            first.setdefault(t, [r.sample.path, list(r.sample.box) if r.sample.box is not None else None])
        for a, b in itertools.combinations(names, 2):
            pa, pb = by_split[a]["plates"], by_split[b]["plates"]
            plates = sorted(pa & pb)
            groups = sorted(by_split[a]["groups"] & by_split[b]["groups"])
            images = img_sets[a] & img_sets[b]
            # plates one character apart, one in each split: the same plate under a label error puts one
            # physical plate on both sides (a leak no text comparison sees) -- or a fleet's next number
            near = sorted({(x, y) if x in pa else (y, x) for x, y in pairs
                           if (x in pa and y in pb) or (x in pb and y in pa)})
            overlap.append({"splits": [a, b], "plates": len(plates), "groups": len(groups), "images": len(images),
                            "plate_examples": plates[:EXAMPLES], "group_examples": groups[:EXAMPLES],
                            "one_apart": len(near), "one_apart_pairs": [f"{x}/{y}" for x, y in near],
                            "one_apart_crops": [[first[x], first[y]] for x, y in near]})

    out = {
        "source": scan.source,
        "layout": scan.layout,
        "rows": len(scan.rows),
        "malformed_rows": len(problems),
        "malformed_examples": [f"{w}: {p}" for w, p in problems[:EXAMPLES]],
        "plates": len(set(texts)),
        "groups": len({r.sample.group for r in parsed if r.sample.group}) if has_group else None,
        "rows_per_plate_max": max(collections.Counter(texts).values(), default=0),
        "splits": {n: {"rows": d["rows"], "plates": len(d["plates"]),
                       "groups": len(d["groups"]) if has_group else None} for n, d in by_split.items()},
        "label_lengths": dict(sorted(collections.Counter(len(t) for t in texts).items())),
        "characters": dict(sorted(collections.Counter("".join(texts)).items(), key=lambda kv: (-kv[1], kv[0]))),
        "images": {
            "read": len(sizes),
            "missing": len(missing),
            "missing_examples": missing[:EXAMPLES],
            "unreadable": len(unreadable),
            "unreadable_examples": unreadable[:EXAMPLES],
            "height": _hist([h for _, h in sizes], HEIGHT_EDGES),
            "width": _hist([w for w, _ in sizes], WIDTH_EDGES),
            "aspect": _hist([w / h for w, h in sizes if h], ASPECT_EDGES, fmt=lambda v: f"{v:g}"),
            "common_sizes": [[f"{w}x{h}", n] for (w, h), n in collections.Counter(sizes).most_common(EXAMPLES)],
            "rows_listing_same_file": sum(n - 1 for n in path_rows.values() if n > 1),
            "identical_images": sum(n - 1 for n in files_per_digest.values()) if hash_images else None,
        },
        "overlap": overlap,
        "leaks": sum(1 for o in overlap if o["plates"] or o["groups"] or o["images"]),
    }
    if fmt is not None:
        bad = [(r.where, why) for r, t in zip(parsed, texts) if (why := fmt.check(t))]
        no_tpl = [t for t in texts if not fmt.check(t) and not fmt.matches_template(t)]
        out["format"] = {"name": fmt.name, "bad_labels": len(bad),
                         "bad_examples": [f"{w}: {why}" for w, why in bad[:EXAMPLES]],
                         "templates": len(fmt.templates), "no_template_match": len(no_tpl),
                         "no_template_examples": sorted(set(no_tpl))[:EXAMPLES]}
    return out


def pairs_sheet(st: dict, out: str) -> int:
    """Write a PNG with the plate pairs one character apart across splits (``st``: :func:`compute_stats`)
    side by side, the first crop of each text labelled with its text and split, so they can be checked by
    eye; returns the pairs drawn (0: nothing written)."""
    from lprnet_tf.synth.contact import save_contact_sheet

    require_png(out, "--pairs_sheet", "sheet")
    images, labels = [], []
    for o in st["overlap"]:
        for pair, crops in zip(o["one_apart_pairs"], o["one_apart_crops"]):
            for text, split, (path, box) in zip(pair.split("/"), o["splits"], crops):
                try:
                    images.append(load_image(path, tuple(box) if box is not None else None))
                except (DataError, OSError) as e:
                    raise DataError(f"--pairs_sheet: cannot read {path} ({e})") from None
                labels.append(f"{text} ({split})\n{os.path.basename(path)}")
    if not images:
        return 0
    try:
        save_contact_sheet(out, images, labels, cols=2, cell_hw=(64, 200))
    except OSError as e:
        raise DataError(f"--pairs_sheet {out}: cannot write ({e}); check the folder") from None
    return len(images) // 2


def _bars(hist: dict, total: int, width: int = 30) -> list:
    """One bar per bucket, leading and trailing empty buckets left out."""
    items = list(hist.items())
    used = [i for i, (_, n) in enumerate(items) if n]
    if used:
        items = items[used[0]:used[-1] + 1]
    out = []
    for k, n in items:
        bar = "#" * (round(width * n / total) if total else 0)
        out.append(f"    {k:>9} {n:7d} {100.0 * n / max(total, 1):5.1f}% {bar}".rstrip())
    return out


def render_stats(st: dict, max_chars: int = 0) -> str:
    """Human-readable report of :func:`compute_stats` (``max_chars``: characters listed, 0 = all)."""
    n = st["rows"]
    lines = [f"data: {st['source']} ({st['layout']})"]
    head = f"rows: {n}   plates (distinct texts): {st['plates']}"
    if st["groups"] is not None:
        head += f"   groups: {st['groups']}"
    lines.append(head + f"   most rows of one plate: {st['rows_per_plate_max']}")
    if st["malformed_rows"]:
        lines.append(f"malformed rows: {st['malformed_rows']} (first: {st['malformed_examples'][0]})")
    lines.append("splits:")
    for name, d in st["splits"].items():
        g = f", {d['groups']} groups" if d["groups"] is not None else ""
        lines.append(f"    {name:>9} {d['rows']:7d} rows {100.0 * d['rows'] / max(n, 1):5.1f}%, {d['plates']} plates{g}")
    parsed = sum(d["rows"] for d in st["splits"].values())
    lines.append("label length:")
    lines += _bars({str(k): v for k, v in st["label_lengths"].items()}, parsed)
    chars = list(st["characters"].items())
    shown = chars if not max_chars else chars[:max_chars]
    lines.append(f"characters ({len(chars)} distinct, most frequent first):")
    for i in range(0, len(shown), 10):
        lines.append("    " + "  ".join(f"{c} {k}" for c, k in shown[i:i + 10]))
    if len(shown) < len(chars):
        lines.append(f"    ... {len(chars) - len(shown)} more (--max_chars=0 lists all)")
    im = st["images"]
    lines.append(f"images: {im['read']} sized (from headers)"
                 + (f", {im['missing']} MISSING (first: {im['missing_examples'][0]})" if im["missing"] else "")
                 + (f", {im['unreadable']} UNREADABLE (first: {im['unreadable_examples'][0]})" if im["unreadable"] else ""))
    if im["read"]:
        lines.append("  height (px):")
        lines += _bars(im["height"], im["read"])
        lines.append("  width (px):")
        lines += _bars(im["width"], im["read"])
        lines.append("  aspect (width/height):")
        lines += _bars(im["aspect"], im["read"])
        lines.append("  most common sizes (WxH): " + ", ".join(f"{s} ({k})" for s, k in im["common_sizes"]))
    if im["rows_listing_same_file"]:
        lines.append(f"  {plural(im['rows_listing_same_file'], 'row')} list a file already listed by another row")
    if im["identical_images"]:
        lines.append(f"  {plural(im['identical_images'], 'image file')} with the same bytes as another file")
    if not st["overlap"]:
        only = next(iter(st["splits"]), NO_SPLIT)
        lines.append(f"overlap between splits: none to check (one split: {only})")
    else:
        lines.append("overlap between splits (same plate text / group / identical image file):")
        for o in st["overlap"]:
            a, b = o["splits"]
            leak = o["plates"] or o["groups"] or o["images"]
            s = f"    {a} / {b}: {o['plates']} plates, {o['groups']} groups, {o['images']} images"
            if leak:
                ex = o["plate_examples"] or o["group_examples"]
                s += "   DUPLICATES ACROSS SPLITS" + (f" (e.g. {', '.join(ex)})" if ex else "")
            else:
                s += "   ok"
            lines.append(s)
        if st["leaks"]:
            lines.append("  the same plate in two splits inflates validation scores; re-split with "
                         "`lprnet-data split` (keeps each plate and group on one side)")
        near = [o for o in st["overlap"] if o.get("one_apart")]
        for o in near:
            a, b = o["splits"]
            shown = o["one_apart_pairs"][:NEAR_LISTED]
            more = len(o["one_apart_pairs"]) - len(shown)
            lines.append(f"    {a} / {b}: {plural(o['one_apart'], 'plate pair')} one character apart: "
                         + ", ".join(shown) + (f" ... {more} more (--json lists all)" if more else ""))
        if near:
            lines.append("  a pair one character apart is two plates of a series or one plate under a label error "
                         "(then it sits on both sides); look at the images (`lprnet-data show`) and fix the label, "
                         "or re-split with `lprnet-data split --by near` (keeps such pairs on one side)")
    if "format" in st:
        f = st["format"]
        s = f"plate format '{f['name']}': {f['bad_labels']} labels outside its alphabet/max_length"
        if f["bad_examples"]:
            s += f" (first: {f['bad_examples'][0]})"
        if f["templates"]:
            s += f"; {f['no_template_match']} match none of its {f['templates']} templates"
            if f["no_template_examples"]:
                s += f" (e.g. {', '.join(f['no_template_examples'])})"
        lines.append(s)
    return "\n".join(lines)
