"""The policies the bench cases load, as assembler text, shared by their
GPU and simulated forms so both time the same programs."""
from __future__ import annotations

from gbpfd.isa.asm import assemble

REACTION_ADMIT_ASM = """\
# Reads a few ctx fields, always admits: 16 instructions on every path.
.name reaction_admit
.hook cta_admit
    ldxdw %r2, [%r1+0]          # ctx.now_ns
    ldxdw %r3, [%r1+8]          # ctx.wait_ns
    ldxw %r4, [%r1+16]          # ctx.tenant
    ldxw %r5, [%r1+24]          # ctx.running_ctas
    ldxw %r6, [%r1+28]          # ctx.queued_ctas
    ldxw %r7, [%r1+36]          # ctx.total_running
    ldxw %r8, [%r1+40]          # ctx.total_slots
    add %r5, %r6
    add %r7, %r5
    sub %r8, %r7
    xor %r2, %r3
    rsh %r2, 10
    add %r4, %r2
    add %r4, %r8
    mov %r0, 1
    exit
"""


def tokens_tick_asm(name: str, tokens: int, why: str) -> str:
    """A tick program that leaves every tenant ``tokens`` CTA tokens."""
    return (f"# {why}\n.name {name}\n.hook tick\n"
            f"    stw [%r1+32], {tokens}             # ctx.cta_tokens\n    mov %r0, 0\n    exit\n")


NO_TOKENS_TICK_ASM = tokens_tick_asm("no_tokens", 0, "Leaves every tenant without CTA tokens: each CTA asks "
                                     "cta_admit.")
#: more tokens than CTAs can be resident: each CTA enters with one atomic
AMPLE_TOKENS_TICK_ASM = tokens_tick_asm("ample_tokens", 1 << 20, "Leaves every tenant more CTA tokens than CTAs "
                                        "can be resident.")
ODD_WEIGHT_ADMIT_ASM = """\
# Admits while the tenant's quota weight is odd: a decision shows the snapshot it was made with.
.name admit_odd_weight
.hook cta_admit
    ldxw %r1, [%r1+16]          # ctx.tenant
    mov %r2, 0                  # quota field 0: weight
    call quota_read
    and %r0, 1
    exit
"""
#: the tenant the cases' requests are made for (one of the demo quotas' tenants)
TENANT = "train"


def program(text: str):
    """Assemble one of the texts above (named after its ``.name``)."""
    name = next(line.split()[1] for line in text.splitlines() if line.startswith(".name"))
    return assemble(text, f"<bench:{name}>")

#: sm_tick that drains nothing: the plane admitting only, as before SM draining
NO_DRAIN_SM_ASM = """\
# Drains no SM: the plane then admits only, and latency-critical CTAs land beside best-effort ones.
.name no_drain
.hook sm_tick
    stw [%r1+52], 0             # ctx.drain_first
    stw [%r1+56], 0             # ctx.drain_count
    mov %r0, 0
    exit
"""
