# baseline warp_throttle_tick: set the tenant's warp cap to its quota's
# warp_cap, the assembler twin of SEC("warp_throttle_tick") in baseline.bpf.c
# (tests check they agree).
#
# Works: when the host publishes warp_cap in every present tenant's record;
# the cap follows each new snapshot at the next throttle period.
# Fails: closed.  A tenant with no record (present == 0, or an index outside
# the quota map) gets a warp cap of 0.
.name baseline_warp
.hook warp_throttle_tick
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

    ldxw %r1, [%r0+12]          # quota.warp_cap
    stxw [%r6+32], %r1          # ctx.warp_cap
    mov %r0, 0
    exit

absent:
    stw [%r6+32], 0             # ctx.warp_cap: none
    mov %r0, 0
    exit
