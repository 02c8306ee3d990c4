"""Structural checks and the control-flow graph.

Termination rule: control flow must be acyclic.  Every jump goes strictly
forward (a jump to itself or to an earlier slot is a back-edge and is
refused), local calls may not recurse, and so every run ends within the
longest path through the graph, which is the program's cost.  There are no
loops, bounded or not: a policy that needs one unrolls it.

Functions are contiguous: slot 0 starts the entry function, every local call
target starts another, and a function runs up to the next start.  Jumps stay
inside their function, and no path may run past the function's last slot.
"""
from __future__ import annotations

from dataclasses import dataclass

from gbpfd.errors import FieldError
from gbpfd.isa.abi import HELPERS, LIMITS, Hook, own_map_bytes
from gbpfd.isa.disasm import RELATIVE_KINDS
from gbpfd.isa.insn import decode
from gbpfd.isa.program import Program
from gbpfd.isa.table import ROWS, Row
from gbpfd.verifier import liveness
from gbpfd.verifier.state import FP

# classes whose instructions write their dst register
_WRITES_DST = frozenset({"alu", "alu64", "ldx", "ld"})
_ENDS_PATH = frozenset({"exit", "ja", "ja32"})


class StructureError(Exception):
    """A defect found before interpretation; ``index`` is None for the whole program."""

    def __init__(self, index: int | None, reason: str):
        super().__init__(reason)
        self.index, self.reason = index, reason


@dataclass
class Layout:
    rows: list            # per slot: its Row, or None for an lddw's second slot
    encodings: list       # per slot: its fields as a tuple (None for an lddw's second slot)
    targets: dict         # slot -> jump target (jumps) or callee start (local calls)
    func_starts: list     # sorted function start slots; [0] is the entry
    prune_points: frozenset  # slots reached by more than one edge
    cost: int             # worst-case path length of the entry function, calls included
    forget: dict          # join point -> (dead registers, imprecise registers) there
    caller_forget: dict   # local call slot -> the same, for the caller's frame during the call


def _check_maps(program: Program) -> None:
    """Refuse what the plane cannot load: too many maps, or maps too large
    (their offsets must also stay far from the 32-bit offset field's edge)."""
    if len(program.maps) > LIMITS.max_maps:
        raise StructureError(None, f"program declares {len(program.maps)} maps, more than the limit "
                                   f"of {LIMITS.max_maps}")
    need = own_map_bytes(program.maps)
    if need > LIMITS.max_map_bytes:
        raise StructureError(None, f"program's maps need {need} bytes, more than the limit of "
                                   f"{LIMITS.max_map_bytes}")


def _decode_all(program: Program, hook: Hook) -> tuple[list, list]:
    """Per slot, its Row and its _encoding()."""
    insns, maps = program.insns, program.maps
    rows: list = [None] * len(insns)
    keys: list = [None] * len(insns)
    checked: dict = {}  # by encoding: a program repeats few distinct ones
    i = 0
    while i < len(insns):
        key = _encoding(insns[i])
        row = checked.get(key)
        if row is None:  # the first slot with this encoding: a failure is reported here
            try:
                row = decode(insns[i])
            except FieldError as err:
                raise StructureError(i, err.reason) from None
            _check_fields(program, hook, i, row)
            checked[key] = row
        rows[i], keys[i] = row, key
        if row.slots == 2:
            if i + 1 >= len(insns):
                raise StructureError(i, "lddw is the last slot (its second slot is missing)")
            second = insns[i + 1]
            if (second.opcode, second.dst, second.src, second.off) != (0, 0, 0, 0):
                raise StructureError(i, "malformed lddw second slot (expected opcode 0 and dst, src, off 0)")
            _check_map_ref(maps, i, row, insns[i].imm, second.imm)
        i += row.slots
    return rows, keys


def _encoding(insn) -> tuple:
    """An instruction's fields as a plain tuple, a cheap dictionary key."""
    return insn.opcode, insn.dst, insn.src, insn.off, insn.imm


def _check_fields(program: Program, hook: Hook, i: int, row: Row) -> None:
    insn = program.insns[i]
    if row.cls in _WRITES_DST and "dst" in row.operands and insn.dst == FP:
        raise StructureError(i, "R10 is read-only (the frame pointer)")
    if row.op == "call":
        if insn.imm not in HELPERS:
            raise StructureError(i, f"unknown helper {insn.imm}")
        if insn.imm not in hook.helpers:
            raise StructureError(i, f"helper {insn.imm} ({HELPERS[insn.imm].name}) "
                                    f"is not allowed for hook {hook.name}")


def _check_map_ref(maps, i: int, row: Row, index: int, second_imm: int) -> None:
    if row.op not in ("lddw_map", "lddw_map_value"):
        return
    if not 0 <= index < len(maps):
        raise StructureError(i, f"lddw map index {index} out of range (program declares {len(maps)} maps)")
    if row.op == "lddw_map" and second_imm != 0:
        raise StructureError(i, f"lddw map:{maps[index].name} has a non-zero second imm {second_imm}")
    if row.op == "lddw_map_value" and not 0 <= second_imm < maps[index].value_size:
        raise StructureError(i, f"lddw map_value offset {second_imm} is outside map '{maps[index].name}' "
                                f"(value_size {maps[index].value_size})")


# per row form (which fixes the operands): the operand kind holding a relative target, or None
_RELATIVE_KIND = {row.form: next((kind for kind in row.operands if kind in RELATIVE_KINDS), None)
                  for row in ROWS}


def _edges(program: Program, rows: list) -> tuple[dict, list]:
    """Jump and call targets (checked), and per slot the slots control may go
    to next (None for an lddw's second slot)."""
    n = len(rows)
    targets: dict = {}
    succ: list = [None] * n
    for i, row in enumerate(rows):
        if row is None:
            continue
        kind = _RELATIVE_KIND[row.form]
        if kind:
            targets[i] = _target(program, rows, i, kind)
        nxt = () if row.op in _ENDS_PATH else (i + row.slots,)
        if kind and row.op != "call_local":
            nxt += (targets[i],)
        succ[i] = nxt
    return targets, succ


def _target(program: Program, rows: list, i: int, kind: str) -> int:
    t = i + 1 + getattr(program.insns[i], RELATIVE_KINDS[kind])
    what = "call" if kind == "local" else "jump"
    if not 0 <= t < len(rows):
        raise StructureError(i, f"{what} out of range from insn {i} to {t}")
    if what == "jump" and t <= i:
        raise StructureError(i, f"back-edge from insn {i} to insn {t}")
    if rows[t] is None:
        raise StructureError(i, f"{what} into the middle of lddw from insn {i} to {t}")
    return t


def _function_end(starts: list, i: int, n: int) -> int:
    return next((s for s in starts if s > i), n)


def _check_flow(rows: list, succ: list, starts: list) -> frozenset:
    """Edges stay in their function, every slot is reached; returns the join points."""
    n = len(rows)
    incoming = [0] * n
    reached = [False] * n
    for start in starts:
        end = _function_end(starts, start, n)
        todo, reached[start] = [start], True
        while todo:
            i = todo.pop()
            for t in succ[i]:
                if t >= end:
                    where = "program" if end == n else "function"
                    if t == i + rows[i].slots:
                        raise StructureError(i, f"insn {i} falls off the end of the {where}")
                    raise StructureError(i, f"jump from insn {i} to {t} leaves its function "
                                            f"(insns {start}..{end - 1})")
                incoming[t] += 1
                if not reached[t]:
                    reached[t] = True
                    todo.append(t)
    for i, row in enumerate(rows):
        if row is not None and not reached[i]:
            raise StructureError(i, f"unreachable insn {i}")
    return frozenset([i for i in range(n) if incoming[i] > 1])


def _callees(rows: list, targets: dict, starts: list, start: int) -> list[tuple[int, int]]:
    end = _function_end(starts, start, len(rows))
    return [(i, targets[i]) for i in range(start, end)
            if rows[i] is not None and rows[i].op == "call_local"]


def _check_calls(rows: list, targets: dict, starts: list) -> None:
    """No recursion, and no call chain deeper than the stack frames.

    A depth-first walk with an explicit stack: a chain of thousands of
    functions must be refused by the depth limit, not overflow Python's.
    """
    calls = {f: _callees(rows, targets, starts, f) for f in starts}
    depth: dict[int, int] = {}
    for root in starts:
        if root in depth:
            continue
        path, active = [(root, iter(calls[root]))], {root}
        while path:
            f, pending = path[-1]
            site_callee = next((sc for sc in pending if sc[1] not in depth), None)
            if site_callee is None:
                path.pop()
                active.discard(f)
                depth[f] = 1 + max((depth[c] for _, c in calls[f]), default=0)
                continue
            site, callee = site_callee
            if callee in active:
                raise StructureError(site, f"recursive call from insn {site} to function at insn {callee}")
            path.append((callee, iter(calls[callee])))
            active.add(callee)
    if depth[0] > LIMITS.max_call_depth:
        raise StructureError(None, f"call chain too deep: {depth[0]} frames "
                                   f"(limit {LIMITS.max_call_depth})")


def _cost(rows: list, targets: dict, succ: list, starts: list, f: int = 0, fcost: dict | None = None) -> int:
    """Longest path of function ``f`` (default: the entry) in executed
    instructions, callees included (memoised in ``fcost``)."""
    fcost = {} if fcost is None else fcost
    if f not in fcost:
        end = _function_end(starts, f, len(rows))
        longest = [0] * (end - f + 2)
        for i in range(end - 1, f - 1, -1):
            if rows[i] is None:
                continue
            extra = _cost(rows, targets, succ, starts, targets[i], fcost) if rows[i].op == "call_local" else 0
            tail = 0
            for t in succ[i]:
                if longest[t - f] > tail:
                    tail = longest[t - f]
            longest[i - f] = 1 + extra + tail
        fcost[f] = longest[0]
    return fcost[f]


def check_structure(program: Program, hook: Hook) -> Layout:
    n = len(program.insns)
    _check_maps(program)
    if n == 0:
        raise StructureError(None, "program is empty")
    if n > LIMITS.max_insns:
        raise StructureError(None, f"program has {n} insns, more than the limit of {LIMITS.max_insns}")
    rows, keys = _decode_all(program, hook)
    targets, succ = _edges(program, rows)
    starts = sorted({0} | {t for i, t in targets.items() if rows[i].op == "call_local"})
    joins = _check_flow(rows, succ, starts)
    _check_calls(rows, targets, starts)
    cost = _cost(rows, targets, succ, starts)
    if cost > hook.budget:
        raise StructureError(None, f"program cost {cost} exceeds the {hook.name} budget of "
                                   f"{hook.budget} instructions")
    live, precise = liveness.analyse(program, rows, keys, succ)
    forget = {i: liveness.forgettable(live[i], precise[i]) for i in joins}
    # while a callee runs, the caller's r0-r5 are dead: the return overwrites them
    caller_forget = {i: liveness.forgettable(live[i + 1] & ~liveness.CLOBBERED, precise[i + 1])
                     for i, row in enumerate(rows) if row is not None and row.op == "call_local"}
    return Layout(rows, keys, targets, starts, joins, cost, forget, caller_forget)
