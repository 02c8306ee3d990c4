"""Stages that misbehave on purpose, for the runner's tests (imported by the
stage's child process through PYTHONPATH)."""
import os
import signal
import subprocess
import sys
import time

from gbpfd.check.stage import StageSkip


def ok(ctx):
    print("measuring", flush=True)
    ctx.figure("answer", 42, "units", samples=3)
    ctx.note("all well")
    (ctx.out / "ok.txt").write_text("x")


def hang(ctx):
    # a grandchild that keeps the output pipe open: the whole group must go
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("about to hang", flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # so that only SIGKILL ends it
    time.sleep(600)


def crash(ctx):
    print("about to crash", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)


def fail(ctx):
    raise AssertionError("the device counted 2 admissions, expected 1")


def skip(ctx):
    raise StageSkip("needs a GPU: none here")
