"""Helpers shared by the absl command-line entry points: quiet TF logging and one-line errors."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Exit codes every command keeps (docs/bad_input.md):
EXIT_OK = 0
EXIT_NOTHING_READ = 1  # lprnet-recognize: no input image could be read
EXIT_USER_ERROR = 2  # bad flag, config, data, model file...: one "error: ..." line, no traceback
EXIT_PARITY = 3  # lprnet-export: the exported files disagree with the Keras model
EXIT_PEER_LOST = 4  # lprnet-train --strategy multiworker: another worker died; restart all with --resume
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
# Anything else (a Python traceback, exit 1 from the interpreter) is a bug: please report it.


_USER_ERRORS = {
    "lprnet_tf.config": ("ConfigError", "UsageError"),
    "lprnet_tf.data.readers": ("DataError",),
    "lprnet_tf.decoding": ("PriorError",),
    "lprnet_tf.export": ("ExportError",),
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
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact (resume with --resume)", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def check_output_dir(path: str, flag: str) -> None:
    """Refuse an output folder flag (``--out``, ``--run_dir``...) that names a file, or lies under one,
    before any work starts (``os.makedirs`` would fail later with a bare errno)."""
    from lprnet_tf.config import UsageError

    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent
    if not os.path.isdir(probe):
        where = "is a file" if probe == os.path.abspath(path) else f"lies under the file {probe}"
        raise UsageError(f"{flag} {path} {where}, not a folder; choose a folder path (it is created if missing)")


def define_local_prior_flags(module_name: str) -> None:
    """``--local_prefix``, ``--local_share``, ``--local_base`` for the command ``module_name`` (the flags show in
    its ``--help``); read them with :func:`local_prior_from_flags`."""
    from absl import flags

    if module_name == "__main__":  # run with python -m: absl files the main module's flags under argv[0]
        module_name = sys.argv[0]
    flags.DEFINE(flags.ArgumentParser(), "local_prefix", None, "Local province (or plate prefix) of the site, e.g. "
                 "皖: the beam / template decoder re-ranks its candidates for a site where --local_share of the plates "
                 "start with it (README 'Local province'). Off by default.", module_name=module_name)
    flags.DEFINE(flags.FloatParser(0.0, 1.0), "local_share", 0.5, "--local_prefix: expected fraction of the site's "
                 "plates that start with the prefix (strictly between 0 and 1).", module_name=module_name)
    flags.DEFINE(flags.FloatParser(0.0, 1.0), "local_base", None, "--local_prefix: fraction of the model's training "
                 "plates that start with the prefix (default: drawn from the plate format's synthetic generator).",
                 module_name=module_name)


def local_prior_from_flags(fmt, decoder: str, shares: dict | None = None):
    """The :class:`lprnet_tf.decoding.LocalPrior` the ``--local_*`` flags ask for (None without
    ``--local_prefix``); a UsageError for the greedy decoder, a PriorError for a bad prefix or share.
    ``shares``: a sidecar's ``first_char_shares`` (the base share where the format has no generator)."""
    from absl import flags

    from lprnet_tf.config import UsageError
    from lprnet_tf.decoding import local_prior

    f = flags.FLAGS
    if not f.local_prefix:
        for name in ("local_share", "local_base"):
            if f[name].present:
                raise UsageError(f"--{name} is a setting of --local_prefix; give the local province too, e.g. "
                                 f"--local_prefix 皖")
        return None
    if decoder == "greedy":
        raise UsageError("--local_prefix re-ranks the beam search's candidates: add --decoder template (or beam)")
    return local_prior(fmt, f.local_prefix, f.local_share, f.local_base, shares)


def one_line(message: str) -> str:
    """A message on one line (scripts read the first ``error:`` line)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


_HELP_FLAGS = ("--help", "-help", "-?", "--helpshort", "-helpshort", "--helpfull", "-helpfull", "--helpxml", "-helpxml")


def _adopt_command_help(flag_values, argv) -> None:
    """Installed as a console script (``lprnet-recognize``), ``__main__`` is pip's wrapper: absl's
    ``--help`` would show neither the command's docstring nor its flags (it looks both up under
    ``sys.argv[0]``). Register the command module's flags under the script name and lend it the
    docstring, so ``--help`` reads the same as ``python -m lprnet_tf.cli.<command> --help``."""
    script = argv[0] if argv else sys.argv[0]
    by_module = flag_values.flags_by_module_dict()
    if script in by_module:
        return
    main = sys.modules.get("__main__")
    for name, module_flags in list(by_module.items()):
        if not name.startswith("lprnet_tf.cli.") or name == __name__:
            continue
        for flag in module_flags:
            flag_values.register_flag_by_module(script, flag)
            flag_values.register_key_flag_for_module(script, flag)
        doc = getattr(sys.modules.get(name), "__doc__", None)
        if main is not None and doc and not getattr(main, "__doc__", None):
            main.__doc__ = doc


def parse_flags(argv):
    """absl ``flags_parser`` for ``app.run``: a bad flag is a user error (one ``error:`` line, exit 2,
    where absl's default exits 1, the code lprnet-recognize uses for "nothing read"); ``--help`` exits 0."""
    from absl import flags

    _adopt_command_help(flags.FLAGS, argv)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {one_line(str(e))} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except SystemExit as e:  # absl's --help/--helpfull print the usage, then exit 1
        if e.code == 1 and any(a.split("=")[0] in _HELP_FLAGS for a in argv[1:]):
            sys.exit(EXIT_OK)
        raise
