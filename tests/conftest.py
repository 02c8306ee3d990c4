"""Shared test set-up: the `gpu` marker skips, with its reason, where no GPU is present."""
from __future__ import annotations

import pytest


def _gpu_missing_reason() -> str | None:
    try:
        from numba import cuda
    except ImportError as err:
        return f"numba-cuda is not installed ({err})"
    try:
        if not cuda.is_available():
            return "no CUDA GPU or driver on this machine"
    except Exception as err:  # the driver probe itself can fail on odd set-ups
        return f"CUDA driver probe failed: {err}"
    return None


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    reason = _gpu_missing_reason()
    if reason:
        skip = pytest.mark.skip(reason=f"needs a GPU: {reason}")
        for item in gpu_items:
            item.add_marker(skip)
