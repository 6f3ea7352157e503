"""Clients for a served recognizer: REST (``lprnet-serve`` or ``tensorflow_model_server``) and gRPC
(``tensorflow_model_server`` only; needs ``pip install tensorflow-serving-api``).

    from lprnet_tf.serving.client import RestClient
    c = RestClient("http://127.0.0.1:8501", "lpr")
    c.status()                       # {"model_version_status": [...]}
    c.recognize(["plate1.jpg"])      # [{"plate": "皖A12345", "confidence": 0.98, ...}]
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request


class ServingError(RuntimeError):
    """The server answered an error (its message and HTTP status are kept)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class RestClient:
    def __init__(self, url: str, model: str, version: int | None = None, timeout: float = 30.0):
        self.base = f"{url.rstrip('/')}/v1/models/{model}" + (f"/versions/{version}" if version else "")
        self.timeout = timeout

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read().decode("utf-8")).get("error", "")
            except (ValueError, AttributeError):
                msg = e.reason
            raise ServingError(e.code, msg) from None

    def status(self) -> dict:
        return self._call("")

    def metadata(self) -> dict:
        return self._call("/metadata")

    def predict(self, body: dict) -> dict:
        return self._call(":predict", body)

    def recognize_bytes(self, images: list[bytes]) -> list[dict]:
        body = {"instances": [{"b64": base64.b64encode(b).decode("ascii")} for b in images]}
        return self.predict(body)["predictions"]

    def recognize(self, paths: list[str]) -> list[dict]:
        """Encoded image files -> [{"plate", "confidence", "logits"}] (row format)."""
        blobs = []
        for p in paths:
            with open(p, "rb") as f:
                blobs.append(f.read())
        return self.recognize_bytes(blobs)


class GrpcClient:
    """gRPC PredictionService client for ``tensorflow_model_server --port`` (not served by lprnet-serve)."""

    def __init__(self, target: str, model: str, signature: str = "serving_default", timeout: float = 30.0):
        try:
            import grpc
            from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
        except ImportError:
            raise ImportError("the gRPC client needs `pip install tensorflow-serving-api grpcio`") from None
        self._predict_pb2 = predict_pb2
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
        self.model, self.signature, self.timeout = model, signature, timeout

    def recognize_bytes(self, images: list[bytes]) -> list[dict]:
        import tensorflow as tf

        req = self._predict_pb2.PredictRequest()
        req.model_spec.name = self.model
        req.model_spec.signature_name = self.signature
        req.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
        res = self.stub.Predict(req, self.timeout)
        plates = tf.make_ndarray(res.outputs["plate"])
        conf = tf.make_ndarray(res.outputs["confidence"])
        return [{"plate": p.decode("utf-8"), "confidence": float(c)} for p, c in zip(plates, conf)]
