"""The simulated device: the plane's device code, compiled with numba.njit,
inside a CPU model of a GPU (SMs with CTA slots, the control CTA's loop,
memory visibility latencies, a copy engine).  Every figure it produces is
a simulated figure and is labelled as one."""
