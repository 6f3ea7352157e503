"""Partial re-runs of a benchmark: measure some of its sets (or rows), keep the rest from its last JSON.

A benchmark that measures only ``--sets br`` (say, after retraining the BR model) must not throw away
the CN tables it did not measure, nor claim they were measured today. Every result therefore carries
the date it was measured (``"date"``); :func:`merge_previous` puts the new results in the places of
the old ones with the same key and keeps the others, with their own date. Results written before the
date field existed get the date of the old ``.md`` file's first line.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time


def today() -> str:
    return time.strftime("%Y-%m-%d")


def run_meta(script: str, argv=None) -> dict:
    """The header of a benchmark report: today's date, this machine and the command line that made it
    (``argv`` as given to the script's ``main``, else ``sys.argv``)."""
    args = argv if argv is not None else sys.argv[1:]
    return {"date": today(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "command": " ".join([f"python benchmarks/{script}"] + list(args))}


def write_report(out: str, data, lines: list) -> None:
    """Write a benchmark's results: ``OUT.json`` (``data``) and ``OUT.md`` (``lines``), folders made as needed."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    with open(out + ".md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out}.md and .json")


def _previous_date(out: str) -> str:
    try:
        with open(out + ".md", encoding="utf-8") as f:
            m = re.search(r"\d{4}-\d{2}-\d{2}", f.readline())
        return m.group(0) if m else "unknown date"
    except OSError:
        return "unknown date"


def load_previous(out: str) -> list:
    """The results in ``out.json`` (each with a ``date``), or [] when there is none."""
    if not os.path.isfile(out + ".json"):
        return []
    with open(out + ".json", encoding="utf-8") as f:
        previous = json.load(f)
    if not isinstance(previous, list):
        raise SystemExit(f"{out}.json: expected a list of results; delete it or re-run every set")
    fallback = _previous_date(out)
    return [dict(r, date=r.get("date", fallback)) for r in previous]


def merge_previous(new: list, out: str, key: str = "set") -> list:
    """``new`` results (dated today when undated) in the order of ``out.json``, replacing the previous
    results with the same ``key``; previous results not measured now are kept as they were."""
    new = [dict(r, date=r.get("date", today())) for r in new]
    fresh = {r[key]: r for r in new}
    merged = [fresh.pop(r[key]) if r[key] in fresh else r for r in load_previous(out)]
    return merged + [r for r in new if r[key] in fresh]


def dates_line(results: list) -> str:
    """'2026-12-02' or, when the results were measured on several days, 'sets measured 2026-11-23 and
    2026-12-02 (each table names its date)'."""
    dates = sorted({r.get("date", today()) for r in results})
    if len(dates) == 1:
        return dates[0]
    return "sets measured " + ", ".join(dates[:-1]) + " and " + dates[-1] + " (each table names its date)"


def set_date(r: dict, results: list) -> str:
    """', measured DATE' for a table when the results span several days, else ''."""
    return f", measured {r['date']}" if len({x.get('date') for x in results}) > 1 else ""
