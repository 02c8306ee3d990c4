"""The assembler: uBPF / bpf_conformance text to a ``Program``.

The grammar comes from the table: a mnemonic names candidate rows
(``BY_MNEMONIC``), the syntactic shape of each operand picks among them
(``add %r1, 5`` is alu_k, ``add %r1, %r2`` alu_x), and one parser per operand
kind fills the fields.  Labels are resolved in a second pass, once every
instruction's slot index is known.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from gbpfd.errors import AsmError
from gbpfd.isa.abi import HELPER_BY_NAME, HOOKS, LIMITS, MAP_KINDS
from gbpfd.isa.disasm import NAME_RE
from gbpfd.isa.insn import NREGS, Insn, _unsupported_message
from gbpfd.isa.program import MapDef, Program
from gbpfd.isa.table import BY_MNEMONIC, FIELDS, Row, unsupported_reason

_LABEL_DEF = re.compile(r"\s*(" + NAME_RE.pattern + r")\s*:(?=\s|$)")
_WORD = re.compile(r"\S+")
_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")
_REG = re.compile(r"%?r([0-9]+)")
_MEM = re.compile(r"\[\s*(\S+?)\s*(?:([-+])\s*(\S+?))?\s*\]")
_MAP_REF = re.compile(r"(#[-+]?[0-9]+|" + NAME_RE.pattern + r")")
_RAW = re.compile(r"0[xX][0-9a-fA-F]{16}")
_MAP_SIZE = re.compile(r"(value_size|max_entries)=(\S*)")

#: the bpf_conformance assembler's other spellings of gbpfd mnemonics (the disassembler prints gbpfd's)
ALIASES = {"bswap16": "swap16", "bswap32": "swap32", "bswap64": "swap64"}
#: that assembler's label for the program's first ``exit``, used when the program defines no ``exit:``
IMPLICIT_EXIT_LABEL = "exit"
#: mnemonics of the bpf_conformance suite outside gbpfd's groups -> an opcode they encode (RFC 9669:
#: BPF_STX | BPF_ATOMIC | BPF_DW; BPF_JMP | BPF_CALL | BPF_X), whose table entry says why it is refused
_UNSUPPORTED_OPCODE = {"lock": 0xdb, "callx": 0x8d}

# operand kind -> syntactic shape it takes
_SHAPE = {"dst": "reg", "src": "reg", "imm": "plain", "off": "plain", "imm64": "plain",
          "helper": "plain", "target32": "plain", "mem_src": "mem", "mem_dst": "mem",
          "map": "map", "map_value": "map_value", "local": "local"}
_SHAPE_WORDS = {"reg": "a register", "plain": "an integer or label", "mem": "a memory operand [%rN+off]",
                "map": "map:NAME", "map_value": "map_value:NAME+OFF", "local": "local LABEL or local +N"}
_KIND_WORDS = {"imm": "an integer", "imm64": "an integer", "helper": "a helper id or name",
               "off": "a jump offset or label", "target32": "a jump offset or label"}


@dataclass(frozen=True)
class Token:
    text: str
    line: int
    column: int  # 1-based

    def at(self, start: int, text: str) -> "Token":
        """The part of this token that starts ``start`` characters in."""
        return Token(text, self.line, self.column + start)


@dataclass(frozen=True)
class _Pending:
    """An instruction whose row is chosen but whose labels are not resolved yet."""

    row: Row
    operands: tuple[Token, ...]
    slot: int
    line: int


class _Context:
    def __init__(self, path: str):
        self.path = path
        self.labels: dict[str, tuple[int, int]] = {}  # name -> (slot, line)
        self.map_defs: dict[str, tuple[int, MapDef]] = {}  # name -> (index, map)
        self.pending: list[_Pending | tuple[Insn, int]] = []
        self.slots = 0
        self.first_exit: int | None = None  # slot of the first exit, for IMPLICIT_EXIT_LABEL
        self.hook: str | None = None
        self.name: str | None = None

    def error(self, token: Token, reason: str) -> AsmError:
        return AsmError(reason, path=self.path, line=token.line, column=token.column)


def assemble(text: str, path: str = "<asm>") -> Program:
    """Assemble ``text``; bad input raises one ``AsmError`` naming path:line:column."""
    ctx = _Context(path)
    for number, line in enumerate(text.splitlines(), start=1):
        _parse_line(ctx, line, number)
    insns: list[Insn] = []
    lines: list[int] = []
    for item in ctx.pending:
        if isinstance(item, tuple):
            insn, line = item
            insns.append(insn)
            lines.append(line)
        else:
            encoded = _encode(ctx, item)
            insns.extend(encoded)
            lines.extend([item.line] * len(encoded))
    maps = tuple(m for _, m in sorted(ctx.map_defs.values(), key=lambda pair: pair[0]))
    return Program(tuple(insns), maps, ctx.hook, ctx.name or "prog", path, tuple(lines))


# ------------------------------------------------------------------ lines

def _strip_comment(line: str) -> str:
    """Cut at the first ``#`` that is not part of a ``map:#IDX`` reference."""
    for match in re.finditer("#", line):
        if not line[:match.start()].endswith(":"):
            return line[:match.start()]
    return line


def _parse_line(ctx: _Context, line: str, number: int) -> None:
    body = _strip_comment(line)
    pos = 0
    label = _LABEL_DEF.match(body)
    if label:
        _define_label(ctx, Token(label.group(1), number, label.start(1) + 1))
        pos = label.end()
    word = _WORD.search(body, pos)
    if not word:
        return
    head = Token(word.group(), number, word.start() + 1)
    rest = Token(body[word.end():], number, word.end() + 1)
    if head.text.startswith("."):
        _directive(ctx, head, rest)
    else:
        _instruction(ctx, head, _split_operands(ctx, rest))


def _define_label(ctx: _Context, token: Token) -> None:
    if token.text in ctx.labels:
        first = ctx.labels[token.text][1]
        raise ctx.error(token, f"duplicate label '{token.text}' (first defined on line {first})")
    ctx.labels[token.text] = (ctx.slots, token.line)


def _split_operands(ctx: _Context, rest: Token) -> list[Token]:
    if not rest.text.strip():
        return []
    operands = []
    start = 0
    for part in rest.text.split(","):
        stripped = part.strip()
        lead = len(part) - len(part.lstrip())
        token = rest.at(start + lead, stripped)
        if not stripped:
            raise ctx.error(rest.at(start, ""), "expected an operand")
        operands.append(token)
        start += len(part) + 1
    return operands


def _words(rest: Token) -> list[Token]:
    return [rest.at(m.start(), m.group()) for m in _WORD.finditer(rest.text)]


# ------------------------------------------------------------- directives

def _directive(ctx: _Context, head: Token, rest: Token) -> None:
    handler = _DIRECTIVES.get(head.text)
    if handler is None:
        raise ctx.error(head, f"unknown directive '{head.text}' "
                              f"(expected one of {', '.join(_DIRECTIVES)})")
    handler(ctx, head, rest)


def _one_word(ctx: _Context, head: Token, rest: Token, what: str) -> Token:
    words = _words(rest)
    if len(words) != 1:
        raise ctx.error(words[1] if words else head, f"{head.text} takes one {what}")
    return words[0]


def _hook_directive(ctx: _Context, head: Token, rest: Token) -> None:
    word = _one_word(ctx, head, rest, "hook name")
    if word.text not in HOOKS:
        raise ctx.error(word, f"unknown hook '{word.text}' (expected one of {', '.join(HOOKS)})")
    if ctx.hook is not None:
        raise ctx.error(head, f"second .hook (the program already has hook '{ctx.hook}')")
    ctx.hook = word.text


def _name_directive(ctx: _Context, head: Token, rest: Token) -> None:
    if ctx.name is not None:
        raise ctx.error(head, f"second .name (the program is already named '{ctx.name}')")
    name = rest.text.strip()
    if not name:
        raise ctx.error(head, ".name takes a program name")
    ctx.name = name


def _raw_directive(ctx: _Context, head: Token, rest: Token) -> None:
    word = _one_word(ctx, head, rest, "slot")
    if not _RAW.fullmatch(word.text):
        raise ctx.error(word, f"expected 0x and 16 hex digits (one 8-byte slot), got '{word.text}'")
    ctx.pending.append((Insn.from_bytes(bytes.fromhex(word.text[2:])), head.line))
    _add_slots(ctx, head, 1)


def _add_slots(ctx: _Context, head: Token, n: int) -> None:
    """Count the slots of one more instruction, refusing a program too long
    to load as soon as it passes the limit, not after reading it all."""
    ctx.slots += n
    if ctx.slots > LIMITS.max_insns:
        raise ctx.error(head, f"the program passes {LIMITS.max_insns} slots, the most a program may have")


def _map_directive(ctx: _Context, head: Token, rest: Token) -> None:
    words = _words(rest)
    if len(words) < 2:
        raise ctx.error(head, ".map takes NAME KIND [value_size=N] [max_entries=N]")
    name, kind = words[0], words[1]
    if not NAME_RE.fullmatch(name.text):
        raise ctx.error(name, f"invalid map name '{name.text}'")
    if name.text in ctx.map_defs:
        raise ctx.error(name, f"duplicate map '{name.text}'")
    if kind.text not in MAP_KINDS:
        raise ctx.error(kind, f"unknown map kind '{kind.text}' (expected one of {', '.join(MAP_KINDS)})")
    sizes = _map_sizes(ctx, words[2:])
    if MAP_KINDS[kind.text].record is not None:
        if sizes:
            raise ctx.error(words[2], f"a {kind.text} map takes no sizes (its layout is fixed)")
        mapdef = MapDef.of_kind(name.text, kind.text)
    else:
        if len(sizes) != 2:
            raise ctx.error(kind, f"an {kind.text} map needs value_size=N and max_entries=N")
        try:
            mapdef = MapDef(name.text, kind.text, sizes["value_size"], sizes["max_entries"])
        except ValueError as err:
            raise ctx.error(head, str(err)) from None
    ctx.map_defs[name.text] = (len(ctx.map_defs), mapdef)


def _map_sizes(ctx: _Context, words: list[Token]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for word in words:
        match = _MAP_SIZE.fullmatch(word.text)
        if not match:
            raise ctx.error(word, f"expected value_size=N or max_entries=N, got '{word.text}'")
        if match.group(1) in sizes:
            raise ctx.error(word, f"{match.group(1)} given twice")
        sizes[match.group(1)] = _int(ctx, word.at(match.start(2), match.group(2)))
    return sizes


_DIRECTIVES = {".hook": _hook_directive, ".map": _map_directive, ".name": _name_directive,
               ".raw": _raw_directive}


# ----------------------------------------------------------- instructions

def _shape(token: Token) -> str:
    text = token.text
    if text.startswith("%") or _REG.fullmatch(text):
        return "reg"
    if text.startswith("["):
        return "mem"
    for prefix in ("map_value:", "map:"):
        if text.startswith(prefix):
            return prefix[:-1]
    if text.split()[0] == "local":
        return "local"
    return "plain"


def _instruction(ctx: _Context, head: Token, operands: list[Token]) -> None:
    mnemonic = head.text.lower()
    mnemonic = ALIASES.get(mnemonic, mnemonic)
    _refuse_unsupported(ctx, head, mnemonic, operands)
    candidates = BY_MNEMONIC.get(mnemonic)
    if candidates is None:
        raise ctx.error(head, f"unknown mnemonic '{head.text}'")
    row = _choose_row(ctx, head, candidates, operands)
    if row.op == "exit" and ctx.first_exit is None:
        ctx.first_exit = ctx.slots
    ctx.pending.append(_Pending(row, tuple(operands), ctx.slots, head.line))
    _add_slots(ctx, head, row.slots)


def _refuse_unsupported(ctx: _Context, head: Token, mnemonic: str, operands: list[Token]) -> None:
    """Atomics and call-by-register, in that suite's syntax (``call %r2`` is
    its callx), are refused with the verifier's reason, not as unknown."""
    if mnemonic == "call" and operands and _shape(operands[0]) == "reg":
        mnemonic = "callx"
    if mnemonic in _UNSUPPORTED_OPCODE:
        entry = unsupported_reason(_UNSUPPORTED_OPCODE[mnemonic], 0)
        raise ctx.error(head, _unsupported_message(f"'{mnemonic}'", entry))


def _choose_row(ctx: _Context, head: Token, candidates, operands: list[Token]) -> Row:
    counts = sorted({len(r.operands) for r in candidates})
    rows = [r for r in candidates if len(r.operands) == len(operands)]
    if not rows:
        wanted = " or ".join(map(str, counts))
        raise ctx.error(head, f"'{head.text}' takes {wanted} operand{'s' if counts != [1] else ''}, "
                              f"got {len(operands)}")
    for position, token in enumerate(operands):
        shape = _shape(token)
        fitting = [r for r in rows if _SHAPE[r.operands[position]] == shape]
        if not fitting:
            expected = " or ".join(dict.fromkeys(_expectation(r.operands[position]) for r in rows))
            raise ctx.error(token, f"expected {expected}, got '{token.text}'")
        rows = fitting
    return rows[0]


def _expectation(kind: str) -> str:
    return _KIND_WORDS.get(kind, _SHAPE_WORDS[_SHAPE[kind]])


# --------------------------------------------------------------- encoding

def _encode(ctx: _Context, item: _Pending) -> list[Insn]:
    fields = {field: 0 for field in FIELDS}
    if item.row.pinned:
        fields[item.row.pinned[0]] = item.row.pinned[1]
    fields["next_imm"] = 0
    for kind, token in zip(item.row.operands, item.operands):
        fields.update(_OPERAND_PARSERS[kind](ctx, token, item))
    next_imm = fields.pop("next_imm")
    first = Insn(item.row.opcode, **fields)
    return [first] if item.row.slots == 1 else [first, Insn(0, imm=next_imm)]


def _int(ctx: _Context, token: Token) -> int:
    if not _INT.fullmatch(token.text):
        raise ctx.error(token, f"expected an integer, got '{token.text}'")
    digits = token.text.lstrip("+-")
    value = int(digits[2:], 16) if digits[:2].lower() == "0x" else int(digits)
    return -value if token.text.startswith("-") else value


def _check_fits(ctx: _Context, token: Token, value: int, what: str, bits: int,
                unsigned_ok: bool = False) -> int:
    """``value`` if it is a signed ``bits``-bit integer (or, with ``unsigned_ok``,
    its unsigned spelling), converted to the signed value."""
    hi = 1 << bits if unsigned_ok else 1 << (bits - 1)
    if not -(1 << (bits - 1)) <= value < hi:
        raise ctx.error(token, f"{what} {value} does not fit in {bits} bits")
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _imm32(ctx: _Context, token: Token, what: str = "immediate") -> int:
    """A 32-bit immediate, signed or in its unsigned spelling."""
    return _check_fits(ctx, token, _int(ctx, token), what, 32, unsigned_ok=True)


def _register(ctx: _Context, token: Token) -> int:
    match = _REG.fullmatch(token.text)
    if not match or int(match.group(1)) >= NREGS:
        raise ctx.error(token, f"unknown register '{token.text}' (expected %r0-%r{NREGS - 1})")
    return int(match.group(1))


def _relative(ctx: _Context, token: Token, item: _Pending, bits: int) -> int:
    """A slot offset from the next instruction, written as +N/-N/N or a label."""
    if _INT.fullmatch(token.text):
        offset = _int(ctx, token)
    elif NAME_RE.fullmatch(token.text):
        offset = _label_slot(ctx, token) - item.slot - 1
    else:
        raise ctx.error(token, f"expected a jump offset or label, got '{token.text}'")
    _check_fits(ctx, token, offset, "jump offset", bits)
    target = item.slot + 1 + offset
    if not 0 <= target < ctx.slots:
        raise ctx.error(token, f"jump target slot {target} is outside the program "
                               f"(slots 0-{ctx.slots - 1})")
    return offset


def _label_slot(ctx: _Context, token: Token) -> int:
    if token.text in ctx.labels:
        return ctx.labels[token.text][0]
    if token.text == IMPLICIT_EXIT_LABEL and ctx.first_exit is not None:
        return ctx.first_exit
    raise ctx.error(token, f"undefined label '{token.text}'")


def _mem(ctx: _Context, token: Token, base: str) -> dict[str, int]:
    match = _MEM.fullmatch(token.text)
    if not match:
        raise ctx.error(token, f"expected a memory operand [%rN+off], got '{token.text}'")
    fields = {base: _register(ctx, token.at(match.start(1), match.group(1))), "off": 0}
    if match.group(3) is not None:
        off = token.at(match.start(3), match.group(3))
        value = _int(ctx, off)
        fields["off"] = _check_fits(ctx, off, -value if match.group(2) == "-" else value, "offset", 16)
    return fields


def _imm64(ctx: _Context, token: Token, item: _Pending) -> dict[str, int]:
    value = _check_fits(ctx, token, _int(ctx, token), "immediate", 64, unsigned_ok=True)
    return {"imm": ((value & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000, "next_imm": value >> 32}


def _map_index(ctx: _Context, token: Token) -> int:
    if token.text.startswith("#"):
        return _imm32(ctx, token.at(1, token.text[1:]), "map index")
    if token.text not in ctx.map_defs:
        raise ctx.error(token, f"undefined map '{token.text}'")
    return ctx.map_defs[token.text][0]


def _map_ref(ctx: _Context, token: Token, prefix: str) -> tuple[Token, Token | None]:
    """Split ``map:NAME`` / ``map_value:NAME+OFF`` into the name and the offset."""
    body = token.at(len(prefix), token.text[len(prefix):])
    match = _MAP_REF.match(body.text)
    if not match:
        raise ctx.error(body, f"expected a map name or #index, got '{body.text}'")
    rest = body.text[match.end():]
    return body.at(0, match.group()), (body.at(match.end(), rest) if rest else None)


def _map(ctx: _Context, token: Token, item: _Pending) -> dict[str, int]:
    name, extra = _map_ref(ctx, token, "map:")
    if extra is not None:
        raise ctx.error(extra, f"unexpected '{extra.text}' after the map name")
    return {"imm": _map_index(ctx, name)}


def _map_value(ctx: _Context, token: Token, item: _Pending) -> dict[str, int]:
    name, extra = _map_ref(ctx, token, "map_value:")
    if extra is None or extra.text[0] not in "+-":
        raise ctx.error(extra or token, "expected map_value:NAME+OFF")
    return {"imm": _map_index(ctx, name), "next_imm": _imm32(ctx, extra, "value offset")}


def _helper(ctx: _Context, token: Token, item: _Pending) -> dict[str, int]:
    if _INT.fullmatch(token.text):
        return {"imm": _imm32(ctx, token, "helper id")}
    if token.text not in HELPER_BY_NAME:
        raise ctx.error(token, f"unknown helper '{token.text}' "
                               f"(expected an id or one of {', '.join(HELPER_BY_NAME)})")
    return {"imm": HELPER_BY_NAME[token.text].id}


def _local(ctx: _Context, token: Token, item: _Pending) -> dict[str, int]:
    target = token.text[len("local"):]
    lead = len(target) - len(target.lstrip())
    if not lead or not target.strip():
        raise ctx.error(token, f"expected local LABEL or local +N, got '{token.text}'")
    return {"imm": _relative(ctx, token.at(len("local") + lead, target.strip()), item, 32)}


_OPERAND_PARSERS = {
    "dst": lambda ctx, tok, item: {"dst": _register(ctx, tok)},
    "src": lambda ctx, tok, item: {"src": _register(ctx, tok)},
    "imm": lambda ctx, tok, item: {"imm": _imm32(ctx, tok)},
    "off": lambda ctx, tok, item: {"off": _relative(ctx, tok, item, 16)},
    "target32": lambda ctx, tok, item: {"imm": _relative(ctx, tok, item, 32)},
    "mem_src": lambda ctx, tok, item: _mem(ctx, tok, "src"),
    "mem_dst": lambda ctx, tok, item: _mem(ctx, tok, "dst"),
    "imm64": _imm64,
    "map": _map,
    "map_value": _map_value,
    "helper": _helper,
    "local": _local,
}
