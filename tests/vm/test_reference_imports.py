"""The reference VM stays light: the CLI imports it without paying for Numba."""
from __future__ import annotations

import subprocess
import sys


def test_reference_does_not_import_numba():
    code = "import sys, gbpfd.vm.reference; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
