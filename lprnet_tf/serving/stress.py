"""Load and fuzz drivers for ``lprnet-serve`` (loopback only, bounded in time or count).

Used by ``benchmarks/serving_load.py`` (figures in ``benchmarks/results/serving_load.md``) and
``tests/test_serving_fuzz.py``. No TensorFlow here: the drivers talk HTTP to a running server.

- :func:`run_load`: ``concurrency`` threads, each on its own keep-alive connection, POST one
  predict request after another for ``seconds``; latency percentiles, throughput, status classes.
- :func:`run_fuzz`: malformed requests from :data:`FUZZ_CASES` (bad JSON, wrong types, bad base64,
  non-images, truncated/corrupt/huge-header images, oversized bodies and batches, lying or missing
  Content-Length, stalled bodies, wrong methods and URLs, broken request lines and headers, random
  bytes) sent over raw sockets, round-robin over the cases with seeded random parameters, plus a
  valid control request every ``control_every`` requests. Every answer is classified as 2xx / 4xx /
  5xx / ``no_status`` (the server closed without a status line) / ``timeout`` (no answer within the
  client timeout: a hang) / ``error`` (the client could not send or read).
"""

from __future__ import annotations

import base64
import json
import random
import socket
import struct
import threading
import time
import zlib

import numpy as np

CLASSES = ("2xx", "4xx", "5xx", "no_status", "timeout", "error")


# ------------------------------------------------------------------------------------------------
# helpers
def plate_jpegs(fmt, count: int = 8, seed: int = 2024) -> list[tuple[bytes, str]]:
    """``count`` rendered synthetic plates of ``fmt`` as (JPEG bytes, text)."""
    import cv2

    from lprnet_tf.synth.render import sample

    out = []
    for i in range(count):
        img, text, _ = sample(fmt, seed, i)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append((buf.tobytes(), text))
    return out


def server_rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB (psutil if installed, else /proc), None if unknown."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / (1 << 20)
    except ImportError:
        pass
    except Exception:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def percentiles(latencies_s: list[float]) -> dict:
    if not latencies_s:
        return {"p50_ms": float("nan"), "p90_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    a = np.asarray(latencies_s) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def status_class(status: int | None) -> str:
    if status is None:
        return "no_status"
    return f"{status // 100}xx" if 200 <= status < 600 else "no_status"


def predict_body(jpegs: list[bytes], signature: str | None = None) -> bytes:
    body = {"instances": [{"b64": base64.b64encode(j).decode("ascii")} for j in jpegs]}
    if signature:
        body["signature_name"] = signature
    return json.dumps(body).encode("utf-8")


def http_request(method: str, path: str, body: bytes = b"", headers: dict | None = None,
                 content_length: int | str | None = "auto") -> bytes:
    """Raw HTTP/1.1 request bytes; ``content_length=None`` leaves the header out."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if content_length == "auto":
        content_length = len(body) if (body or method == "POST") else None
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    if body:
        lines.append("Content-Type: application/json")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def send_raw(host: str, port: int, data: bytes, timeout: float = 20.0, half_close: bool = True,
             stall_after: int | None = None) -> tuple[int | None, bytes, str | None]:
    """Send ``data`` on a fresh connection and read the answer -> (status or None, body, error).

    ``half_close``: shut down our sending side after the data (the server sees end of input).
    ``stall_after``: send only that many bytes, then keep the connection open and silent.
    Error is ``"timeout"`` when nothing complete came back within ``timeout``.
    """
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        return None, b"", f"connect: {e}"
    s.settimeout(timeout)
    buf = b""
    err = None
    try:
        try:
            s.sendall(data if stall_after is None else data[:stall_after])
            if half_close and stall_after is None:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early; its answer may still be readable
        while True:
            try:
                chunk = s.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
            status, body, complete = _parse_response(buf)
            if complete:
                return status, body, None
    except socket.timeout:
        err = "timeout"
    except OSError as e:
        err = f"{type(e).__name__}: {e}"
    finally:
        s.close()
    status, body, _ = _parse_response(buf)
    return status, body, err


def _parse_response(buf: bytes) -> tuple[int | None, bytes, bool]:
    end = buf.find(b"\r\n\r\n")
    if not buf.startswith(b"HTTP/") or end < 0:
        return None, buf, False
    head = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split()[1])
    except (IndexError, ValueError):
        return None, buf, False
    n = None
    for line in head[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            try:
                n = int(v.strip())
            except ValueError:
                pass
    body = buf[end + 4:]
    return status, body, n is not None and len(body) >= n


# ------------------------------------------------------------------------------------------------
# load
def _run_clients(fn, concurrency: int) -> float:
    """Run ``fn(i)`` in ``concurrency`` threads until all return; the wall-clock seconds taken."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=fn, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def run_load(host: str, port: int, model: str, jpegs: list[bytes], concurrency: int, seconds: float,
             batch: int = 1, timeout: float = 60.0, rss_pid: int | None = None) -> dict:
    """``concurrency`` keep-alive clients POST predict requests of ``batch`` plates for ``seconds``."""
    import http.client

    path = f"/v1/models/{model}:predict"
    bodies = [predict_body([jpegs[(i + k) % len(jpegs)] for k in range(batch)]) for i in range(len(jpegs))]
    lat, counts, lock = [], dict.fromkeys(CLASSES, 0), threading.Lock()
    bad_answers, errors = [], []
    deadline = time.perf_counter() + seconds

    def client(i):
        conn, j = None, i
        my_lat, my_counts = [], dict.fromkeys(CLASSES, 0)
        while time.perf_counter() < deadline:
            body = bodies[j % len(bodies)]
            j += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                t0 = time.perf_counter()
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                dt = time.perf_counter() - t0
                cls = status_class(r.status)
                my_counts[cls] += 1
                if r.status == 200:
                    my_lat.append(dt)
                    preds = json.loads(data).get("predictions", [])
                    if len(preds) != batch or not all(isinstance(p.get("plate"), str) for p in preds):
                        with lock:
                            bad_answers.append(data[:200])
                if r.will_close:
                    conn.close()
                    conn = None
            except socket.timeout:
                my_counts["timeout"] += 1
                conn = _close(conn)
            except (OSError, http.client.HTTPException) as e:
                my_counts["error"] += 1
                with lock:
                    if len(errors) < 10:
                        errors.append(f"{type(e).__name__}: {e}")
                conn = _close(conn)
        _close(conn)
        with lock:
            lat.extend(my_lat)
            for k, v in my_counts.items():
                counts[k] += v

    rss0 = server_rss_mb(rss_pid) if rss_pid else None
    wall = _run_clients(client, concurrency)
    rss1 = server_rss_mb(rss_pid) if rss_pid else None
    n = sum(counts.values())
    return {"concurrency": concurrency, "batch": batch, "seconds": wall, "requests": n, "ok": len(lat),
            "requests_per_s": n / wall, "plates_per_s": len(lat) * batch / wall, **percentiles(lat),
            **counts, "bad_answers": len(bad_answers), "error_examples": errors, "rss_start_mb": rss0,
            "rss_end_mb": rss1}


def _close(conn):
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass
    return None


# ------------------------------------------------------------------------------------------------
# fuzz cases: each returns {"data": bytes, "half_close": bool, "stall_after": int | None}
class FuzzContext:
    def __init__(self, model: str, jpegs: list[bytes], max_body_bytes: int, max_batch: int, image_hw: tuple):
        self.model, self.jpegs = model, jpegs
        self.max_body_bytes, self.max_batch, self.image_hw = max_body_bytes, max_batch, image_hw
        self.path = f"/v1/models/{model}:predict"
        import cv2

        img = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
        self.png = cv2.imencode(".png", img)[1].tobytes()


def _req(ctx, body: bytes, **kw) -> dict:
    return {"data": http_request("POST", ctx.path, body, **kw)}


def _b64_body(ctx, blob: bytes) -> bytes:
    return json.dumps({"instances": [{"b64": base64.b64encode(blob).decode("ascii")}]}).encode()


def _random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2 ** 64, 1e308, -0.0, rng.randint(-10 ** 6, 10 ** 6)])
    if kind == 3:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(0, 30)))
    if kind == 4:
        return rng.choice(["b64", "instances", "inputs", "image_bytes", "serving_default", "predict_images"])
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    keys = ["b64", "instances", "inputs", "signature_name", "image_bytes", "images", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def _flip(rng: random.Random, data: bytes, start: int = 0, n: int | None = None) -> bytes:
    b = bytearray(data)
    for _ in range(n or rng.randint(1, 16)):
        i = rng.randrange(min(start, len(b) - 1), len(b))
        b[i] = rng.randrange(256)
    return bytes(b)


def _jpeg_with_size(jpeg: bytes, w: int, h: int) -> bytes:
    b = bytearray(jpeg)
    i = 2
    while i + 9 < len(b):
        if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC1, 0xC2):
            b[i + 5:i + 7] = h.to_bytes(2, "big")
            b[i + 7:i + 9] = w.to_bytes(2, "big")
            return bytes(b)
        i += 2 + int.from_bytes(b[i + 2:i + 4], "big") if b[i] == 0xFF else 1
    return bytes(b)


def _png_header(w: int, h: int, extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    out = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return out + extra


def case_json_truncated(rng, ctx):
    body = predict_body([rng.choice(ctx.jpegs)])
    return _req(ctx, body[: rng.randrange(0, len(body))])


def case_json_bitflip(rng, ctx):
    return _req(ctx, _flip(rng, predict_body([rng.choice(ctx.jpegs)])))


def case_json_deep(rng, ctx):
    k = rng.choice([2000, 20000, 200000])
    body = rng.choice([b"[" * k, b'{"instances": ' + b"[" * k + b"]" * k + b"}", b'{"a":' * k + b"1" + b"}" * k])
    return _req(ctx, body[: ctx.max_body_bytes])


def case_json_huge_number(rng, ctx):
    digits = rng.choice([5000, 50000])
    num = rng.choice(["1" * digits, "-" + "9" * digits, "1e" + "9" * 20, "0." + "0" * digits + "1"])
    return _req(ctx, ('{"instances": [' + num + "]}").encode())


def case_json_constants(rng, ctx):
    c = rng.choice(["NaN", "Infinity", "-Infinity"])
    h, w = ctx.image_hw
    body = rng.choice([f'{{"instances": [{c}]}}',
                       f'{{"signature_name": "predict_images", "instances": [[[[{c}, 0, 0]]]]}}',
                       json.dumps({"signature_name": "predict_images",
                                   "instances": [np.zeros((h, w, 3)).tolist()]}).replace("0.0", c, 1)])
    return _req(ctx, body.encode())


def case_json_wrong_types(rng, ctx):
    b64 = base64.b64encode(rng.choice(ctx.jpegs)).decode()
    bodies = [None, 1, "text", [], [{"b64": b64}], {"instances": "x"}, {"instances": {}}, {"instances": [None]},
              {"instances": [{"b64": 1}]}, {"instances": [{"b64": [b64]}]}, {"instances": [{"b64": None}]},
              {"signature_name": [1], "instances": [{"b64": b64}]}, {"signature_name": {"a": 1}, "instances": [1]},
              {"signature_name": None, "instances": [{"b64": b64}]}, {"inputs": {"wrong": []}}, {"inputs": 5},
              {"inputs": {"image_bytes": "x"}}, {"instances": [{"b64": b64}], "inputs": [{"b64": b64}]},
              {"instances": [{"image_bytes": {"b64": 5}}]}, {"instances": [{"b64": b64, "extra": 1}]},
              {"instances": [[{"b64": b64}]]}, {"instances": [{"image_bytes": [{"b64": b64}]}]},
              _random_json(rng), _random_json(rng)]
    return _req(ctx, json.dumps(rng.choice(bodies)).encode())


def case_body_not_utf8(rng, ctx):
    return _req(ctx, rng.choice([b"\xff\xfe\x00{", b'{"instances": ["\xc3\x28"]}', bytes(rng.randrange(128, 256)
                                                                                     for _ in range(64))]))


def case_b64_invalid(rng, ctx):
    good = base64.b64encode(rng.choice(ctx.jpegs)).decode()
    i = rng.randrange(len(good))
    bad = rng.choice([good[:-1], good + "A", "@@@" + good, good[:i] + "*" + good[i:], "====", "é" + good,
                      good[:i] + " " + good[i:], "", "\x00" * 8, good.rstrip("=") + "==="])
    return _req(ctx, json.dumps({"instances": [{"b64": bad}]}).encode())


def case_b64_not_an_image(rng, ctx):
    blob = rng.choice([bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2048))), b"hello world",
                       b"GIF89a" + bytes(64), b"BM" + bytes(64), b"\x00", b"\xff\xd8", b"\x89PNG\r\n\x1a\n",
                       b"RIFF\x00\x00\x00\x00WEBPVP8 "])
    return _req(ctx, _b64_body(ctx, blob))


def case_jpeg_truncated(rng, ctx):
    j = rng.choice(ctx.jpegs)
    return _req(ctx, _b64_body(ctx, j[: rng.randrange(2, len(j) - 1)]))


def case_jpeg_corrupt(rng, ctx):
    j = rng.choice(ctx.jpegs)
    return _req(ctx, _b64_body(ctx, _flip(rng, j, start=rng.choice([2, 200, len(j) // 2]), n=rng.randint(1, 64))))


def case_jpeg_huge_header(rng, ctx):
    w, h = rng.choice([(65535, 65535), (0, 0), (1, 65535), (65535, 1), (5000, 5000), (0, 100)])
    return _req(ctx, _b64_body(ctx, _jpeg_with_size(rng.choice(ctx.jpegs), w, h)))


def case_png_huge_header(rng, ctx):
    w, h = rng.choice([(2 ** 31 - 1, 2 ** 31 - 1), (100000, 100000), (5000, 5000), (0, 0), (1, 2 ** 32 - 1)])
    return _req(ctx, _b64_body(ctx, _png_header(w, h, bytes(rng.randrange(256) for _ in range(64)))))


def case_png_broken(rng, ctx):
    p = ctx.png
    blob = rng.choice([p[: rng.randrange(8, len(p) - 1)], _flip(rng, p, start=40, n=rng.randint(1, 32)),
                       _png_header(94, 24, b"\x00\x00\x00\x10IDAT" + bytes(rng.randrange(256) for _ in range(20)))])
    return _req(ctx, _b64_body(ctx, blob))


def case_images_signature_bad(rng, ctx):
    h, w = ctx.image_hw
    inst = rng.choice([[[1, 2]], [np.full((h, w, 3), 300).tolist()], [np.full((h, w, 3), -1).tolist()],
                       [np.zeros((h, w, 4)).tolist()], [np.zeros((w, h, 3)).tolist()], ["abc"], [[["a"] * 3] * w] * h,
                       [[[0, 0, 0]] * w, [[0, 0]] * w], [np.zeros((2, 2, 3)).tolist()], [{"b64": "AAAA"}]])
    return _req(ctx, json.dumps({"signature_name": "predict_images", "instances": inst}).encode())


def case_batch_too_big(rng, ctx):
    tiny = rng.choice(ctx.jpegs)
    n = rng.choice([ctx.max_batch + 1, 2 * ctx.max_batch + 3, 1000])
    per = len(base64.b64encode(tiny)) + 12
    n = max(ctx.max_batch + 1, min(n, (ctx.max_body_bytes - 64) // per))
    return _req(ctx, predict_body([tiny] * n))


def case_batch_at_limit(rng, ctx):
    return _req(ctx, predict_body([ctx.jpegs[i % len(ctx.jpegs)] for i in range(ctx.max_batch)]))


def case_body_declared_too_big(rng, ctx):
    n = rng.choice([ctx.max_body_bytes + 1, 10 ** 12, 10 ** 30])
    return {"data": http_request("POST", ctx.path, b"", content_length=n)}


def case_body_sent_too_big(rng, ctx):
    body = b'{"instances": [{"b64": "' + b"A" * (ctx.max_body_bytes + rng.randrange(1, 4096)) + b'"}]}'
    return _req(ctx, body)


def case_body_expect_continue(rng, ctx):
    n = ctx.max_body_bytes + rng.randrange(1, 1 << 20)
    return {"data": http_request("POST", ctx.path, b"", content_length=n, headers={"Expect": "100-continue"})}


def case_content_length_bad(rng, ctx):
    body = predict_body([rng.choice(ctx.jpegs)])
    cl = rng.choice([None, -1, -10 ** 9, "abc", "0x10", "1e3", " ", "+5", "99999999999999999999999999", 0, "½"])
    if cl == "½":
        data = http_request("POST", ctx.path, body, content_length=None)
        data = data.replace(b"Connection: close", "Content-Length: ½".encode("utf-8") + b"\r\nConnection: close")
        return {"data": data}
    return _req(ctx, body, content_length=cl)


def case_content_length_lies(rng, ctx):
    body = predict_body([rng.choice(ctx.jpegs)])
    lie = rng.choice([len(body) + 1, len(body) * 2, len(body) - 5, 1])
    return {"data": http_request("POST", ctx.path, body, content_length=lie)}


def case_chunked(rng, ctx):
    body = predict_body([rng.choice(ctx.jpegs)])
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    return {"data": http_request("POST", ctx.path, chunked, content_length=None,
                                 headers={"Transfer-Encoding": "chunked"})}


def case_stalled_body(rng, ctx):
    body = predict_body([rng.choice(ctx.jpegs)])
    data = http_request("POST", ctx.path, body)
    return {"data": data, "stall_after": len(data) - rng.randrange(1, len(body))}


def case_wrong_method(rng, ctx):
    m = rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "FOO", "get", "POSTX"])
    path = rng.choice([ctx.path, f"/v1/models/{ctx.model}", f"/v1/models/{ctx.model}/metadata", "/"])
    body = predict_body([rng.choice(ctx.jpegs)]) if rng.random() < 0.5 else b""
    return {"data": http_request(m, path, body)}


def case_wrong_url(rng, ctx):
    m = ctx.model
    path = rng.choice(["/", "/v1", "/v1/models", f"/v1/models/{m}x:predict", f"/v1/models/{m}/versions/abc:predict",
                       f"/v1/models/{m}/versions/999999999999999999999:predict", f"/v1/models/{m}:classify",
                       f"/v1/models/{m}/metadata:predict", "/../../etc/passwd", f"/v1/models/{m}:predict?x=1&y",
                       "/v1/models/%00:predict", "/" + "a" * rng.choice([1000, 70000]), "*", "http://evil/x",
                       f"/v1/models/{m}:predict#frag", "/v1/models/" + "é" * 10])
    method = rng.choice(["GET", "POST"])
    body = predict_body([rng.choice(ctx.jpegs)]) if method == "POST" else b""
    return {"data": http_request(method, path.encode("utf-8").decode("latin-1"), body)}


def case_wrong_verb_for_route(rng, ctx):
    if rng.random() < 0.5:
        return {"data": http_request("GET", ctx.path)}
    return {"data": http_request("POST", f"/v1/models/{ctx.model}/metadata", predict_body([ctx.jpegs[0]]))}


def case_bad_request_line(rng, ctx):
    data = rng.choice([b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1",
                       b"GET / FOO/1.1\r\n\r\n", b"POST " + ctx.path.encode() + b" HTTP/1.1\r\nContent-Length: 5",
                       b" \r\n\r\n", b"GET / HTTP/1.1 extra words\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                       b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"\r\n" * 50])
    return {"data": data}


def case_bad_headers(rng, ctx):
    body = predict_body([rng.choice(ctx.jpegs)])
    head = f"POST {ctx.path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n".encode()
    extra = rng.choice([b"X-A: b\r\n" * 150, b"X-Long: " + b"a" * 70000 + b"\r\n", b"NoColonHeader\r\n",
                        b"X-Bin: \xff\xfe\x00\x01\r\n", b"Content-Length: 3\r\n", b" folded: header\r\n",
                        b"Content-Type: text/plain\r\n", b"Content-Encoding: gzip\r\n"])
    return {"data": head + extra + b"Connection: close\r\n\r\n" + body}


def case_random_bytes(rng, ctx):
    return {"data": bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))),
            "half_close": rng.random() < 0.9}


def case_status_paths(rng, ctx):
    """Valid GETs mixed in (status, metadata, version status): must stay 200."""
    m = ctx.model
    return {"data": http_request("GET", rng.choice([f"/v1/models/{m}", f"/v1/models/{m}/metadata"]))}


FUZZ_CASES = {f.__name__[5:]: f for f in (
    case_json_truncated, case_json_bitflip, case_json_deep, case_json_huge_number, case_json_constants,
    case_json_wrong_types, case_body_not_utf8, case_b64_invalid, case_b64_not_an_image, case_jpeg_truncated,
    case_jpeg_corrupt, case_jpeg_huge_header, case_png_huge_header, case_png_broken, case_images_signature_bad,
    case_batch_too_big, case_batch_at_limit, case_body_declared_too_big, case_body_sent_too_big,
    case_body_expect_continue, case_content_length_bad, case_content_length_lies, case_chunked,
    case_stalled_body, case_wrong_method, case_wrong_url, case_wrong_verb_for_route, case_bad_request_line,
    case_bad_headers, case_random_bytes, case_status_paths)}


def run_fuzz(host: str, port: int, ctx: FuzzContext, seconds: float | None = None, count: int | None = None,
             concurrency: int = 4, seed: int = 0, read_timeout_s: float = 30.0, control_every: int = 10,
             rss_pid: int | None = None, cases: dict | None = None) -> dict:
    """Send fuzz cases round-robin until ``seconds`` pass or ``count`` requests are sent.

    Every ``control_every``-th request is a valid predict request (class ``control``): it must keep
    answering 200 with a plate while the server is being fuzzed. Returns per-case class counts,
    totals, the first few 5xx/timeout examples and the server RSS at start/end/peak.
    """
    assert seconds is not None or count is not None
    cases = cases or FUZZ_CASES
    names = list(cases)
    timeout = read_timeout_s + 15.0
    deadline = time.perf_counter() + seconds if seconds is not None else float("inf")
    lock = threading.Lock()
    state = {"next": 0}
    per_case = {n: dict.fromkeys(CLASSES, 0) for n in names + ["control"]}
    examples = []
    control_fail = []
    rss = {"start": server_rss_mb(rss_pid) if rss_pid else None, "peak": None, "samples": []}

    def take():
        with lock:
            k = state["next"]
            if (count is not None and k >= count) or time.perf_counter() >= deadline:
                return None
            state["next"] = k + 1
            return k

    def worker(i):
        rng = random.Random(seed * 1000 + i)
        while (k := take()) is not None:
            if control_every and k % control_every == control_every - 1:
                name, req = "control", {"data": http_request("POST", ctx.path, predict_body([rng.choice(ctx.jpegs)]))}
            else:
                name = names[(k - k // control_every if control_every else k) % len(names)]
                req = cases[name](rng, ctx)
            status, body, err = send_raw(host, port, req["data"], timeout=timeout,
                                         half_close=req.get("half_close", True), stall_after=req.get("stall_after"))
            cls = "timeout" if err == "timeout" else status_class(status) if status is not None else (
                "error" if err else "no_status")
            with lock:
                per_case[name][cls] += 1
                if cls in ("5xx", "timeout") and len(examples) < 20:
                    examples.append({"case": name, "class": cls, "status": status, "body": body[:300].decode(
                        "utf-8", "replace"), "request_head": req["data"][:200].decode("latin-1")})
                if name == "control":
                    ok = status == 200
                    if ok:
                        try:
                            ok = isinstance(json.loads(body)["predictions"][0]["plate"], str)
                        except (ValueError, KeyError, IndexError, TypeError):
                            ok = False
                    if not ok:
                        control_fail.append(status)

    def monitor():
        while not done.is_set():
            r = server_rss_mb(rss_pid)
            if r is not None:
                rss["peak"] = max(rss["peak"] or 0.0, r)
                rss["samples"].append(r)
            done.wait(0.5)

    done = threading.Event()
    mon = threading.Thread(target=monitor, daemon=True) if rss_pid else None
    if mon:
        mon.start()
    wall = _run_clients(worker, concurrency)
    done.set()
    if mon:
        mon.join()
    rss["end"] = server_rss_mb(rss_pid) if rss_pid else None
    totals = {c: sum(v[c] for v in per_case.values()) for c in CLASSES}
    return {"seconds": wall, "requests": sum(totals.values()), "totals": totals, "per_case": per_case,
            "examples": examples, "control_failures": control_fail, "rss_mb": rss}


def server_alive(host: str, port: int, model: str, timeout: float = 30.0) -> bool:
    status, body, _ = send_raw(host, port, http_request("GET", f"/v1/models/{model}"), timeout=timeout)
    return status == 200 and b"AVAILABLE" in body


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
