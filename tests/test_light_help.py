"""`scsa-yolo --help` and `scsa-yolo SUB --help` import neither torch nor Ultralytics (a user's first command is fast).

Each subcommand is checked in its own fresh interpreter with the start-up hook on, as a user runs it.
"""

import subprocess
import sys

import pytest

from scsa_yolo.cli import SUBCOMMANDS

PROBE = (
    "import contextlib, io, sys, scsa_yolo_command\n"
    "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
    "    scsa_yolo_command.main(sys.argv[1:])\n"
    "assert 'usage: scsa-yolo' in out.getvalue(), out.getvalue()\n"
    "print([m for m in ('torch', 'ultralytics') if m in sys.modules])"
)


@pytest.mark.parametrize("argv", [["--help"], *([name, "--help"] for name in SUBCOMMANDS)], ids=" ".join)
def test_help_imports_neither_torch_nor_ultralytics(argv):
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"
