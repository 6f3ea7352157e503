"""A small progress bar with rate and ETA (stderr; redrawn in place on a terminal; otherwise one line
every 10% and at least every ``log_every`` seconds, so logs of long runs stay short but alive)."""

from __future__ import annotations

import sys
import time


def _fmt_time(s: float) -> str:
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class Progress:
    def __init__(self, total: int, desc: str = "", unit: str = "it", start: int = 0, stream=None, enabled=True,
                 log_every: float = 60.0):
        self.total, self.desc, self.unit = max(int(total), 1), desc, unit
        self.n = self.start = int(start)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.time()
        self._last_print = 0.0
        self._last_decile = -1
        self.extra = ""
        self.log_every = log_every  # seconds between lines when not on a terminal

    def rate(self) -> float:
        dt = time.time() - self.t0
        return (self.n - self.start) / dt if dt > 0 else 0.0

    def update(self, k: int = 1, extra: str | None = None):
        self.n += k
        if extra is not None:
            self.extra = extra
        if not self.enabled:
            return
        now = time.time()
        decile = int(10 * self.n / self.total)
        if self.tty and (now - self._last_print > 0.2 or self.n >= self.total):
            self._print("\r", "")
            self._last_print = now
        elif not self.tty and (decile != self._last_decile or now - self._last_print > self.log_every):
            self._last_decile = decile
            self._last_print = now
            self._print("", "\n")

    def _print(self, pre: str, end: str):
        r = self.rate()
        eta = (self.total - self.n) / r if r > 0 else 0
        pct = 100.0 * self.n / self.total
        bar = "#" * int(pct / 5) + "-" * (20 - int(pct / 5))
        self.stream.write(f"{pre}{self.desc} [{bar}] {self.n}/{self.total} {pct:5.1f}% "
                          f"{r:.1f} {self.unit}/s ETA {_fmt_time(eta)} {self.extra}{end}")
        self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
