# baseline cta_admit: admit a CTA while the tenant's running CTAs plus the
# tokens it holds (a claim on the same slots) stay below its allowance, the
# assembler twin of SEC("cta_admit") in baseline.bpf.c (tests
# check they agree).  The allowance is the one baseline_tick.s refills to:
# max_ctas for a latency-critical tenant (class 1); for a best-effort tenant
# min(max(pool * weight / be_weight_sum, 1) + burst, max_ctas), where
# pool = total_slots - lc_reserved (0 when the reservation takes every slot)
# and the whole pool is the share while be_weight_sum is 0.
#
# Works: when the plane fills total_slots, be_weight_sum and lc_reserved from
# the same quota snapshot the tenant's record comes from; running_ctas and
# cta_tokens are read at the moment of the request, so the allowance is exact.
# Fails: closed.  A tenant with no record (present == 0, or an index outside
# the quota map) is always deferred.
.name baseline_admit
.hook cta_admit
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
    jeq %r1, 1, decide          # latency-critical: its whole cap
    ldxw %r3, [%r6+40]          # ctx.total_slots
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
    jge %r1, %r2, decide        # share + burst at or over max_ctas: keep the cap
    mov %r2, %r1
decide:
    ldxw %r1, [%r6+24]          # ctx.running_ctas
    ldxw %r3, [%r6+32]          # ctx.cta_tokens: both below 2^32, so the sum cannot wrap
    add %r1, %r3
    mov %r0, 1
    jgt %r2, %r1, admit         # under the allowance
    mov %r0, 0
admit:
    exit

absent:
    mov %r0, 0
    exit
