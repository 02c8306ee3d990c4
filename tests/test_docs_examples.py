"""Every Python example in the README and docs/ runs (from the repository root)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"```python\n(.*?)```", re.S)
#: examples that need a GPU say so in their first line
GPU_MARK = "# needs a GPU"


def _examples():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, code in enumerate(FENCE.findall(doc.read_text())):
            yield pytest.param(code, id=f"{doc.name}-{n}",
                               marks=[pytest.mark.gpu] if code.startswith(GPU_MARK) else [])


@pytest.mark.parametrize("code", list(_examples()))
def test_example_runs(code, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    exec(compile(code, "<example>", "exec"), {"__name__": "__example__"})  # noqa: S102 - our own docs
    assert capsys.readouterr().out.strip(), "an example should show its result"
