"""The simulated device: the plane's device code, compiled with numba.njit,
inside a CPU model of a GPU (SMs with per-SM residency and a placement
rule, co-resident blocks sharing an SM's issue rate and HBM bandwidth, the
control CTA's loop, memory visibility latencies, a copy engine; see
docs/simulator.md).  Every figure it produces is a simulated figure and is
labelled as one."""
