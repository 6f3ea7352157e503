"""CTC decoding on the host with numpy only (``lprnet.md`` §3.1 "greedy search and beam search",
"post-filtering"). The models output logits; nothing here imports TensorFlow, so the runtime for
TFLite uses the same code.

- ``greedy``: arg-max per step, collapse repeats, drop blanks (class 0).
- ``beam``: CTC prefix beam search, the most probable label sequence.
- ``template``: beam search, then the first of the top-N beams matching one of the plate format's
  templates (the paper's post-filter); the best beam if none matches.

Every decoder returns ``(text, confidence)`` per sample. Greedy confidence is the smallest of the
emitted characters' max probabilities; beam confidence is the share of the total beam mass held by
the returned sequence.

:func:`vote` combines the readings of several views of the same crops (test-time views,
:func:`lprnet_tf.runtime.tta_view`): per crop the text most views read; :func:`decode_views` decodes
the views and votes.

Slot models (``kind="slot"``, ``multitask-lowres-lpr.md``: logits ``(B, S, C)``, one class per character
slot, class 0 = no character) decode with :func:`slot_decode`: arg-max per slot, pad slots dropped;
confidence = the smallest max probability over all slots (pad decisions included).

A :class:`LocalPrior` (``beam`` and ``template`` only) re-ranks the beams for the traffic a camera sees: most
plates on a city's roads carry the local province, and a model trained on a country-wide mix does not know
that. Each beam's log probability gets ``log(share / base)`` when its text starts with the local prefix and
``log((1 - share) / (1 - base))`` when not (Bayes' rule for a change of prior: ``share`` is the expected
fraction of local plates at the site, ``base`` that fraction in the training data). The term enters the search
where a prefix reaches the local prefix's length (so the pruning sees it; a beam that ends shorter gets it at
the end); the template filter and the confidence then use the re-ranked beams.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import numpy as np

from lprnet_tf.vocab import PlateFormat

DECODERS = ("greedy", "beam", "template")
BASE_DRAWS = 20000  # synthetic texts drawn to estimate a LocalPrior's training share


class PriorError(ValueError):
    """A local prior that cannot be built or used (bad prefix, share, base or decoder)."""


@dataclasses.dataclass(frozen=True)
class LocalPrior:
    """Expected share of plates starting with ``prefix`` where the model is deployed (``share``) against
    their share in its training data (``base``); both strictly between 0 and 1."""

    prefix: str
    share: float
    base: float

    def __post_init__(self):
        if not self.prefix:
            raise PriorError("local prior: the prefix is empty; give the local province (e.g. 皖) or prefix")
        for name in ("share", "base"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 < v < 1.0):
                raise PriorError(f"local prior: {name} must be a fraction strictly between 0 and 1, got {v!r}")

    def bonus(self, text: str) -> float:
        """Log prior ratio added to a beam reading ``text``."""
        if text.startswith(self.prefix):
            return math.log(self.share / self.base)
        return math.log((1.0 - self.share) / (1.0 - self.base))

    def to_dict(self) -> dict:
        return {"prefix": self.prefix, "share": self.share, "base": round(self.base, 4)}


@functools.lru_cache(maxsize=8)
def _texts_of(fmt: PlateFormat, synth_key: str) -> tuple:
    from lprnet_tf.synth.render import random_text

    rng = np.random.default_rng(0)
    return tuple(random_text(fmt, rng)[0] for _ in range(BASE_DRAWS))


def _draw_texts(fmt: PlateFormat, what: str) -> tuple:
    """:data:`BASE_DRAWS` synthetic texts of ``fmt`` (its ``synth:`` generator, fixed seed; cached per format);
    a PriorError naming ``what`` when the format has no generator."""
    from lprnet_tf.vocab import PlateFormatError

    try:  # cached by content: formats differing only in ``synth`` compare equal, so its text is part of the key
        return _texts_of(fmt, json.dumps(fmt.synth, sort_keys=True, default=str, ensure_ascii=False))
    except PlateFormatError as e:
        raise PriorError(f"local prior: cannot draw the synthetic plates of '{fmt.name}' to find {what} ({e}); "
                         f"give the base share yourself (--local_base)") from e


def training_share(fmt: PlateFormat, prefix: str) -> float:
    """Fraction of :data:`BASE_DRAWS` synthetic texts of ``fmt`` that start with ``prefix``: a LocalPrior's
    ``base`` for a model trained on that generator."""
    texts = _draw_texts(fmt, f"how often {prefix!r} starts a training plate")
    return sum(t.startswith(prefix) for t in texts) / len(texts)


def first_char_shares(fmt: PlateFormat) -> dict:
    """{character: fraction of the synthetic training texts of ``fmt`` starting with it} (the same draws as
    :func:`training_share`, which it equals for one-character prefixes); written into the TFLite / ONNX
    sidecar so a device can build a LocalPrior without the generator."""
    texts = _draw_texts(fmt, "the shares of first characters")
    counts: dict = {}
    for t in texts:
        if t:
            counts[t[0]] = counts.get(t[0], 0) + 1
    return {c: round(n / len(texts), 5) for c, n in sorted(counts.items(), key=lambda kv: -kv[1])}


def local_prior(fmt: PlateFormat, prefix: str, share: float = 0.5, base: float | None = None,
                shares: dict | None = None) -> LocalPrior:
    """A checked :class:`LocalPrior` for ``fmt``: ``prefix`` must be made of the format's characters;
    ``base`` defaults to ``shares[prefix]`` for a one-character prefix when ``shares`` (a sidecar's
    ``first_char_shares``) is given, else to :func:`training_share` (the format's synthetic generator)."""
    bad = sorted({c for c in prefix if c not in fmt.alphabet})
    if bad:
        raise PriorError(f"local prior: {bad} of prefix {prefix!r} not in the alphabet of plate format "
                         f"'{fmt.name}'")
    if base is None:
        if shares is not None and len(prefix) == 1:
            base = float(shares.get(prefix, 0.0))
        else:
            base = training_share(fmt, prefix)
        if base == 0.0:
            raise PriorError(f"local prior: the synthetic generator of '{fmt.name}' never starts a plate with "
                             f"{prefix!r} (0 of {BASE_DRAWS} texts), so the model's training share is unknown; "
                             f"check the prefix or give the base share yourself (--local_base)")
        base = min(base, 1.0 - 1.0 / BASE_DRAWS)
    return LocalPrior(prefix, float(share), float(base))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float32)
    m = logits.max(axis=-1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))


def greedy_ids(logits: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """Batch greedy decode of ``(B, T, C)`` logits -> (id lists, confidence (B,))."""
    logp = log_softmax(logits)
    best = logp.argmax(-1)  # (B, T)
    bestp = np.exp(logp.max(-1))  # (B, T)
    out, conf = [], np.zeros(len(best), np.float32)
    for b, (path, probs) in enumerate(zip(best, bestp)):
        ids, ps, prev = [], [], 0
        for t, k in enumerate(path):
            if k != 0 and k != prev:
                ids.append(int(k))
                ps.append(probs[t])
            elif k != 0 and k == prev:
                ps[-1] = max(ps[-1], probs[t])
            prev = k
        out.append(ids)
        conf[b] = min(ps) if ps else 0.0
    return out, conf


def _logadd(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def beam_search(logp: np.ndarray, beam_width: int = 10, prune: float = -12.0, bonus=None,
                bonus_at: int = 0) -> list[tuple[tuple, float]]:
    """CTC prefix beam search on one ``(T, C)`` log-probability matrix.

    Returns up to ``beam_width`` (label id tuple, log probability) pairs, best first. Classes whose
    log-probability at a step is below ``prune`` are not extended (they cannot matter).
    ``bonus(ids) -> float`` (a :class:`LocalPrior` on label ids): added once to every prefix when it reaches
    ``bonus_at`` labels, and at the end to the shorter ones, so that the pruning already sees the prior.
    """
    beams = {(): (0.0, -math.inf)}  # prefix -> (log p ending in blank, log p ending in non-blank)
    for t in range(logp.shape[0]):
        row = logp[t]
        cand = np.nonzero(row > prune)[0]
        nxt: dict[tuple, list] = {}

        def add(prefix, pb, pnb):
            cur = nxt.get(prefix)
            if cur is None:
                nxt[prefix] = [pb, pnb]
            else:
                cur[0] = _logadd(cur[0], pb)
                cur[1] = _logadd(cur[1], pnb)

        for prefix, (pb, pnb) in beams.items():
            total = _logadd(pb, pnb)
            last = prefix[-1] if prefix else None
            for k in cand:
                p = float(row[k])
                if k == 0:
                    add(prefix, total + p, -math.inf)
                    continue
                new = prefix + (int(k),)
                p_new = p + bonus(new) if bonus is not None and len(new) == bonus_at else p  # a new character
                if k == last:
                    add(prefix, -math.inf, pnb + p)  # repeat without blank: same prefix
                    add(new, -math.inf, pb + p_new)  # blank in between: a new char
                else:
                    add(new, -math.inf, total + p_new)
        ranked = sorted(nxt.items(), key=lambda kv: _logadd(*kv[1]), reverse=True)[:beam_width]
        beams = {k: tuple(v) for k, v in ranked}
    scored = [(k, _logadd(*v) + (bonus(k) if bonus is not None and len(k) < bonus_at else 0.0))
              for k, v in beams.items()]
    return sorted(scored, key=lambda kv: kv[1], reverse=True)


def slot_decode(logits: np.ndarray, fmt: PlateFormat) -> tuple[list[str], np.ndarray]:
    """Slot logits ``(B, S, C)`` -> (texts, confidences): arg-max per slot, pad class 0 dropped."""
    logp = log_softmax(logits)
    best = np.asarray(logits).argmax(-1)  # (B, S) on the logits, as the in-graph decode (log-softmax rounding
    # can flip a near tie)
    conf = np.exp(logp.max(-1)).min(-1) if logp.shape[1] else np.zeros(len(logp))  # (B,)
    return [fmt.decode(row) for row in best], conf.astype(np.float32)


def attention_decode(logits: np.ndarray, fmt: PlateFormat) -> tuple[list[str], np.ndarray]:
    """Attention-decoder logits ``(B, S, C)`` (class 0 = end of plate) -> (texts, confidences).

    The decoder fed its own arg-max back at every step (greedy), so its output is read off the same
    way: arg-max per step up to the first end class, at most ``fmt.max_length`` characters (a decoder
    that never chose the end class is cut there). Confidence: the probability of the read sequence,
    end class included (the product of the chosen steps' probabilities and of the end class at the
    step after the last character, where the logits have that step)."""
    logp = log_softmax(logits)
    best = logp.argmax(-1)  # (B, S)
    s = best.shape[1]
    texts, conf = [], np.zeros(len(logp), np.float32)
    for b in range(len(logp)):
        ends = np.flatnonzero(best[b] == 0)
        n = min(int(ends[0]) if len(ends) else s, fmt.max_length)  # characters read
        texts.append(fmt.decode(best[b, :n]))
        lp = float(logp[b, np.arange(n), best[b, :n]].sum())
        if n < s:
            lp += float(logp[b, n, 0])  # the end of the plate
        conf[b] = math.exp(lp)
    return texts, conf


def decode(logits: np.ndarray, fmt: PlateFormat, method: str = "greedy", beam_width: int = 10,
           top_n: int | None = None, kind: str = "ctc",
           prior: LocalPrior | None = None) -> tuple[list[str], np.ndarray]:
    """Decode ``(B, T, C)`` logits with ``method`` -> (texts, confidences).

    ``kind="slot"``: slot logits ``(B, S, C)``, decoded by :func:`slot_decode` (only ``greedy``);
    ``kind="attn"``: attention-decoder logits, :func:`attention_decode` (only ``greedy``).
    ``prior``: re-rank the beams (:class:`LocalPrior`; ``beam`` and ``template`` of CTC models only).
    """
    if method not in DECODERS:
        raise ValueError(f"unknown decoder '{method}'; choose one of {DECODERS}")
    if prior is not None and (method == "greedy" or kind != "ctc"):
        raise PriorError(f"a local prior re-ranks the candidates of the beam search: use the beam or template "
                         f"decoder on a CTC model (got decoder {method!r}, model output {kind!r})")
    logits = np.asarray(logits)
    if logits.ndim != 3 or logits.shape[-1] != fmt.num_classes:
        raise ValueError(f"expected logits (B, T, {fmt.num_classes}) for plate format '{fmt.name}', "
                         f"got {logits.shape}; is the model trained for this format?")
    if kind == "slot":
        if method != "greedy":
            raise ValueError(f"decoder '{method}' is for CTC models; a slot model decodes by arg-max per slot "
                             f"(decoder greedy)")
        return slot_decode(logits, fmt)
    if kind == "attn":
        if method != "greedy":
            raise ValueError(f"decoder '{method}' is for CTC models; an attention decoder reads its own greedy "
                             f"steps (decoder greedy)")
        return attention_decode(logits, fmt)
    if kind != "ctc":
        raise ValueError(f"cannot decode the output of a {kind!r} model as plate text")
    if method == "greedy":
        ids, conf = greedy_ids(logits)
        return [fmt.decode(i) for i in ids], conf
    logp = log_softmax(logits)
    texts, conf = [], np.zeros(len(logp), np.float32)
    for b in range(len(logp)):
        if prior is None:
            beams = beam_search(logp[b], beam_width=beam_width)
        else:  # the prior enters the search where a prefix reaches the local prefix's length
            beams = beam_search(logp[b], beam_width=beam_width, bonus=lambda ids: prior.bonus(fmt.decode(ids)),
                                bonus_at=len(prior.prefix))
        total = -math.inf
        for _, lp in beams:
            total = _logadd(total, lp)
        chosen = beams[0]
        if method == "template":
            for cand in beams[: top_n or beam_width]:
                if fmt.matches_template(fmt.decode(cand[0])):
                    chosen = cand
                    break
        texts.append(fmt.decode(chosen[0]))
        conf[b] = math.exp(chosen[1] - total) if beams else 0.0
    return texts, conf


def decode_views(logits, fmt: PlateFormat, method: str = "greedy", beam_width: int = 10,
                 kind: str = "ctc", prior: LocalPrior | None = None) -> tuple[list[str], np.ndarray]:
    """:func:`decode` one ``(B, T, C)`` array, or each array of a list (the test-time views of the same
    crops, :func:`lprnet_tf.runtime.tta_view`) and :func:`vote` over them -> (texts, confidences)."""
    views = list(logits) if isinstance(logits, (list, tuple)) else [logits]
    return vote([decode(v, fmt, method, beam_width, kind=kind, prior=prior) for v in views])


def vote(readings) -> tuple[list[str], np.ndarray]:
    """Combine the readings of V views of the same N crops: a list of V ``(texts, confidences)`` pairs, as
    :func:`decode` returns them -> ``(texts, confidences)``. Per crop the text read by the most views wins;
    a tie goes to the higher summed confidence, then to the earlier view. Its confidence is the sum of
    the confidences of the views that read it, divided by V (so views that disagree lower it). One
    reading is returned unchanged."""
    readings = list(readings)
    if not readings:
        raise ValueError("vote needs at least one reading")
    if len(readings) == 1:
        return list(readings[0][0]), np.asarray(readings[0][1], np.float32)
    n = len(readings[0][0])
    if any(len(t) != n or len(c) != n for t, c in readings):
        raise ValueError(f"vote: every reading must cover the same {n} crops, got "
                         f"{[len(t) for t, _ in readings]} texts")
    texts, conf = [], np.zeros(n, np.float32)
    for i in range(n):
        count, mass, first = {}, {}, {}
        for v, (t, c) in enumerate(readings):
            count[t[i]] = count.get(t[i], 0) + 1
            mass[t[i]] = mass.get(t[i], 0.0) + float(c[i])
            first.setdefault(t[i], v)
        best = max(count, key=lambda s: (count[s], mass[s], -first[s]))
        texts.append(best)
        conf[i] = mass[best] / len(readings)
    return texts, conf
