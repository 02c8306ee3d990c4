"""``gbpfd.admit``: put a kernel under the plane's admission control.

Gate mode wraps an unchanged kernel: each CTA passes ``cta_enter`` before
its body and ``cta_exit`` after (a waiting CTA holds its SM slot).
Persistent-worker mode launches as many worker CTAs as fit on the GPU;
each pulls logical blocks while admission grants them, so a denied tenant
holds no SM slot.  **Persistent mode needs one change to the kernel: it
takes its logical block index as its first parameter, ``block``, instead
of reading ``cuda.blockIdx``.**

A kernel that takes a parameter named ``gate`` gets it filled by the
plane (do not pass it); ``gbpfd.warp_gate(gate)`` in its loops is then a
yield point that honours the tenant's warp cap.

Admitted kernels run on the GPU backend.  On the simulated device, model
the same work with ``plane.device.launch(...)``.
"""
from __future__ import annotations

import inspect
import math
import time

import numpy as np

from gbpfd.device.topup import top_up_workers
from gbpfd.errors import GbpfdError

MODES = ("gate", "persistent")


class AdmitError(GbpfdError):
    """A kernel or launch the plane refuses, with what to change."""


def admit(plane, tenant: str, *, mode: str = "gate", workers: int | None = None):
    """Decorator: ``@gbpfd.admit(plane, tenant="train")`` above ``@cuda.jit``
    (or a plain function); launch as usual with ``kernel[grid, block](...)``
    (persistent mode: ``grid`` is the number of logical blocks).  A CuPy
    ``RawKernel`` is handed to ``gbpfd.admit_raw`` (gate mode)."""
    def wrap(kernel):
        if type(kernel).__module__.split(".")[0] == "cupy":
            from gbpfd.admission_cupy import AdmittedRawKernel
            return AdmittedRawKernel(plane, tenant, kernel, mode=mode)
        return AdmittedKernel(plane, tenant, kernel, mode=mode, workers=workers)
    return wrap


def grid_ctas(grid) -> int:
    """The CTAs of a Numba launch grid (an int, or a tuple of up to three)."""
    return math.prod(grid) if isinstance(grid, (tuple, list)) else int(grid)


def require_gpu_plane(plane, name: str) -> None:
    """Refuse, by name, what only a plane on a GPU can do."""
    if plane.simulated:
        raise AdmitError(f"{name}: admitted kernels run on the GPU backend; this plane is on the simulated device "
                         "(model the work with plane.device.launch(...))")


def require_running(plane, name: str) -> None:
    if not plane.running:
        raise AdmitError(f"{name}: the plane is not running; launch inside its with block (or after start())")


class AdmittedKernel:
    def __init__(self, plane, tenant: str, kernel, *, mode: str = "gate", workers: int | None = None):
        if mode not in MODES:
            raise AdmitError(f"admit: mode must be one of {', '.join(MODES)}; got {mode!r}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise AdmitError(f"admit: workers must be a positive integer, got {workers!r}")
        self.plane, self.mode, self.workers = plane, mode, workers
        self.tenant_index = plane.quotas.index(tenant)  # names the known tenants when it is missing
        self.tenant = tenant
        self.body = getattr(kernel, "py_func", kernel)
        self.params = list(inspect.signature(self.body).parameters)
        self.name = self.body.__name__
        if mode == "persistent":
            self._check_persistent()
        self._kernel = None

    def _check_persistent(self) -> None:
        if not self.params or self.params[0] != "block":
            raise AdmitError(f"admit(mode='persistent'): kernel {self.name!r} must take its logical block index "
                             f"as its first parameter, named 'block' (it takes: {', '.join(self.params) or 'none'})")
        if "blockIdx" in self.body.__code__.co_names:
            raise AdmitError(f"admit(mode='persistent'): kernel {self.name!r} reads cuda.blockIdx; in persistent "
                             "mode a worker CTA runs many logical blocks: use the 'block' parameter instead")

    def _compiled(self):
        if self._kernel is None:
            from gbpfd.device import admit_kernels
            if self.mode == "gate":
                self._kernel = admit_kernels.gate_kernel(self.body, self.params)
            else:
                self._kernel = admit_kernels.persistent_kernel(self.body, self.params[1:])
        return self._kernel

    def __getitem__(self, config):
        if not isinstance(config, tuple) or len(config) not in (2, 3):
            raise AdmitError(f"{self.name}[...]: give [grid, block] or [grid, block, stream]; got {config!r}")
        return lambda *args: self.launch(*config, *args) if len(config) == 3 else self.launch(
            config[0], config[1], 0, *args)

    def launch(self, grid, block, stream, *args):
        require_gpu_plane(self.plane, self.name)
        require_running(self.plane, self.name)
        self._check_count(args)
        d = self.plane.device
        self._require_loaded(self._plane_args(d["ctl"], d["flat"]), args)
        if self.mode == "gate":
            self.plane.announce_launch(self.tenant_index, grid_ctas(grid))
            self._compiled()[grid, block, stream](d["ctl"], d["flat"], self.tenant_index, *args)
            self.plane.report_when_done(self.tenant_index, stream)
            return None
        return self._run_persistent(int(grid), block, stream, args)

    def preload(self, *args) -> None:
        """Compile this kernel for a launch with ``args`` (its own arguments)
        and load it on the GPU.  Call it before the plane starts: loading a
        module waits for the GPU's work to drain, and the control kernel never
        drains, so a launch whose kernel is not loaded yet is refused."""
        require_gpu_plane(self.plane, f"{self.name}.preload")
        from numba import cuda
        self._check_count(args)
        spare = cuda.device_array(1, np.int64)
        # compile() binds a kernel it builds, not one it finds in the disk cache
        self._compiled().compile(self._argtypes(self._plane_args(spare, spare), args)).bind()

    def _check_count(self, args) -> None:
        nbody = len([p for p in self.params if p not in ("block", "gate")])
        if len(args) != nbody:
            raise AdmitError(f"{self.name}: takes {nbody} arguments, got {len(args)}")

    def _plane_args(self, ctl, flat) -> tuple:
        """The arguments the wrapper takes before the body's (persistent: a
        stand-in for next_block, then nblocks and force)."""
        if self.mode == "gate":
            return ctl, flat, self.tenant_index
        return ctl, flat, self.tenant_index, ctl, 0, 0

    def _argtypes(self, plane_args: tuple, args: tuple) -> tuple:
        kernel = self._compiled()
        return tuple(kernel.typeof_pyval(a) for a in (*plane_args, *args))

    def _require_loaded(self, plane_args: tuple, args: tuple) -> None:
        types = self._argtypes(plane_args, args)
        if types not in self._compiled().overloads:
            body = ", ".join(map(str, types[len(plane_args):]))
            raise AdmitError(f"{self.name}: not loaded for arguments of types ({body}); call {self.name}.preload(...) "
                             "with such arguments before the plane starts (loading a module while the control kernel "
                             "is resident would wait for it forever)")

    def _run_persistent(self, nblocks: int, block, stream, args):
        taken = self.plane._backend.launch_words.take()
        if taken is None:
            raise AdmitError(f"{self.name}: {self.plane.options.persistent_launches} persistent launches are already "
                             "running; raise PlaneOptions.persistent_launches (the words are made before the plane "
                             "starts)")
        next_block, topup_streams, i = taken
        try:
            return self._run_workers(nblocks, block, stream, args, next_block, topup_streams)
        finally:
            self.plane._backend.launch_words.give(i)

    def _run_workers(self, nblocks: int, block, stream, args, next_block, topup_streams):
        kernel = self._compiled()
        d = self.plane.device
        compiled = kernel.compile(self._argtypes((d["ctl"], d["flat"], self.tenant_index, next_block, nblocks, 0),
                                                 args))
        # the control CTA's SM is not the workers': one SM's worth less
        per_sm = compiled.max_cooperative_grid_blocks(block) // self.plane.device_sms  # the kernel's occupancy
        fit = per_sm * (self.plane.device_sms - 1)
        workers = self.workers or fit
        if workers > fit:
            raise AdmitError(f"{self.name}: {workers} worker CTAs of {block} threads cannot be co-resident beside "
                             f"the control CTA (at most {fit} fit); lower workers= or the block size")
        self.plane.announce_launch(self.tenant_index, nblocks)
        try:
            self._serve_blocks(nblocks, block, stream, args, next_block, (workers, per_sm), topup_streams)
        finally:
            self.plane.launch_finished(self.tenant_index)
        return nblocks

    def _serve_blocks(self, nblocks: int, block, stream, args, next_block, sizing: tuple, topup_streams) -> None:
        """Launch the workers until every logical block has run.  While a
        wave runs, every ``topup_poll_us`` the tenant's tokens that its
        workers on SMs leave unused (a raised allowance, a tenant gone) get
        as many more workers as the SMs it may use have room for
        (gbpfd.device.topup), up to ``workers``, on the top-up streams.
        ``sizing``: (workers, the kernel's CTAs per SM).
        When every worker of a wave was denied, launch it again; past the
        defer bound without progress, force the rest through (counted as
        bypasses)."""
        from numba import cuda
        kernel = self._compiled()
        d = self.plane.device
        on = cuda.default_stream() if stream == 0 else stream
        bound_s = self.plane.options.defer_bound_us * 1e-6
        poll_s = self.plane.options.topup_poll_us * 1e-6
        done = stalled_since = 0
        force = 0
        workers, per_sm = sizing

        def grid(n: int, where) -> object:
            kernel[n, block, where](d["ctl"], d["flat"], self.tenant_index, next_block, nblocks, force, *args)
            ended = cuda.event(timing=False)
            ended.record(where)
            return ended

        ready = cuda.event(timing=False)
        ready.record(on)
        for s in topup_streams:
            ready.wait(s)  # top-ups start only after the work queued on the caller's stream before this launch
        while done < nblocks:
            wave = [grid(workers, on)]
            # never synchronise the device or block on the stream: it would wait for the resident control kernel
            while not all(ended.query() for ended in wave):
                time.sleep(poll_s)
                if not force:
                    self._top_up(wave, workers, per_sm,
                                 lambda n: grid(n, topup_streams[len(wave) % len(topup_streams)]))
            now_done = min(int(next_block.copy_to_host()[0]), nblocks)
            if now_done > done:
                done, stalled_since, force = now_done, 0, 0
                continue
            stalled_since = stalled_since or time.monotonic()
            # every worker was denied: after the defer bound, the rest runs past the plane (counted as bypasses)
            force = 1 if time.monotonic() - stalled_since > bound_s else 0

    def _top_up(self, wave: list, workers: int, per_sm: int, launch) -> None:
        """Launch workers for the tokens the tenant holds but its workers on SMs leave unused."""
        words = self.plane._backend.tenant_words(self.tenant_index)
        spare = top_up_workers(words, workers, per_sm, self.plane.quotas.tenants[self.tenant_index].max_ctas_per_sm)
        if spare > 0:
            wave.append(launch(spare))


def paced_copy(plane, dst, src, tenant: str, *, chunk_bytes: int = 256 << 10, ctas: int = 32, stream=0):
    """Copy device array ``src`` into ``dst`` (same shape, 8-byte elements)
    in chunks, each gated by the tenant's byte tokens (refilled by dma_tick)."""
    if plane.simulated:
        raise AdmitError("paced_copy runs on the GPU backend; on the simulated device use plane.device.copy(...)")
    if src.shape != dst.shape or src.dtype.itemsize != 8 or dst.dtype.itemsize != 8:
        raise AdmitError(f"paced_copy: src and dst must have the same shape and 8-byte elements; got {src.shape} "
                         f"{src.dtype} and {dst.shape} {dst.dtype}")
    t = plane.quotas.index(tenant)
    if plane.quotas.tenants[t].dma_bytes_per_epoch == 0:
        raise AdmitError(f"paced_copy: tenant {tenant!r} has dma_bytes_per_epoch = 0; give it a DMA quota")
    from gbpfd.device.admit_kernels import paced_copy_kernel
    d = plane.device
    paced_copy_kernel[ctas, 256, stream](d["ctl"], d["flat"], t, dst.reshape(-1).view(np.int64),
                                         src.reshape(-1).view(np.int64), max(chunk_bytes // 8, 1))
