"""Compile the shared device source for one target.

The shared functions call the primitives (``load_acquire``, ``atomic_add``,
...) and each other by their global names.  ``specialize`` clones every
function with one globals table that binds those names to the target's
primitives and to the target's compiled siblings, so one source yields the
GPU, simulated-device and CUDA-simulator versions with no edits and no
per-target copy.  Compilation stays lazy: the table is complete before the
first call, when Numba resolves the globals.
"""
from __future__ import annotations

import types
from types import SimpleNamespace


def specialize(functions, prims: dict, jit, extra: dict | None = None, tag: str = "") -> SimpleNamespace:
    """``functions``: plain Python functions (from any modules); ``prims``
    and ``extra`` bind further names (already-compiled functions).  ``tag``
    is appended to every qualified name: Numba's on-disk cache is keyed on
    it, so a tag that changes with the sources it depends on keeps a cached
    build from outliving them."""
    table: dict = {}
    for fn in functions:
        table.update(fn.__globals__)
    table.update(prims)
    table.update(extra or {})
    compiled = {}
    for fn in functions:
        clone = types.FunctionType(fn.__code__, table, fn.__name__, fn.__defaults__, fn.__closure__)
        clone.__qualname__ = fn.__qualname__ + tag
        clone.__module__ = fn.__module__
        compiled[fn.__name__] = jit(clone)
    table.update(compiled)
    return SimpleNamespace(**compiled)
