"""The case-file format shared by the assembler, VM and verifier tests.

``=== title`` starts a case and ``-- section`` a section in it (the
bpf_conformance sections asm, mem, result, error, plus our own); text before
the first case is a comment.  Sections come back as text with the blank
lines around them stripped.
"""
from __future__ import annotations

from pathlib import Path


def load_cases(path: Path) -> list[tuple[str, dict[str, str]]]:
    cases: list[tuple[str, dict[str, list[str]]]] = []
    section = None
    for line in path.read_text().splitlines():
        if line.startswith("=== "):
            cases.append((line[4:].strip(), {}))
            section = None
        elif line.startswith("-- ") and cases:
            section = line[3:].strip()
            cases[-1][1][section] = []
        elif section is not None:
            cases[-1][1][section].append(line)
    return [(title, {k: "\n".join(v).strip("\n") for k, v in sections.items()})
            for title, sections in cases]
