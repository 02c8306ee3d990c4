"""Kernel bodies the compile stage wraps as the decorator would (device
code: numba-cuda resolves ``cuda`` as a module global)."""
from numba import cuda


def scale(x, factor):
    i = cuda.grid(1)
    if i < x.shape[0]:
        x[i] *= factor


def scale_block(block, x, factor):
    i = block * cuda.blockDim.x + cuda.threadIdx.x
    if i < x.shape[0]:
        x[i] *= factor


def mark_cta(marks):
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(marks, cuda.blockIdx.x, 1)
