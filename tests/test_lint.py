"""The code is lint-clean and formatted (ruff, configured in pyproject.toml; `make format` fixes)."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

RUFF = Path(sys.executable).with_name("ruff")


def test_ruff_finds_nothing_to_fix_or_format():
    for command in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([str(RUFF), *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"ruff {' '.join(command)}:\n{proc.stdout[-3000:]}{proc.stderr[-1000:]}"
