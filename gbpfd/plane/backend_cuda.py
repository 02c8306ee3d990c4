"""The plane on a CUDA GPU: device arrays, the pinned and mapped host area,
and the persistent control kernel on its own non-blocking stream.

GPU-only: nothing here runs without a GPU (tests marked ``gpu``).  Work
launched on the legacy default stream does not wait for a non-blocking
stream, so the resident control kernel never blocks ordinary launches; a
device-wide ``cuda.synchronize()`` would wait for it, so the plane's users
synchronise streams instead.  Device memory is not freed while the
control kernel is resident (``cuda.defer_cleanup``), and modules load
eagerly (gbpfd.plane.gpu_probe.load_modules_eagerly): both a
free and a lazy module load can synchronise the whole context.
"""
from __future__ import annotations

import time

import numpy as np

from gbpfd.bridge.layout import HEADER, REGION
from gbpfd.device import state as S
from gbpfd.plane.arrays import PlaneArrays, set_sms
from gbpfd.plane.options import PlaneOptions

POLL_S = 0.0002


def non_blocking_stream(cuda, priority: int | None = None):
    """A stream that never waits for the legacy default stream (so never for the
    resident control kernel), of ``priority`` when given (CUDA's numbers: lower
    is more urgent).  numba-cuda's ``cuda.stream()`` takes neither, so the
    driver makes it and numba wraps it.  Safe from any thread: the driver call
    needs a current context, which a new thread does not have until numba
    binds the device's primary context to it."""
    from cuda.bindings import driver
    cuda.current_context()
    flags = int(driver.CUstream_flags.CU_STREAM_NON_BLOCKING)
    if priority is None:
        err, handle = driver.cuStreamCreate(flags)
    else:
        err, handle = driver.cuStreamCreateWithPriority(flags, priority)
    if err != driver.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"cuStreamCreate(non-blocking, priority {priority}) failed: {err}")
    return cuda.external_stream(int(handle))


def stream_priority_range() -> tuple[int, int]:
    """(least, greatest) stream priority of the current context, in CUDA's numbers (greatest is the lowest)."""
    from cuda.bindings import driver
    err, least, greatest = driver.cuCtxGetStreamPriorityRange()
    if err != driver.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"cuCtxGetStreamPriorityRange failed: {err}")
    return least, greatest


def wait_for_stream(stream, timeout_s: float, what: str) -> None:
    """Wait until the work on ``stream`` is done, at most ``timeout_s``
    (``stream.synchronize()`` has no bound: a control kernel that never ends
    would hold the caller forever)."""
    deadline = time.monotonic() + timeout_s
    while not stream.query():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout_s} s")
        time.sleep(POLL_S)


#: non-blocking streams each persistent launch may put top-up workers on (a top-up grid on a stream
#: waits for the one before it there: more top-ups than streams start as earlier ones end)
TOPUP_STREAMS = 4


class LaunchWords:
    """Device words for persistent launches (each launch's next-block
    counter) and the streams its top-up workers go on, made before the
    plane starts: allocating while the control kernel is resident may
    synchronise the context."""

    def __init__(self, cuda, count: int, make_stream):
        self.words = cuda.to_device(np.zeros(count, np.int64))
        self.streams = [[make_stream() for _ in range(TOPUP_STREAMS)] for _ in range(count)]
        self._free = list(range(count))

    def take(self):
        """One zeroed word (a one-element device array) and its top-up
        streams, or None when all are in use."""
        if not self._free:
            return None
        i = self._free.pop()
        word = self.words[i:i + 1]
        word.copy_to_device(np.zeros(1, np.int64))
        return word, self.streams[i], i

    def give(self, i: int) -> None:
        self._free.append(i)


class CudaBackend:
    name = "cuda"

    def __init__(self, arrays: PlaneArrays, options: PlaneOptions):
        from numba import cuda
        self.cuda = cuda
        self.arrays = arrays
        dev = cuda.get_current_device()
        self.gpu_name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        self.sms = dev.MULTIPROCESSOR_COUNT
        set_sms(arrays, self.sms, f"CudaBackend ({self.gpu_name})")
        self.total_slots = options.cta_slots or (self.sms - 1) * options.slots_per_sm
        self.heartbeat_timeout_ns = int(options.heartbeat_timeout_ms * 1e6)
        self.ack_timeout_s = options.ack_timeout_s
        # nothing was launched before start, and the launchers in gbpfd.admission report every completion
        arrays.host[REGION.finished:REGION.finished + S.MAX_TENANTS] = arrays.host[REGION.demand:REGION.demand
                                                                                  + S.MAX_TENANTS]
        mapped = cuda.mapped_array(arrays.host.shape, np.int64)
        mapped[:] = arrays.host
        arrays.host = mapped  # the rings and the publisher bind to the mapped area from here on
        self.control_stream = non_blocking_stream(cuda)
        self.copy_stream = non_blocking_stream(cuda)
        self.d = {name: cuda.to_device(getattr(arrays, name), stream=self.copy_stream)
                  for name in ("ctl", "code", "flat", "desc", "vmout")}  # the VM's registers: shared memory
        self.launch_words = LaunchWords(cuda, options.persistent_launches, lambda: non_blocking_stream(cuda))
        self.copy_stream.synchronize()
        self._started_at = time.monotonic_ns()
        self._beat = (0, self._started_at)

    @property
    def device(self):
        """The device arrays, by name (``ctl``, ``flat``...), for gated kernels."""
        return self.d

    def describe(self) -> str:
        return f"{self.gpu_name}, {self.sms} SMs, {self.total_slots} worker CTA slots"

    def device_args(self) -> tuple:
        d = self.d
        return d["ctl"], self.arrays.host, d["code"], d["flat"].view(np.uint8), d["flat"], d["desc"], d["vmout"]

    def start(self) -> None:
        from gbpfd.cuda_toolchain import cache_if_asked
        from gbpfd.device.kernels_cuda import CONTROL_THREADS, control_kernel
        cache_if_asked(control_kernel)
        self._load_worker_kernels()
        # cuMemFree synchronises the context, which would wait for the resident control kernel
        self._deferred = self.cuda.defer_cleanup()
        self._deferred.__enter__()
        try:
            control_kernel[1, CONTROL_THREADS, self.control_stream](*self.device_args())
        except BaseException:
            self._deferred.__exit__(None, None, None)
            raise

    def _load_worker_kernels(self) -> None:
        """Load the plane's own worker-side kernels (paced_copy's) before the
        control kernel is resident: loading a module waits for the GPU's work
        to drain, which the control kernel never does."""
        from gbpfd.device.admit_kernels import paced_copy_kernel
        spare = self.cuda.device_array(1, np.int64)
        args = (spare, spare, 0, spare, spare, 1)  # ctl, flat, tenant, dst, src, chunk words
        paced_copy_kernel.compile(tuple(paced_copy_kernel.typeof_pyval(a) for a in args)).bind()

    def staged(self, hook: int, slot: int) -> None:
        """Copy an idle program slot to the device before the swap command."""
        a, d, s = self.arrays, self.d, self.copy_stream
        d["code"][hook, slot].copy_to_device(a.code[hook, slot], stream=s)
        d["desc"][hook, slot].copy_to_device(a.desc[hook, slot], stream=s)
        lo = (S.MAPS_AT + (hook * S.NPROG_SLOTS + slot) * S.MAP_AREA_BYTES) // 8
        hi = lo + S.MAP_AREA_BYTES // 8
        d["flat"][lo:hi].copy_to_device(a.flat[lo:hi], stream=s)
        s.synchronize()

    def after(self, stream, fn) -> None:
        """Call ``fn()`` on a driver thread once the work queued on ``stream`` (a Numba stream, 0 for the
        default one, or a CuPy stream) is done; ``fn`` must make no CUDA call."""
        if hasattr(stream, "launch_host_func"):  # CuPy's
            stream.launch_host_func(lambda _arg: fn(), None)
            return
        on = self.cuda.default_stream() if stream == 0 else stream
        on.add_callback(lambda _stream, _status, _arg: fn())

    def tenant_words(self, t: int):
        """A copy of tenant ``t``'s control words (state.TENANT), made on the copy stream (bounded)."""
        lo = S.TENANT_BASE + t * S.TENANT_STRIDE
        host = np.empty(S.TENANT_STRIDE, np.int64)
        self.d["ctl"][lo:lo + S.TENANT_STRIDE].copy_to_host(host, stream=self.copy_stream)
        wait_for_stream(self.copy_stream, self.ack_timeout_s, "the copy of a tenant's control words")
        return host

    def ctl_words(self):
        """A copy of the device's control words, made on the copy stream (bounded)."""
        host = np.empty_like(self.arrays.ctl)
        self.d["ctl"].copy_to_host(host, stream=self.copy_stream)
        wait_for_stream(self.copy_stream, self.ack_timeout_s, "the copy of the control words")
        return host

    def notify_command(self) -> None:
        """The mapped host area is polled by the control CTA: nothing to do."""

    def wait(self, done, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
        return True

    def device_now(self) -> int:
        """Host monotonic ns since start (the device clock is not readable from the host)."""
        return time.monotonic_ns() - self._started_at

    def heartbeat_age_ns(self) -> int:
        """Host time since the heartbeat word last changed."""
        beat = int(self.arrays.host[HEADER.heartbeat_ns])
        now = time.monotonic_ns()
        if beat != self._beat[0]:
            self._beat = (beat, now)
        return now - self._beat[1]

    def stalled(self, heartbeat_age_ns: int) -> bool:
        return heartbeat_age_ns > self.heartbeat_timeout_ns

    def close(self, stopped: bool) -> None:
        if stopped:
            wait_for_stream(self.control_stream, self.ack_timeout_s, "the control kernel, after it acknowledged stop,")
            self._deferred.__exit__(None, None, None)
            for name in ("ctl", "flat"):
                self.d[name].copy_to_host(getattr(self.arrays, name))
