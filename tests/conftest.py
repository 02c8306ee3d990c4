"""Shared test set-up: the `gpu` marker skips, with its reason, where no GPU is present."""
from __future__ import annotations

import pytest

from gbpfd.plane.gpu_probe import gpu_missing_reason


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    reason = gpu_missing_reason()
    if reason:
        skip = pytest.mark.skip(reason=f"needs a GPU: {reason}")
        for item in gpu_items:
            item.add_marker(skip)
