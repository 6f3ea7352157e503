"""lprnet-data: dataset tools (stats, validate, convert, split, show), one module per subcommand.

    lprnet-data SUBCOMMAND [--flags]
    lprnet-data SUBCOMMAND --help        that subcommand's flags
    python -m lprnet_tf.cli.data ...     the same without the console script

Only the chosen subcommand's module is imported, so every subcommand has its own absl flags and
none of them loads TensorFlow.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import sys

SUBCOMMANDS = ("stats", "validate", "convert", "split", "show")
EXIT_USER_ERROR = 2


def describe(sub: str) -> str:
    """A subcommand's one-line description: the first line of its module docstring (read without
    importing the module, whose flags would clash with another subcommand's)."""
    spec = importlib.util.find_spec(f"{__name__}.{sub}")
    with open(spec.origin, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    return first.split(":", 1)[1].strip() if first.startswith("lprnet-data") and ":" in first else first


def usage() -> str:
    width = max(len(s) for s in SUBCOMMANDS)
    lines = ["usage: lprnet-data SUBCOMMAND [--flags]   (lprnet-data SUBCOMMAND --help lists its flags)", "",
             "Dataset tools for labels.csv sets, OpenVINO lists, CCPD and label-in-file-name folders.", "",
             "subcommands:"]
    lines += [f"  {s:<{width}}  {describe(s)}" for s in SUBCOMMANDS]
    lines += ["", "Exit codes: 0 ok; 1 validate found bad rows (or stats --fail_on_overlap found overlap); "
                  "2 usage or data error (one line `error: ...` naming the file, row and fix)."]
    return "\n".join(lines) + "\n"


def main(argv: list | None = None) -> None:
    """Console entry point ``lprnet-data``: dispatch to ``lprnet_tf.cli.data.<subcommand>``."""
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:]
    if not args or args[0] in ("-h", "--help", "-help", "--helpshort", "--helpfull", "help") and len(args) == 1:
        (sys.stdout if args else sys.stderr).write(usage())
        sys.exit(0 if args else EXIT_USER_ERROR)
    if args[0] == "help":  # lprnet-data help SUBCOMMAND
        args = [args[1], "--help"]
    sub = args[0]
    if sub not in SUBCOMMANDS:
        close = difflib.get_close_matches(sub, SUBCOMMANDS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        print(f"error: unknown subcommand '{sub}'; {hint}choose one of {', '.join(SUBCOMMANDS)} "
              f"(lprnet-data --help)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    module = importlib.import_module(f"{__name__}.{sub}")
    module.main([f"lprnet-data {sub}"] + args[1:])
