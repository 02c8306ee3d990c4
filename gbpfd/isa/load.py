"""Turn a file of any supported form into a Program: assembler text
(``.s``/``.asm``), a clang ``-target bpf`` object (ELF), or raw bytecode
(``.bin``, little-endian 8-byte slots)."""
from __future__ import annotations

from pathlib import Path

from gbpfd.errors import InputError, LoadError
from gbpfd.isa.abi import LIMITS
from gbpfd.isa.insn import SLOT, decode_bytes
from gbpfd.isa.program import Program

ELF_MAGIC = b"\x7fELF"
TEXT_SUFFIXES = (".s", ".asm")


def program_from_bytes(data: bytes, *, path: str = "<bytes>", hook: str | None = None) -> Program:
    """Raw bytecode: whole 8-byte slots only; it carries no maps or hook."""
    if not data:
        raise LoadError("empty program (0 bytes)", path=path)
    if len(data) % SLOT.size:
        raise LoadError(f"ragged byte count: {len(data)} bytes is not a multiple of {SLOT.size}",
                        path=path)
    if len(data) // SLOT.size > LIMITS.max_insns:
        raise LoadError(f"{len(data) // SLOT.size} slots, more than the {LIMITS.max_insns} a program may have",
                        path=path)
    return Program(tuple(decode_bytes(data)), hook=hook, name=Path(path).stem, source=path)


def load_program(path: str | Path, *, section: str | None = None) -> Program:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror}", path=str(path)) from None
    if data.startswith(ELF_MAGIC):
        from gbpfd.isa.elf import load_elf
        return load_elf(path, section=section)
    if path.suffix in TEXT_SUFFIXES:
        from gbpfd.isa.asm import assemble
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"not UTF-8 text (byte {err.start})", path=str(path)) from None
        return assemble(text, str(path))
    if path.suffix == ".bin":
        return program_from_bytes(data, path=str(path))
    raise InputError(f"unknown file type {path.suffix or '(no suffix)'!r}: expected .s/.asm "
                     "(assembler text), .bin (raw bytecode) or an ELF object (.o)", path=str(path))
