"""Random assembler programs for a hook, biased toward ones the verifier accepts:
forward jumps, stack stores and loads, ctx loads, map lookups with and
without null checks, pointer arithmetic with masked scalars, helper calls.
Used by the soundness fuzz test."""
from __future__ import annotations

import random

from gbpfd.isa.abi import HOOKS
from gbpfd.isa.table import ROWS

ALU_MNEMONICS = sorted({r.mnemonic for r in ROWS if r.form in ("alu_k", "alu_x") and not r.op.startswith("movsx")})
JUMP_MNEMONICS = sorted({r.mnemonic for r in ROWS if r.form in ("jmp_k", "jmp_x")})
SIZES = {"b": 1, "h": 2, "w": 4, "dw": 8}
MAPS = ".map state array value_size=16 max_entries=4\n.map q quota\n"
VALUE_SIZES = {"state": 16, "q": 64}


class Gen:
    def __init__(self, rnd: random.Random, hook: str):
        self.rnd, self.hook = rnd, HOOKS[hook]
        self.lines: list[str] = [f".hook {hook}", MAPS, "mov %r9, %r1"]
        self.pending: list[str] = []
        self.nlabels = 0
        self.r0_from_r6 = False

    def reg(self, lo: int = 0, hi: int = 8) -> str:
        return f"%r{self.rnd.randint(lo, hi)}"

    def imm(self) -> int:
        return self.rnd.choice([0, 1, 2, 3, 7, 8, 15, 16, 31, 63, 64, -1, -8, 255, 4096,
                                self.rnd.randint(-(1 << 31), (1 << 31) - 1)])

    def emit(self, *lines: str) -> None:
        self.lines.extend(lines)

    def after_call(self) -> None:
        """Helpers clobber r1-r5; most programs set them again."""
        if self.rnd.random() < 0.9:
            self.emit(*(f"mov %r{r}, {self.rnd.randint(0, 3)}" for r in range(1, 6)))

    def label(self) -> str:
        self.nlabels += 1
        return f"L{self.nlabels}"

    # ---------------------------------------------------------------- snippets
    def alu(self):
        m = self.rnd.choice(ALU_MNEMONICS)
        src = self.reg() if self.rnd.random() < 0.4 else str(self.imm())
        self.emit(f"{m} {self.reg()}, {src}")

    def mov(self):
        self.emit(f"{self.rnd.choice(['mov', 'mov32'])} {self.reg()}, {self.imm()}")

    def ctx_load(self):
        field = self.rnd.choice(self.hook.ctx)
        off, size = field.offset, field.size
        if self.rnd.random() < 0.1:
            off, size = self.rnd.randint(0, self.hook.ctx_size), self.rnd.choice(list(SIZES.values()))
        suffix = next(k for k, v in SIZES.items() if v == size)
        self.emit(f"ldx{suffix} {self.reg(0, 8)}, [%r9+{off}]")

    def ctx_store(self):
        fields = [f for f in self.hook.ctx if f.access == "rw" or self.rnd.random() < 0.1]
        field = self.rnd.choice(fields or self.hook.ctx)
        suffix = next(k for k, v in SIZES.items() if v == field.size)
        self.emit(f"st{suffix} [%r9+{field.offset}], {self.imm()}")

    def stack_store(self):
        suffix = self.rnd.choice(list(SIZES))
        off = -self.rnd.choices([8, 16, 24, 32, 4, 12, 520], [4, 4, 4, 4, 1, 1, 0.3])[0]
        if self.rnd.random() < 0.5:
            self.emit(f"st{suffix} [%r10{off}], {self.imm()}")
        else:
            self.emit(f"stx{suffix} [%r10{off}], {self.reg()}")

    def stack_load(self):
        suffix = self.rnd.choice(list(SIZES))
        off = -self.rnd.choice([8, 16, 24, 32, 4])
        self.emit(f"ldx{suffix} {self.reg(0, 8)}, [%r10{off}]")

    def lookup(self):
        m = self.rnd.choice(list(VALUE_SIZES))
        key = self.rnd.choice(["stw [%r10-4], 1", "stw [%r10-4], 9", "ldxw %r1, [%r9+16]\nstxw [%r10-4], %r1"])
        self.emit(*key.split("\n"), f"lddw %r1, map:{m}", "mov %r2, %r10", "add %r2, -4",
                  "call map_lookup_elem")
        skip = self.label()
        if self.rnd.random() < 0.85:
            self.emit(f"{self.rnd.choices(['jeq %r0, 0', 'jne %r0, 0'], [0.95, 0.05])[0]}, {skip}")
        self.value_access("%r0", VALUE_SIZES[m])
        self.emit(f"{skip}:")
        self.after_call()

    def value_access(self, ptr: str, vsize: int):
        suffix = self.rnd.choice(list(SIZES))
        if self.rnd.random() < 0.5:
            idx = self.reg(1, 5)
            self.emit(f"ldxw {idx}, [%r9+16]", f"and {idx}, {self.rnd.choice([1, 3, 7, 15])}",
                      f"mov %r6, {ptr}", f"add %r6, {idx}")
            ptr = "%r6"
        off = self.rnd.randint(0, vsize)
        if self.rnd.random() < (0.95 if vsize == VALUE_SIZES["q"] else 0.5):
            self.emit(f"ldx{suffix} {self.reg(1, 5)}, [{ptr}+{off}]")
        else:
            self.emit(f"st{suffix} [{ptr}+{off}], {self.imm()}")

    def map_value(self):
        m = self.rnd.choice(list(VALUE_SIZES))
        self.emit(f"lddw %r7, map_value:{m}+{self.rnd.randint(0, 7)}")
        self.value_access("%r7", VALUE_SIZES[m])

    def branch(self):
        target = self.label()
        m = self.rnd.choice(JUMP_MNEMONICS)
        src = self.reg() if self.rnd.random() < 0.3 else str(self.imm())
        self.emit(f"{m} {self.reg()}, {src}, {target}")
        self.pending.append(target)

    def helper(self):
        self.emit(*self.rnd.choice(["call ktime_get_ns", "mov %r1, 1\ncall trace",
                                   "ldxw %r1, [%r9+16]\nmov %r2, 2\ncall quota_read"]).split("\n"))
        self.after_call()

    def place_label(self):
        if self.pending:
            self.emit(f"{self.pending.pop(self.rnd.randrange(len(self.pending)))}:")

    def spill_overwrite(self):
        """Spill a pointer, overwrite part of it (or not), read some of it back,
        and send what was read where a policy's output goes: a map, the ctx,
        a counter, r0.  Sound only if no pointer bit gets out."""
        ptr = self.rnd.choice(["%r9", "%r9", "%r7", "%r10"])
        if ptr == "%r7":
            self.emit("lddw %r7, map_value:state+0")
        slot = -8 * self.rnd.randint(1, 4)
        self.emit(f"stxdw [%r10{slot}], {ptr}")
        size = self.rnd.choice([1, 2, 4, 8])
        at = slot + self.rnd.randrange(0, 9 - size)
        suffix = next(k for k, v in SIZES.items() if v == size)
        if self.rnd.random() < 0.8:
            self.emit(f"st{suffix} [%r10{at:+d}], {self.imm()}")
        rsize = self.rnd.choice([1, 2, 4, 8])
        rat = slot + self.rnd.randrange(0, 9 - rsize)
        rsuffix = next(k for k, v in SIZES.items() if v == rsize)
        reg = self.reg(2, 5)
        self.emit(f"ldx{rsuffix} {reg}, [%r10{rat:+d}]")
        if self.rnd.random() < 0.5:
            self.emit(f"rsh {reg}, {self.rnd.choice([8, 16, 32, 40])}")
        self.leak(reg)

    def leak(self, reg: str):
        field = next((f for f in self.hook.ctx if f.access == "rw"), None)
        sink = self.rnd.choice(["map", "ctx", "counter", "r0"] if field else ["map", "counter", "r0"])
        if sink == "map":
            self.emit("lddw %r8, map_value:state+0", f"stxdw [%r8+8], {reg}")
        elif sink == "ctx":
            suffix = next(k for k, v in SIZES.items() if v == field.size)
            self.emit(f"stx{suffix} [%r9+{field.offset}], {reg}")
        elif sink == "counter":
            self.emit(f"mov %r3, {reg}", "mov %r1, 0", "mov %r2, 0", "call counter_add")
            self.after_call()
        else:  # the program's last r0 comes from here (r6 survives helper calls)
            self.emit(f"mov %r6, {reg}")
            self.r0_from_r6 = True

    def junk(self):
        self.emit(f".raw 0x{self.rnd.getrandbits(64):016x}")

    SNIPPETS = [(alu, 6), (mov, 4), (ctx_load, 4), (ctx_store, 1), (stack_store, 3), (stack_load, 3),
                (lookup, 3), (map_value, 2), (branch, 4), (helper, 1), (place_label, 3), (junk, 0.2),
                (spill_overwrite, 1)]

    def program(self, nsnippets: int) -> str:
        funcs, weights = zip(*self.SNIPPETS)
        if self.rnd.random() < 0.9:  # most programs start with every register and slot set
            self.emit(*(f"mov %r{r}, {self.rnd.randint(0, 3)}" for r in range(9)),
                      *(f"stdw [%r10-{off}], 0" for off in (8, 16, 24, 32)))
        for _ in range(nsnippets):
            self.rnd.choices(funcs, weights)[0](self)
        for target in self.pending:
            self.emit(f"{target}:")
        lo, hi = self.hook.ret
        if self.r0_from_r6:
            self.emit("mov %r0, %r6", f"and %r0, {hi}")
        else:
            self.emit(f"mov %r0, {self.rnd.randint(lo, hi)}" if self.rnd.random() < 0.9 else f"mov %r0, {self.reg()}")
        self.emit("exit")
        return "\n".join(self.lines) + "\n"


def random_program(seed: int, hook: str, nsnippets: int) -> str:
    return Gen(random.Random(seed), hook).program(nsnippets)


# ------------------------------------------------- programs too large to write out
# Named by the case files' ``-- generate NAME ARG...`` sections.

def call_chain(depth: int) -> str:
    """``depth`` functions, each calling the next."""
    lines = [".hook tick"]
    for f in range(1, depth):
        lines += [f"call local f{f}", "exit", f"f{f}:"]
    return "\n".join(lines + ["mov %r0, 0", "exit"]) + "\n"


def many_maps(count: int, value_size: int = 8) -> str:
    """A program declaring ``count`` array maps of ``value_size`` bytes."""
    maps = [f".map m{i} array value_size={value_size} max_entries=1" for i in range(count)]
    return "\n".join([".hook tick", *maps, "mov %r0, 0", "exit"]) + "\n"


def join_blowup(spills: int, jumps: int, skip: int = 0, regs: int = 4) -> str:
    """Spilled constants, then a function of ``jumps`` ``jgt rX, K, +skip`` on
    ``regs`` ctx scalars (each followed by ``skip`` slots of filler): every
    slot a join point, and without precision no state there covers another
    (each path bounds the scalars differently)."""
    lines = [".hook tick"]
    lines += [f"stdw [%r10-{8 * (i + 1)}], {i + 1}" for i in range(spills)]
    lines += ["call local f", "mov %r0, 0", "exit", "f:"]
    lines += [f"ldxw %r{2 + r}, [%r1+{16 + 4 * r}]" for r in range(regs)]
    rnd = random.Random(jumps)
    for j in range(jumps):
        lines.append(f"jgt %r{2 + j % regs}, {rnd.randint(0, 1000)}, +{skip}")
        lines += [f"mov %r6, {j}"] * skip
    return "\n".join(lines + ["mov %r0, 0", "exit"]) + "\n"


GENERATORS = {"call_chain": call_chain, "many_maps": many_maps, "join_blowup": join_blowup}


def generated(spec: str) -> str:
    """The program a ``-- generate`` line names: a generator and its integer arguments."""
    name, *args = spec.split()
    return GENERATORS[name](*map(int, args))
