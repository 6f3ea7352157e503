"""Helpers shared by the absl command-line entry points: quiet TF logging and one-line errors."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Errors users can fix: printed as one line ("error: ...") with exit code 2, no traceback.
EXIT_USER_ERROR = 2


def user_errors():
    from lprnet_tf.config import ConfigError
    from lprnet_tf.data.readers import DataError
    from lprnet_tf.modelio import ModelFileError
    from lprnet_tf.vocab import LabelError, PlateFormatError

    return (ConfigError, DataError, ModelFileError, LabelError, PlateFormatError, FileExistsError, ValueError)


def run_guarded(fn, *args, **kwargs):
    """Run ``fn``; user errors become ``error: message`` on stderr and exit code 2."""
    try:
        return fn(*args, **kwargs)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact (resume with --resume)", file=sys.stderr)
        sys.exit(130)
