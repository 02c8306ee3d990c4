"""The GPU backend's host-side parts that need no GPU: the persistent
launches' device words and top-up streams, made before the plane starts
and handed out without allocating; the bounded stream wait."""
from __future__ import annotations

import numpy as np
import pytest

from gbpfd.plane.backend_cuda import TOPUP_STREAMS, LaunchWords, wait_for_stream


class FakeDeviceArray:
    """Enough of a numba device array: slicing gives a view, copies write through."""

    def __init__(self, host: np.ndarray):
        self.host = host

    def __getitem__(self, index):
        return FakeDeviceArray(self.host[index])

    def copy_to_device(self, values):
        self.host[...] = values


class FakeCuda:
    allocations = 0

    def to_device(self, values):
        FakeCuda.allocations += 1
        return FakeDeviceArray(values.copy())


def test_launch_words_are_made_once_and_handed_out_zeroed_until_none_is_left():
    cuda = FakeCuda()
    streams = iter(range(1000))
    words = LaunchWords(cuda, 2, lambda: next(streams))
    made = FakeCuda.allocations
    (a, mine, i), (_, theirs, j) = words.take(), words.take()
    assert {i, j} == {0, 1} and words.take() is None
    assert len(mine) == TOPUP_STREAMS and not set(mine) & set(theirs)  # each launch its own top-up streams
    a.copy_to_device(np.array([7]))
    words.give(i)
    again, same, k = words.take()
    assert k == i and again.host[0] == 0 and same == mine  # zeroed for its next launch
    assert FakeCuda.allocations == made and next(streams) == 2 * TOPUP_STREAMS  # nothing made after start


class Stream:
    def __init__(self, done_after: int):
        self.polls, self.done_after = 0, done_after

    def query(self) -> bool:
        self.polls += 1
        return self.polls > self.done_after


def test_wait_for_stream_returns_when_done_and_names_what_did_not_finish():
    wait_for_stream(Stream(3), 5.0, "the copy")
    with pytest.raises(TimeoutError, match="^the control kernel did not finish within 0.01 s$"):
        wait_for_stream(Stream(10 ** 9), 0.01, "the control kernel")


def test_a_non_blocking_stream_binds_the_threads_context_before_the_driver_call(monkeypatch):
    pytest.importorskip("cuda.bindings", reason="cuda-bindings is not installed")
    import threading

    from cuda.bindings import driver

    from gbpfd.plane.backend_cuda import non_blocking_stream
    calls = []

    class Cuda:
        def current_context(self):
            calls.append(("context", threading.get_ident()))

        def external_stream(self, handle):
            return ("stream", handle)

    def create(flags):
        calls.append(("create", threading.get_ident()))
        return driver.CUresult.CUDA_SUCCESS, 1234
    monkeypatch.setattr(driver, "cuStreamCreate", create)
    made = []
    worker = threading.Thread(target=lambda: made.append(non_blocking_stream(Cuda())))
    worker.start()
    worker.join()
    assert made == [("stream", 1234)]
    assert [c[0] for c in calls] == ["context", "create"] and calls[0][1] == calls[1][1] != threading.get_ident()
