"""A short, bounded fuzz of lprnet-serve on loopback: zero 5xx, no hang, server alive and still correct.

Every case of lprnet_tf.serving.stress.FUZZ_CASES runs several times (round-robin, seeded);
benchmarks/serving_load.py runs the same cases for a minute against the shipped model.
"""

import threading

import pytest

from lprnet_tf.serving.stress import (FUZZ_CASES, FuzzContext, http_request, plate_jpegs, run_fuzz, send_raw,
                                      server_alive)

READ_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from lprnet_tf.export import export_savedmodel
    from lprnet_tf.models import build_model
    from lprnet_tf.serving.server import Limits, make_server
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("cn")
    out = str(tmp_path_factory.mktemp("export"))
    export_savedmodel(build_model("lprnet_reduced", fmt), fmt, out, name="lpr", version=1)
    limits = Limits(max_body_bytes=1 << 20, max_batch=4, max_image_pixels=1_000_000, read_timeout_s=READ_TIMEOUT)
    server = make_server(f"{out}/lpr", "127.0.0.1", 0, limits=limits)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    ctx = FuzzContext("lpr", [j for j, _ in plate_jpegs(fmt, 6)], limits.max_body_bytes, limits.max_batch,
                      (fmt.height, fmt.width))
    yield server, ctx, t
    server.shutdown()
    server.server_close()


def test_bounded_fuzz_zero_5xx_and_alive(served):
    server, ctx, thread = served
    host, port = server.server_address[:2]
    n_rounds = 8
    count = n_rounds * len(FUZZ_CASES) * 10 // 9 + 1  # every case n_rounds times, plus the controls
    res = run_fuzz(host, port, ctx, count=count, concurrency=4, seed=1, read_timeout_s=READ_TIMEOUT)
    per = res["per_case"]
    assert res["totals"]["5xx"] == 0, res["examples"]
    assert res["totals"]["timeout"] == 0, res["examples"]  # nothing hangs: each answer within read_timeout
    assert all(sum(per[c].values()) >= n_rounds for c in FUZZ_CASES), per
    assert res["control_failures"] == [] and per["control"]["2xx"] >= count // 10
    # refusals are answers, not dropped connections
    for case in ("json_deep", "json_huge_number", "json_wrong_types", "b64_invalid", "jpeg_truncated",
                 "png_huge_header", "batch_too_big", "body_declared_too_big", "body_sent_too_big",
                 "body_expect_continue", "content_length_bad", "chunked", "stalled_body", "wrong_method",
                 "wrong_verb_for_route"):
        assert per[case]["4xx"] == sum(per[case].values()), (case, per[case])
    assert per["batch_at_limit"]["2xx"] == per["status_paths"]["2xx"] == n_rounds
    assert thread.is_alive() and server_alive(host, port, "lpr")


@pytest.mark.parametrize("data,status,match", [
    # each of these used to hang a thread, answer 5xx (501/500) or HTML; now a 4xx JSON error
    (http_request("POST", "/v1/models/lpr:predict", b"{}", content_length=-1), 400, b"negative"),
    (http_request("POST", "/v1/models/lpr:predict", b'{"signature_name": [1], "instances": [1]}'), 400,
     b"signature_name"),
    (http_request("POST", "/v1/models/lpr:predict", b"[" * 100000), 400, b"not valid JSON"),
    (http_request("POST", "/v1/models/lpr:predict", b'{"instances": [' + b"1" * 5000 + b"]}"), 400, b"not valid JSON"),
    (http_request("POST", "/v1/models/lpr:predict", b'{"instances": [NaN]}'), 400, b"NaN"),
    (http_request("DELETE", "/v1/models/lpr"), 405, b"not allowed"),
    (http_request("BREW", "/v1/models/lpr"), 405, b"not allowed"),
    (b"GET / HTTP/9.9\r\n\r\n", 400, b"version"),  # the stdlib's stock answer was 505
    (b"GARBAGE\r\n\r\n", 400, b"error"),
    # excess base64 padding after a whole quad: b64decode(validate=True) accepted it (a 2xx in the fuzz)
    (http_request("POST", "/v1/models/lpr:predict", b'{"instances": [{"b64": "/9j/4AAQ==="}]}'), 400, b"base64"),
])
def test_regressions(served, data, status, match):
    server, _, _ = served
    got, body, err = send_raw(*server.server_address[:2], data, timeout=READ_TIMEOUT + 10)
    assert (got, err) == (status, None) and match in body and body.startswith(b"{")


def test_stalled_body_gets_408_after_the_read_timeout(served):
    server, ctx, _ = served
    import time

    data = http_request("POST", ctx.path, b'{"instances": []}')
    t = time.perf_counter()
    got, body, err = send_raw(*server.server_address[:2], data, timeout=READ_TIMEOUT + 10, stall_after=len(data) - 5)
    assert got == 408 and b"did not arrive" in body
    assert READ_TIMEOUT * 0.9 <= time.perf_counter() - t < READ_TIMEOUT + 5
