"""A small HTTP server that speaks TensorFlow Serving's REST API for an exported recognizer.

Clients written for ``tensorflow_model_server --rest_api_port`` work against it unchanged:

- ``GET  /v1/models/NAME`` and ``/v1/models/NAME/versions/N``: version status.
- ``GET  /v1/models/NAME[/versions/N]/metadata``: signature names, inputs and outputs.
- ``POST /v1/models/NAME[/versions/N]:predict`` with ``{"instances": [...]}`` (row format) or
  ``{"inputs": ...}`` (columnar), optional ``"signature_name"``. Binary inputs are ``{"b64": "..."}``.
  Row requests answer ``{"predictions": [{"plate": ..., "confidence": ..., "logits": ...}]}``,
  columnar ones ``{"outputs": {...}}``. Errors answer ``{"error": "..."}`` with a 4xx status.

It serves a SavedModel written by :func:`lprnet_tf.export.export_savedmodel` (``DIR/NAME/VERSION``,
the highest version is loaded, or a version folder itself). Limits on body size, batch size and
image size reject a request with 413/400 before it reaches TensorFlow; malformed input never
crashes the server. Every error is a JSON ``{"error": ...}`` with a 4xx status (unknown methods
405, a body that does not arrive within ``Limits.read_timeout_s`` 408); 500 is kept for a server
bug and is never caused by input. It binds 127.0.0.1 unless told otherwise.
``docs/reliability.md`` lists the limits; ``benchmarks/serving_load.py`` loads and fuzzes it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from lprnet_tf.data.readers import DataError, check_header_size
from lprnet_tf.modelio import ModelFileError

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<rest>/metadata|:predict)?$")


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class SavedModelBackend:
    """Runs the signatures of one exported SavedModel version."""

    def __init__(self, model_dir: str, name: str | None = None):
        import tensorflow as tf

        path, version = resolve_version_dir(model_dir)
        self.name = name or os.path.basename(os.path.dirname(path)) or "lpr"
        self.version = version
        self.path = path
        self.loaded = tf.saved_model.load(path)
        self.signatures = dict(self.loaded.signatures)
        if "serving_default" not in self.signatures:
            raise ModelFileError(f"{path}: SavedModel has no serving_default signature; export it with lprnet-export")
        self.lock = threading.Lock()

    def describe(self) -> dict:
        out = {}
        for key, fn in self.signatures.items():
            ins = fn.structured_input_signature[1]
            outs = fn.structured_outputs
            out[key] = {
                "inputs": {k: {"dtype": v.dtype.name, "shape": [-1 if d is None else int(d) for d in v.shape]}
                           for k, v in ins.items()},
                "outputs": {k: {"dtype": v.dtype.name, "shape": [-1 if d is None else int(d) for d in v.shape]}
                            for k, v in outs.items()},
            }
        return out

    def run(self, signature: str, inputs: dict) -> dict:
        import tensorflow as tf

        fn = self.signatures[signature]
        spec = fn.structured_input_signature[1]
        feed = {k: tf.constant(v, dtype=spec[k].dtype) for k, v in inputs.items()}
        try:
            with self.lock:
                res = fn(**feed)
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, ValueError, TypeError) as e:
            msg = getattr(e, "message", str(e)).strip().splitlines()[0][:300]
            raise RequestError(400, f"the model rejected the input: {msg}") from None
        return {k: v.numpy() for k, v in res.items()}


def resolve_version_dir(model_dir: str) -> tuple[str, str]:
    """``DIR/NAME`` (highest numeric version) or ``DIR/NAME/VERSION`` -> (folder, version)."""
    if os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        base = os.path.basename(os.path.normpath(model_dir))
        return model_dir, base if base.isdigit() else "1"
    versions = sorted((int(d) for d in os.listdir(model_dir) if d.isdigit()
                       and os.path.isfile(os.path.join(model_dir, d, "saved_model.pb")))) if os.path.isdir(model_dir) else []
    if not versions:
        raise ModelFileError(f"{model_dir}: no SavedModel (expected saved_model.pb or numeric version folders)")
    return os.path.join(model_dir, str(versions[-1])), str(versions[-1])


class Limits:
    """Request limits. ``read_timeout_s``: the longest a connection may stay silent (idle between
    keep-alive requests, or a body slower than declared) before it is closed."""

    def __init__(self, max_body_bytes=8 << 20, max_batch=64, max_image_pixels=4_000_000, read_timeout_s=30.0):
        self.max_body_bytes, self.max_batch, self.max_image_pixels = max_body_bytes, max_batch, max_image_pixels
        self.read_timeout_s = read_timeout_s


def _jsonable(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        if v.dtype.kind in ("S", "O"):
            return [_jsonable(x) for x in v.tolist()] if v.ndim else _jsonable(v.item())
        return v.tolist()
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def _decode_b64(value, limits: Limits, where: str) -> bytes:
    if not isinstance(value, dict) or set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise RequestError(400, f"{where}: expected {{\"b64\": \"<base64 image>\"}}")
    try:
        data = base64.b64decode(value["b64"], validate=True)
        # strict: only the canonical encoding (no excess '=' padding, which b64decode lets through)
        if base64.b64encode(data) != value["b64"].encode("ascii"):
            raise ValueError("not canonical")
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{where}: not valid base64") from None
    if not data:
        raise RequestError(400, f"{where}: empty image")
    if not (data.startswith(b"\xff\xd8") or data.startswith(b"\x89PNG\r\n\x1a\n")):
        raise RequestError(400, f"{where}: not a JPEG or PNG image")
    try:
        w, h = check_header_size(np.frombuffer(data, np.uint8), where, limits.max_image_pixels)
    except DataError as e:
        raise RequestError(400, str(e)) from None
    if w * h == 0:  # size not found in the header: refuse rather than let the decoder find out
        raise RequestError(400, f"{where}: cannot read the image size from its header")
    return data


def parse_predict(body: dict, backend: SavedModelBackend, limits: Limits) -> tuple[str, dict, bool]:
    """Validate a predict request -> (signature, {input name: array}, row_format)."""
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object with 'instances' or 'inputs'")
    sig = body.get("signature_name", "serving_default")
    if not isinstance(sig, str) or sig not in backend.signatures:
        raise RequestError(400, f"unknown signature_name '{sig}'; available: {sorted(backend.signatures)}")
    spec = backend.signatures[sig].structured_input_signature[1]
    (in_name, in_spec), = spec.items()
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(400, "give exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    row = "instances" in body
    items = body["instances"] if row else body["inputs"]
    if not row and isinstance(items, dict):
        if set(items) != {in_name}:
            raise RequestError(400, f"'inputs' must have the single key '{in_name}'")
        items = items[in_name]
    if not isinstance(items, list) or not items:
        raise RequestError(400, "'instances'/'inputs' must be a non-empty list")
    if len(items) > limits.max_batch:
        raise RequestError(413, f"batch of {len(items)} exceeds the limit of {limits.max_batch}; split the request")
    if row:
        items = [it[in_name] if isinstance(it, dict) and in_name in it else it for it in items]
    if in_spec.dtype.name == "string":
        arr = np.array([_decode_b64(v, limits, f"instance {i}") for i, v in enumerate(items)], dtype=object)
    else:
        h, w = in_spec.shape[1], in_spec.shape[2]
        try:
            arr = np.asarray(items, dtype=np.float64)
        except (ValueError, TypeError):
            raise RequestError(400, f"'{in_name}' must be a list of {h}x{w}x3 uint8 arrays") from None
        if arr.shape[1:] != (h, w, 3) or not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
            raise RequestError(400, f"'{in_name}' must be a list of {h}x{w}x3 arrays of 0..255, got shape {arr.shape}")
        arr = arr.astype(np.uint8)
    return sig, {in_name: arr}, row


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def make_handler(backend: SavedModelBackend, limits: Limits):
    class Handler(BaseHTTPRequestHandler):
        server_version = "lprnet-serve"
        protocol_version = "HTTP/1.1"
        timeout = limits.read_timeout_s  # socket timeout: a silent client cannot hold a thread for ever
        disable_nagle_algorithm = True  # headers and body go out in two writes: Nagle + delayed ACK = +40 ms

        def log_message(self, fmt, *args):  # quiet by default; errors are answered, not logged
            pass

        def _send(self, status: int, obj: dict):
            data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except OSError:  # the client went away (reset, broken pipe, timeout): nothing to answer
                self.close_connection = True

        def send_error(self, code, message=None, explain=None):
            """Protocol-level errors (bad request line, oversized headers...) as JSON too; the stock
            5xx of a malformed request (505 for an unknown HTTP version) is a client error: 400."""
            self.close_connection = True
            if code >= 500:
                code = 400
            if getattr(self, "command", None) is None:
                self.command = ""
            if getattr(self, "request_version", "HTTP/0.9") in ("HTTP/0.9", ""):
                self.request_version = "HTTP/1.1"  # a malformed request line still gets a status line
            self._send(code, {"error": message or self.responses.get(code, ("error",))[0]})

        def handle_expect_100(self):
            # "Expect: 100-continue": refuse an oversized body before the client sends it
            try:
                n = int(self.headers.get("Content-Length", ""))
            except ValueError:
                n = 0
            if n > limits.max_body_bytes:
                self.close_connection = True
                self._send(413, {"error": f"body of {n} bytes exceeds the limit of {limits.max_body_bytes}"})
                return False
            return super().handle_expect_100()

        def __getattr__(self, name):
            # any method without a do_X (PUT, DELETE, HEAD, made-up ones) -> 405 JSON, not the stock 501
            if name.startswith("do_"):
                return self._not_allowed
            raise AttributeError(name)

        def _not_allowed(self):
            self.close_connection = True
            self._send(405, {"error": f"method {self.command} not allowed; use GET for status/metadata "
                                      f"and POST for :predict"})

        def _route(self):
            m = _PATH.match(self.path.split("?")[0])
            if not m:
                raise RequestError(404, f"unknown path {self.path}; use /v1/models/{backend.name}[:predict|/metadata]")
            if m["name"] != backend.name:
                raise RequestError(404, f"Servable not found for request: Latest({m['name']}); serving '{backend.name}'")
            if m["version"] is not None and m["version"] != backend.version:
                raise RequestError(404, f"Servable not found for request: Specific({m['name']}, {m['version']}); "
                                        f"serving version {backend.version}")
            return m["rest"] or ""

        def do_GET(self):
            try:
                rest = self._route()
                if rest == ":predict":
                    raise RequestError(405, "predict needs POST")
                if rest == "/metadata":
                    return self._send(200, {"model_spec": {"name": backend.name, "version": backend.version},
                                            "metadata": {"signature_def": backend.describe()}})
                self._send(200, {"model_version_status": [{"version": backend.version, "state": "AVAILABLE",
                                                           "status": {"error_code": "OK", "error_message": ""}}]})
            except RequestError as e:
                self.close_connection = True
                self._send(e.status, {"error": str(e)})
            except Exception as e:  # never let one request take the server down
                self.close_connection = True
                self._send(500, {"error": f"internal error: {type(e).__name__}"})

        def do_POST(self):
            try:
                if self._route() != ":predict":
                    raise RequestError(405, "only :predict accepts POST")
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    raise RequestError(411, "chunked bodies are not accepted; send a Content-Length header")
                if len(set(self.headers.get_all("Content-Length") or [])) > 1:
                    raise RequestError(400, "conflicting Content-Length headers")
                try:
                    n = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    raise RequestError(411, "Content-Length header required (a decimal byte count)") from None
                if n < 0:
                    raise RequestError(400, f"Content-Length must not be negative, got {n}")
                if n > limits.max_body_bytes:
                    raise RequestError(413, f"body of {n} bytes exceeds the limit of {limits.max_body_bytes}")
                try:
                    raw = self.rfile.read(n)
                except TimeoutError:
                    raise RequestError(408, f"the {n}-byte body did not arrive within "
                                            f"{limits.read_timeout_s:g} s") from None
                if len(raw) < n:
                    raise RequestError(400, f"body ended after {len(raw)} of the {n} bytes Content-Length declares")
                try:
                    body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
                except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: JSON syntax, huge ints
                    msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                    raise RequestError(400, f"body is not valid JSON ({msg})") from None
                sig, inputs, row = parse_predict(body, backend, limits)
                out = backend.run(sig, inputs)
                if row:
                    b = len(next(iter(inputs.values())))
                    preds = [{k: _jsonable(v[i]) for k, v in out.items()} for i in range(b)]
                    return self._send(200, {"predictions": preds})
                self._send(200, {"outputs": {k: _jsonable(v) for k, v in out.items()}})
            except RequestError as e:
                self.close_connection = True
                self._send(e.status, {"error": str(e)})
            except Exception as e:  # never let one request take the server down
                self.close_connection = True
                self._send(500, {"error": f"internal error: {type(e).__name__}"})

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog (socketserver's default 5 drops SYNs when many clients connect at once)
    linger_bytes = 64 << 20  # after the answer, read and drop at most this much unread input...
    linger_seconds = 2.0  # ...for at most this long

    def shutdown_request(self, request):
        """Lingering close: a request refused before its body was read (413, 411, 400) leaves that
        body unread, and closing a socket with unread input resets the connection, which can destroy
        the error answer before the client reads it. So: stop sending, drain (bounded), then close."""
        try:
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.linger_seconds
            left = self.linger_bytes
            while left > 0:
                request.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = request.recv(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass
        self.close_request(request)

    def handle_error(self, request, client_address):
        # a client that vanished mid-request is routine under load; anything else is a bug to show
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handle_error(request, client_address)


def make_server(model_dir: str, host: str = "127.0.0.1", port: int = 8501, name: str | None = None,
                limits: Limits | None = None) -> ThreadingHTTPServer:
    """Load the model and return a ready (not yet serving) HTTP server."""
    backend = SavedModelBackend(model_dir, name)
    server = _Server((host, port), make_handler(backend, limits or Limits()))
    server.backend = backend
    return server
