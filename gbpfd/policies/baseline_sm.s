# baseline sm_tick: drain whole SMs for the latency-critical tenants, the
# assembler twin of SEC("sm_tick") in baseline.bpf.c (tests check they agree).
#
# While a latency-critical tenant is active (a launch announced and not
# finished, or a CTA running), and for HOLD_NS (20 ms) after the last time
# one was, the last min(demand, num_sms / 2) SMs are drained, where demand
# is lc_demand (the CTAs of the latency-critical tenants' latest launches)
# or, before any launch was announced, lc_reserved: the best-effort
# persistent workers on them leave at their next block boundary, so the
# latency-critical CTAs (one per SM under most-free placement) find empty
# SMs instead of slots beside saturating best-effort warps.  Otherwise
# nothing is drained.
#
# Works: when best-effort work runs in persistent mode (gate-mode CTAs
# cannot leave an SM) and the latency-critical tenants launch more often
# than every HOLD_NS; the hold is the hysteresis that keeps the SMs empty
# between launches.
# Fails: open.  The first launch after a longer idle waits for the drain
# (one best-effort block, be_block_ns in the ctx) or runs beside best-effort
# blocks until they end; the best-effort tenants never lose more than half
# the SMs.
.name baseline_sm
.hook sm_tick

    ldxw %r2, [%r1+24]          # ctx.lc_active
    jne %r2, 0, drain
    ldxdw %r2, [%r1+32]         # ctx.lc_idle_ns
    jge %r2, 20000000, none     # idle for HOLD_NS or longer
drain:
    ldxw %r2, [%r1+60]          # r2 = count, so far ctx.lc_demand
    jne %r2, 0, halve
    ldxw %r2, [%r1+40]          # no launch announced yet: ctx.lc_reserved
halve:
    ldxw %r3, [%r1+16]          # ctx.num_sms
    rsh %r3, 1
    jle %r2, %r3, sized         # at most half the SMs
    mov %r2, %r3
sized:
    jeq %r2, 0, none            # no latency-critical tenant holds slots
    ldxw %r3, [%r1+16]          # ctx.num_sms
    sub %r3, %r2                # the last count SMs
    stxw [%r1+52], %r3          # ctx.drain_first
    stxw [%r1+56], %r2          # ctx.drain_count
    mov %r0, 0
    exit

none:
    stw [%r1+52], 0             # ctx.drain_first
    stw [%r1+56], 0             # ctx.drain_count: nothing drained
    mov %r0, 0
    exit
