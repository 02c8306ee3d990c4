# baseline tick: refill a tenant's CTA tokens up to its allowance, the
# assembler twin of SEC("tick") in baseline.bpf.c (tests check they agree).
#
# allowance: a latency-critical tenant (class 1) gets max_ctas.  A
# best-effort tenant (any other class) gets its weight's part of the slots
# the latency-critical tenants leave, pool = total_slots - lc_reserved (0 when
# they take every slot): share = pool * weight / be_weight_sum (the whole pool
# when be_weight_sum is 0), at least 1, then min(share + burst, max_ctas).
# cta_tokens = allowance - running_ctas, or 0 at or over the allowance.
#
# Works: when the plane fills total_slots, be_weight_sum and lc_reserved from
# the same quota snapshot the tenant's record comes from.  The share is
# computed in 64 bits, so pool * weight cannot overflow.
# Fails: closed.  A tenant with no record (present == 0, or an index outside
# the quota map) gets 0 tokens.
.name baseline_tick
.hook tick
.map quota quota

    mov %r6, %r1                # ctx must survive the helper call: r6-r9 are preserved
    ldxw %r1, [%r6+16]          # ctx.tenant
    stxw [%r10-4], %r1          # map key = tenant
    lddw %r1, map:quota
    mov %r2, %r10
    add %r2, -4
    call map_lookup_elem
    jeq %r0, 0, absent          # tenant outside the quota map
    ldxw %r1, [%r0+28]          # quota.present
    jeq %r1, 0, absent

    ldxw %r2, [%r0+8]           # r2 = allowance, so far quota.max_ctas: the cap
    ldxw %r1, [%r0+4]           # quota.class
    jeq %r1, 1, refill          # latency-critical: its whole cap
    ldxw %r3, [%r6+44]          # ctx.total_slots
    ldxw %r4, [%r6+52]          # ctx.lc_reserved
    mov %r1, 0                  # r1 = pool, 0 when the reservation takes every slot
    jle %r3, %r4, pooled
    mov %r1, %r3
    sub %r1, %r4
pooled:
    ldxw %r4, [%r6+48]          # ctx.be_weight_sum
    jeq %r4, 0, shared          # no best-effort tenant active: the whole pool
    ldxw %r3, [%r0]             # quota.weight
    mul %r1, %r3                # 64-bit: both factors are below 2^32
    div %r1, %r4
shared:
    jne %r1, 0, floored
    mov %r1, 1                  # a share of at least one CTA, so nobody starves
floored:
    ldxw %r3, [%r0+24]          # quota.burst
    add %r1, %r3
    jge %r1, %r2, refill        # share + burst at or over max_ctas: keep the cap
    mov %r2, %r1
refill:
    ldxw %r1, [%r6+24]          # ctx.running_ctas
    mov %r3, 0
    jge %r1, %r2, store         # at or over the allowance: no tokens
    mov %r3, %r2
    sub %r3, %r1
store:
    stxw [%r6+32], %r3          # ctx.cta_tokens
    mov %r0, 0
    exit

absent:
    stw [%r6+32], 0             # ctx.cta_tokens: none
    mov %r0, 0
    exit
