# baseline dma_tick: add one epoch of the tenant's dma_bytes_per_epoch to its
# byte tokens, banking at most two epochs, the assembler twin of
# SEC("dma_tick") in baseline.bpf.c (tests check they agree):
# dma_tokens = min(dma_tokens + per, 2 * per).
#
# Works: for any byte counts; both sums saturate at 2^64 - 1 instead of
# wrapping, so a huge per-epoch quota never turns into a tiny one.
# Fails: closed.  A tenant with no record (present == 0, or an index outside
# the quota map) has its tokens set to 0, banked ones included.
.name baseline_dma
.hook dma_tick
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

    ldxdw %r1, [%r0+16]         # r1 = quota.dma_bytes_per_epoch
    mov %r2, %r1
    add %r2, %r1                # r2 = the ceiling, two epochs
    jge %r2, %r1, ceiling_fits  # a sum below an addend has wrapped
    mov %r2, -1                 # 2^64 - 1: mov sign-extends its immediate
ceiling_fits:
    ldxdw %r3, [%r6+32]         # ctx.dma_tokens
    add %r1, %r3                # r1 = tokens + one epoch
    jge %r1, %r3, sum_fits
    mov %r1, -1
sum_fits:
    jge %r1, %r2, store         # over the ceiling: bank only two epochs
    mov %r2, %r1
store:
    stxdw [%r6+32], %r2         # ctx.dma_tokens
    mov %r0, 0
    exit

absent:
    stdw [%r6+32], 0            # ctx.dma_tokens: none
    mov %r0, 0
    exit
