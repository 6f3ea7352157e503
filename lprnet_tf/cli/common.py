"""Helpers shared by the absl command-line entry points: quiet TF logging and one-line errors."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Errors users can fix: printed as one line ("error: ...") with exit code 2, no traceback.
# (lprnet-export exits 3 when the exported files fail the parity check; lprnet-recognize exits 1
# when no input could be read.)
EXIT_USER_ERROR = 2


_USER_ERRORS = {
    "lprnet_tf.config": ("ConfigError", "UsageError"),
    "lprnet_tf.data.readers": ("DataError",),
    "lprnet_tf.modelio": ("ModelFileError",),
    "lprnet_tf.runtime": ("RuntimeModelError",),
    "lprnet_tf.vocab": ("LabelError", "PlateFormatError"),
}


def user_errors() -> tuple:
    """The project's own error classes (only from modules already imported: importing more here
    would drag TensorFlow into light commands). Anything else is a bug and keeps its traceback."""
    found = [FileExistsError]
    for module, names in _USER_ERRORS.items():
        m = sys.modules.get(module)
        if m is not None:
            found += [getattr(m, n) for n in names]
    return tuple(found)


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
