"""Runs one ``lprnet-data`` subcommand as an absl program: its own help, flag errors as usage
errors (exit 2), ``--fix-out`` accepted for ``--fix_out``, and the library's user errors turned
into one ``error: ...`` line by :func:`lprnet_tf.cli.common.run_guarded`."""

from __future__ import annotations

import os
import sys

from absl import app, flags

from lprnet_tf.cli.common import EXIT_USER_ERROR, run_guarded
from lprnet_tf.config import UsageError

HELP_ARGS = ("--help", "-help", "-h", "-?", "--helpshort")


def normalize_flag_names(args: list, bool_flags: frozenset = frozenset()) -> list:
    """``--fix-out=x`` -> ``--fix_out=x``, and ``--no-progress`` -> ``--noprogress`` for the boolean
    flags named in ``bool_flags`` (flag names only; values and args after ``--`` untouched)."""
    out, done = [], False
    for a in args:
        if not done and a == "--":
            done = True
        elif not done and a.startswith("--") and len(a) > 2:
            name, eq, value = a[2:].partition("=")
            name = name.replace("-", "_")
            if name.startswith("no_") and name[3:] in bool_flags:
                name = "no" + name[3:]
            a = "--" + name + eq + value
        out.append(a)
    return out


def prog_name(module) -> str:
    spec = getattr(module, "__spec__", None)
    name = spec.name if spec is not None else module.__name__
    return "lprnet-data " + name.rsplit(".", 1)[-1]


def help_text(module, flags_key: str) -> str:
    """The subcommand's docstring and its flags (absl's listing of the flags the module defines)."""
    doc = (module.__doc__ or "").strip()
    listing = "\n".join(line for line in flags.FLAGS.module_help(flags_key).splitlines()
                        if line.strip() and line.strip() != f"{flags_key}:")
    return (f"{doc}\n\nflags (--name=value or --name value; '-' and '_' are the same in flag names):\n"
            f"{listing}\n")


def run(fn, argv: list | None = None) -> None:
    """Parse ``argv`` (default ``sys.argv``) into the module's absl flags and call ``fn(argv)``; the
    process exits with ``fn``'s return value (0 when None)."""
    module = sys.modules[fn.__module__]
    # absl files the flags of a script run as __main__ under sys.argv[0]
    flags_key = sys.argv[0] if fn.__module__ == "__main__" else fn.__module__
    prog = prog_name(module)
    argv = list(sys.argv if argv is None else argv)
    bools = frozenset(n for n in flags.FLAGS if flags.FLAGS[n].boolean)
    args = normalize_flag_names(argv[1:], bools)
    if args[:1] == ["help"] or any(a in HELP_ARGS for a in args if a.startswith("-")):
        sys.stdout.write(help_text(module, flags_key))
        sys.exit(0)

    def parse(av):
        try:
            return flags.FLAGS(av)
        except flags.Error as e:
            print(f"error: {e}; see `{prog} --help`", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    def body(av):
        if len(av) > 1:
            raise UsageError(f"unexpected argument(s) {' '.join(av[1:])}; every option is a --flag "
                             f"(see `{prog} --help`)")
        return fn(av)

    def guarded(av):
        try:
            return run_guarded(body, av)
        except BrokenPipeError:  # `lprnet-data stats ... | head`: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0

    app.run(guarded, argv=[prog] + args, flags_parser=parse)


def require(value, flag: str, what: str):
    """A required flag's value, or a UsageError saying what to pass."""
    if value in (None, ""):
        raise UsageError(f"--{flag} is required: {what}")
    return value
