"""TF Serving REST contract of lprnet-serve, on loopback only (bounded requests, server stopped after)."""

import base64
import json
import threading
import urllib.request

import cv2
import numpy as np
import pytest

from lprnet_tf.serving.client import RestClient, ServingError


def _jpeg(h=40, w=130):
    img = np.full((h, w, 3), 200, np.uint8)
    cv2.putText(img, "ABC1234", (4, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    return cv2.imencode(".jpg", img)[1].tobytes()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from lprnet_tf.export import export_savedmodel
    from lprnet_tf.models import build_model
    from lprnet_tf.serving.server import Limits, make_server
    from lprnet_tf.vocab import load_plate_format

    fmt = load_plate_format("br")
    out = str(tmp_path_factory.mktemp("export"))
    export_savedmodel(build_model("lprnet_reduced", fmt), fmt, out, name="lpr", version=3)
    server = make_server(f"{out}/lpr", "127.0.0.1", 0, limits=Limits(max_body_bytes=1 << 20, max_batch=4,
                                                                      max_image_pixels=1_000_000))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield url, fmt
    server.shutdown()
    server.server_close()


def _post(url, payload: bytes):
    req = urllib.request.Request(url, data=payload, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_status_and_metadata(served):
    url, _ = served
    c = RestClient(url, "lpr")
    s = c.status()["model_version_status"][0]
    assert s["version"] == "3" and s["state"] == "AVAILABLE"
    sigs = c.metadata()["metadata"]["signature_def"]
    assert set(sigs) >= {"serving_default", "predict_images"}
    assert RestClient(url, "lpr", version=3).status()


def test_predict_row_and_columnar(served):
    url, fmt = served
    c = RestClient(url, "lpr")
    preds = c.recognize_bytes([_jpeg(), _jpeg(50, 160)])
    assert len(preds) == 2 and {"plate", "confidence", "logits"} <= set(preds[0])
    assert isinstance(preds[0]["plate"], str) and np.asarray(preds[0]["logits"]).shape[-1] == fmt.num_classes
    b64 = base64.b64encode(_jpeg()).decode()
    out = c.predict({"inputs": {"image_bytes": [{"b64": b64}]}})["outputs"]
    assert out["plate"] == [preds[0]["plate"]]
    img = np.zeros((fmt.height, fmt.width, 3), np.uint8).tolist()
    r = c.predict({"signature_name": "predict_images", "instances": [img]})
    assert len(r["predictions"]) == 1


@pytest.mark.parametrize("payload,status,match", [
    (b"{not json", 400, "not valid JSON"),
    (b'{"instances": []}', 400, "non-empty"),
    (b'{"foo": 1}', 400, "exactly one"),
    (b'{"instances": [{"b64": "@@@"}]}', 400, "base64"),
    (b'{"instances": [{"b64": "' + base64.b64encode(b"\xff\xd8garbage").decode().encode() + b'"}]}', 400, "image size"),
    (b'{"instances": [{"b64": "' + base64.b64encode(_jpeg()[:400]).decode().encode() + b'"}]}', 400, "rejected"),
    (b'{"instances": [{"b64": "' + base64.b64encode(b"hello world").decode().encode() + b'"}]}', 400, "not a JPEG"),
    (b'{"instances": [1,2,3,4,5]}', 413, "limit"),
    (b'{"signature_name": "nope", "instances": [1]}', 400, "unknown signature_name"),
    (b'{"signature_name": "predict_images", "instances": [[1, 2]]}', 400, "arrays"),
])
def test_malformed_requests_get_4xx_json(served, payload, status, match):
    url, _ = served
    code, body = _post(f"{url}/v1/models/lpr:predict", payload)
    assert code == status and match in body["error"]


def test_limits_and_routes(served):
    url, _ = served
    huge = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (5000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    code, body = _post(f"{url}/v1/models/lpr:predict",
                       json.dumps({"instances": [{"b64": base64.b64encode(huge).decode()}]}).encode())
    assert code == 400 and "5000x5000" in body["error"]
    # a declared body over the limit is refused from the headers, before reading it
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    conn.putrequest("POST", "/v1/models/lpr:predict")
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and "exceeds" in json.loads(r.read())["error"]
    conn.close()
    with pytest.raises(ServingError) as e:
        RestClient(url, "other").status()
    assert e.value.status == 404
    with pytest.raises(ServingError) as e:
        RestClient(url, "lpr", version=9).status()
    assert e.value.status == 404
    assert RestClient(url, "lpr").status()["model_version_status"][0]["state"] == "AVAILABLE"  # still up
