# tenant_cap: admit a CTA while the tenant runs fewer than its quota's
# max_ctas; otherwise defer and count the deferral in the tenant's policy
# counter 0 (user0).  Admissions per tenant are counted in map `state`.
#
# Works: when the host publishes a quota snapshot with max_ctas set for every
# present tenant; the cap is then exact, since running_ctas is read at the
# moment of the request.
# Fails: closed.  A tenant without a quota record (or out of range) reads
# max_ctas 0 and is always deferred; counter_add and the map lookup then
# fail harmlessly (EINVAL, NULL), which the program tolerates.
.name tenant_cap
.hook cta_admit
.map state array value_size=8 max_entries=32

    mov %r6, %r1                # ctx must survive the helper calls: r6-r9 are preserved
    ldxw %r7, [%r6+16]          # ctx.tenant
    mov %r1, %r7
    mov %r2, 2                  # quota record field 2 = max_ctas
    call quota_read
    ldxw %r1, [%r6+24]          # ctx.running_ctas
    jge %r1, %r0, defer         # at or above the cap

    stxw [%r10-4], %r7          # map key = tenant
    lddw %r1, map:state
    mov %r2, %r10
    add %r2, -4
    call map_lookup_elem
    jeq %r0, 0, admit           # tenant beyond max_entries: admit without counting
    ldxdw %r1, [%r0]
    add %r1, 1
    stxdw [%r0], %r1
admit:
    mov %r0, 1
    exit

defer:
    mov %r1, %r7
    mov %r2, 0                  # policy counter 0 (user0) = deferrals
    mov %r3, 1
    call counter_add
    mov %r0, 0
    exit
