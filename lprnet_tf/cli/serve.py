"""lprnet-serve: serve an exported recognizer with TensorFlow Serving's REST API.

  lprnet-serve --model exports/lpr [--port 8501] [--host 127.0.0.1] [--name lpr]

--model is the SavedModel base folder written by lprnet-export (DIR/NAME, whose highest numeric
version is served) or one version folder. Binds 127.0.0.1 unless --host says otherwise.
"""

from __future__ import annotations

from absl import app, flags

from lprnet_tf.cli.common import parse_flags, run_guarded
from lprnet_tf.config import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "SavedModel base folder (DIR/NAME with version sub-folders) or a version folder.")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0 exposes the server to the network).")
flags.DEFINE_integer("port", 8501, "Port (TF Serving's REST default is 8501; 0: any free port).", lower_bound=0,
                     upper_bound=65535)
flags.DEFINE_string("name", None, "Model name in URLs (default: the base folder's name).")
flags.DEFINE_integer("max_batch", 64, "Most images per request.", lower_bound=1)
flags.DEFINE_float("max_body_mb", 8.0, "Largest request body in MB.", lower_bound=0.001)
flags.DEFINE_integer("max_image_pixels", 4_000_000, "Largest image (width x height) accepted.", lower_bound=1)
flags.DEFINE_float("read_timeout", 30.0, "Seconds a connection may stay silent (idle keep-alive, or a body slower "
                   "than its Content-Length) before it is closed (408 for a late body).")


def _main(argv):
    del argv
    from lprnet_tf.serving.server import Limits, make_server

    if not FLAGS.model:
        raise UsageError("--model is required (see --help)")
    if FLAGS.read_timeout <= 0:
        raise UsageError(f"--read_timeout must be > 0 seconds, got {FLAGS.read_timeout}")
    limits = Limits(int(FLAGS.max_body_mb * (1 << 20)), FLAGS.max_batch, FLAGS.max_image_pixels, FLAGS.read_timeout)
    server = make_server(FLAGS.model, FLAGS.host, FLAGS.port, FLAGS.name, limits)
    b = server.backend
    print(f"serving '{b.name}' version {b.version} from {b.path} on http://{FLAGS.host}:{server.server_address[1]}"
          f"/v1/models/{b.name} (signatures: {sorted(b.signatures)})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main():
    app.run(lambda argv: run_guarded(_main, argv), flags_parser=parse_flags)


if __name__ == "__main__":
    main()
