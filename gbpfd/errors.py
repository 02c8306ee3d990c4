"""Errors for bad input: each names the place (file, line, column or
instruction index) and the reason, and prints as one line."""
from __future__ import annotations


class GbpfdError(Exception):
    """Base class; ``str(err)`` is the one-line message shown to users."""


class InputError(GbpfdError):
    """A file or byte string that cannot be read or parsed (CLI exit code 2)."""

    def __init__(self, reason: str, *, path: str | None = None, line: int | None = None,
                 column: int | None = None):
        self.reason, self.path, self.line, self.column = reason, path, line, column
        where = ":".join(str(p) for p in (path, line, column) if p is not None)
        super().__init__(f"{where}: {reason}" if where else reason)


class AsmError(InputError):
    """Assembler text that does not parse."""


class LoadError(InputError):
    """Bytecode or an ELF object that cannot be turned into a program."""


class FieldError(GbpfdError):
    """An encoded instruction field outside its bounds (raised by ``decode``)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)
