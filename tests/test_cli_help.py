"""Every console script's ``--help`` shows its docstring and every one of its flags, also when run
through pip's wrapper script (``__main__`` is then the wrapper, not the command module)."""

import ast
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = re.findall(r'"(lprnet-[a-z]+)=([a-z_.]+):main"', open(os.path.join(REPO, "setup.py"), encoding="utf-8").read())


def test_every_command_is_listed():
    assert {c for c, _ in SCRIPTS} >= {"lprnet-train", "lprnet-evaluate", "lprnet-export", "lprnet-recognize",
                                       "lprnet-serve", "lprnet-synth", "lprnet-data", "lprnet-info", "lprnet-demo",
                                       "lprnet-package"}


@pytest.mark.parametrize("command,module", [s for s in SCRIPTS if s[0] != "lprnet-data"])
def test_console_script_help_lists_the_flags(command, module):
    """Run like the installed wrapper: argv[0] is the script path, __main__ has no docstring."""
    code = (f"import sys; sys.argv = ['/venv/bin/{command}', '--help']; "
            f"from {module} import main; sys.exit(main())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-2000:]
    src = open(os.path.join(REPO, *module.split(".")) + ".py", encoding="utf-8").read()
    defined = re.findall(r'flags\.DEFINE_[a-z_]+\(\s*"([a-z_0-9]+)"', src)
    assert defined, f"{module} defines no flags?"
    for name in defined:
        assert re.search(rf"--(\[no\])?{name}\b", out), f"{command} --help does not list --{name}"
    doc = ast.get_docstring(ast.parse(src))
    assert doc and doc.splitlines()[0] in out, f"{command} --help does not show its docstring"
