"""Where the language-neutral data files (``isa/``, ``quotas/``, ...) live.

In a source checkout or editable install they sit beside the package at the
repository root; a built wheel carries them inside the package under
``gbpfd/_shared`` (see ``pyproject.toml``).
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shared_file(*parts: str) -> Path:
    for root in (_PACKAGE / "_shared", _PACKAGE.parent):
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"gbpfd data file {'/'.join(parts)} is missing from this installation")
