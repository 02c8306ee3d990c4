"""Device code: the control CTA's loop body and the worker gates.

The logic is written once as plain Numba-compatible functions over arrays
(``control``, ``gates``, ``ringbuf``) and compiled for a target by
``gbpfd.specialize`` (see ``build``): the GPU (``cuda.jit(device=True)`` with the primitives of
``prims_cuda``), the simulated device (``numba.njit`` with ``prims_cpu``)
and the Numba CUDA simulator (``prims_cudasim``).  Host code lives
elsewhere: while a simulated kernel runs, the CUDA simulator swaps the
module global ``cuda`` of the kernel's module.
"""
