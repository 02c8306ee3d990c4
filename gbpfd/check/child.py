"""One stage in its own process: ``python -m gbpfd.check.child TARGET
BACKEND OUT RESULT``.  Runs the stage function and writes its outcome as
JSON to RESULT; a stage that hangs or kills the process writes nothing,
and the runner records that instead."""
from __future__ import annotations

import faulthandler
import importlib
import json
import sys
import traceback
from pathlib import Path

from gbpfd.check.stage import StageContext, StageSkip


def run_target(target: str, ctx: StageContext) -> dict:
    module, function = target.split(":", 1)
    try:
        getattr(importlib.import_module(module), function)(ctx)
    except StageSkip as why:
        return {"status": "skip", "reason": str(why)}
    except BaseException as err:  # the stage's own failure, whatever it is: recorded, never re-raised
        traceback.print_exc()
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return {"status": "fail", "reason": f"{type(err).__name__}: {first}".rstrip(": ")}
    return {"status": "pass", "reason": None}


def main(argv: list[str]) -> int:
    target, backend, out, result = argv
    faulthandler.enable()  # a crash in native code still leaves a traceback in the output
    ctx = StageContext(backend=backend, out=Path(out))
    outcome = run_target(target, ctx)
    outcome.update(figures=ctx.figures, notes=ctx.notes)
    Path(result).write_text(json.dumps(outcome))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
