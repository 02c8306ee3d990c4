/* gbpfd_layout.h: generated from gbpfd/device/state.py by
 *     python -m gbpfd.device.c_layout > kernels/gbpfd_layout.h
 * Do not edit: regenerate (tests/device/test_c_layout.py checks it is current). */
#ifndef GBPFD_LAYOUT_H
#define GBPFD_LAYOUT_H

/* array sizes (int64 words) */
#define GBPFD_CTL_WORDS                 9194
#define GBPFD_FLAT_WORDS                148240
#define GBPFD_MAX_TENANTS               32

/* ctl: plane words */
#define GBPFD_PLANE_TOTAL_RUNNING       8
#define GBPFD_PLANE_GLOBAL_CTA_CAP      9
#define GBPFD_PLANE_BE_WEIGHT_SUM       10
#define GBPFD_PLANE_LC_RESERVED         11
#define GBPFD_PLANE_TICK_PERIOD_NS      12
#define GBPFD_PLANE_DMA_PERIOD_NS       13
#define GBPFD_PLANE_WARP_PERIOD_NS      14
#define GBPFD_PLANE_THERM_PERIOD_NS     15
#define GBPFD_PLANE_LAST_TICK_NS        16
#define GBPFD_PLANE_LAST_DMA_NS         17
#define GBPFD_PLANE_LAST_WARP_NS        18
#define GBPFD_PLANE_LAST_THERM_NS       19
#define GBPFD_PLANE_PERIOD_LOOPS        20
#define GBPFD_PLANE_ACTIVE_WINDOW_NS    21
#define GBPFD_PLANE_WAIT_BOUND_NS       22
#define GBPFD_PLANE_DEFER_BOUND_NS      23
#define GBPFD_PLANE_SAMPLE_EVERY        24
#define GBPFD_PLANE_DECISIONS           25
#define GBPFD_PLANE_FAST_GRANTS         26
#define GBPFD_PLANE_REQUESTS            27
#define GBPFD_PLANE_BYPASSED            28
#define GBPFD_PLANE_INSNS               29
#define GBPFD_PLANE_SMID                30
#define GBPFD_PLANE_TORN_LOOPS          31
#define GBPFD_PLANE_LOOPS               32
#define GBPFD_PLANE_STOP                33
#define GBPFD_PLANE_TRACE_BUDGET        34
#define GBPFD_PLANE_TRACES_DROPPED      35
#define GBPFD_PLANE_REACTION_NS         36
#define GBPFD_PLANE_STAGED_HEAD         37
#define GBPFD_PLANE_STAGED_TAIL         38
#define GBPFD_PLANE_STAGED_DROPPED      39
#define GBPFD_PLANE_STAGED_DROPPED_SEEN 40
#define GBPFD_PLANE_STAGED              41
#define GBPFD_PLANE_SNAPSHOTS_STAGED    42
#define GBPFD_PLANE_NUM_SMS             43
#define GBPFD_PLANE_LAST_SM_NS          44
#define GBPFD_PLANE_LAST_LC_NS          45
#define GBPFD_PLANE_LC_ACTIVE           46
#define GBPFD_PLANE_LC_RUNNING          47
#define GBPFD_PLANE_LC_DEMAND           48
#define GBPFD_PLANE_BE_WORKERS          49
#define GBPFD_PLANE_BE_BLOCK_NS         50
#define GBPFD_PLANE_DRAIN_FIRST         51
#define GBPFD_PLANE_DRAIN_COUNT         52
#define GBPFD_PLANE_DRAINS              53
#define GBPFD_PLANE_DRAIN_WAIT_SUM_NS   54
#define GBPFD_PLANE_DRAIN_WAIT_MAX_NS   55

/* ctl: per-tenant words, at GBPFD_TENANT_BASE + tenant * GBPFD_TENANT_STRIDE */
#define GBPFD_TENANT_BASE               362
#define GBPFD_TENANT_STRIDE             24
#define GBPFD_TENANT_TOKENS             0
#define GBPFD_TENANT_RUNNING            1
#define GBPFD_TENANT_QUEUED             2
#define GBPFD_TENANT_WARPS_ACTIVE       3
#define GBPFD_TENANT_WARPS_WAITING      4
#define GBPFD_TENANT_WARP_CAP           5
#define GBPFD_TENANT_DMA_TOKENS         6
#define GBPFD_TENANT_DMA_MOVED          7
#define GBPFD_TENANT_DMA_PENDING        8
#define GBPFD_TENANT_LAST_DEMAND_NS     9
#define GBPFD_TENANT_LAST_TICK_NS       10
#define GBPFD_TENANT_LAST_DMA_NS        11
#define GBPFD_TENANT_LAST_WARP_NS       12
#define GBPFD_TENANT_DEMAND_SEEN        13
#define GBPFD_TENANT_TOKEN_LIMIT        14
#define GBPFD_TENANT_WORKERS            15
#define GBPFD_TENANT_WORKER_SMS         16
#define GBPFD_TENANT_DRAINED_SMS        17
#define GBPFD_TENANT_BLOCK_NS           18

/* ctl: admission request slots, at GBPFD_SLOT_BASE + slot * GBPFD_SLOT_STRIDE */
#define GBPFD_NSLOTS                    64
#define GBPFD_SLOT_BASE                 1130
#define GBPFD_SLOT_STRIDE               8
#define GBPFD_SLOT_STATE                0
#define GBPFD_SLOT_TENANT               1
#define GBPFD_SLOT_POST_NS              2
#define GBPFD_SLOT_DECISION             3
#define GBPFD_SLOT_DECIDED_NS           4
#define GBPFD_SLOT_SM                   5

/* slot states and decisions */
#define GBPFD_FREE                      0
#define GBPFD_CLAIMED                   1
#define GBPFD_POSTED                    2
#define GBPFD_SERVING                   3
#define GBPFD_DECIDED                   4
#define GBPFD_ABANDONED                 5
#define GBPFD_DEFER                     0
#define GBPFD_ADMIT                     1

/* how a CTA got in (cta_exit may hand a token on for GBPFD_ENTER_TOKEN and GBPFD_ENTER_POLICY) */
#define GBPFD_ENTER_DENIED              0
#define GBPFD_ENTER_TOKEN               1
#define GBPFD_ENTER_POLICY              2
#define GBPFD_ENTER_BYPASS              3

/* flat: per-tenant counter records, at GBPFD_COUNTERS_WORD + tenant * GBPFD_COUNTER_RECORD_WORDS */
#define GBPFD_COUNTERS_WORD             256
#define GBPFD_COUNTER_RECORD_WORDS      16
#define GBPFD_COUNTER_ADMITTED          0
#define GBPFD_COUNTER_DEFERRED          1
#define GBPFD_COUNTER_BYPASSED          2
#define GBPFD_COUNTER_TOKENS_GRANTED    3
#define GBPFD_COUNTER_DMA_BYTES         4
#define GBPFD_COUNTER_THROTTLED_NS      5
#define GBPFD_COUNTER_FAULTS            6
#define GBPFD_COUNTER_DRAINED           7
#define GBPFD_COUNTER_USER0             8
#define GBPFD_COUNTER_USER1             9
#define GBPFD_COUNTER_USER2             10
#define GBPFD_COUNTER_USER3             11
#define GBPFD_COUNTER_USER4             12
#define GBPFD_COUNTER_USER5             13
#define GBPFD_COUNTER_USER6             14
#define GBPFD_COUNTER_USER7             15

/* waits: exponential backoff bounds in ns (gbpfd/device/kernels_cuda.py) */
#define GBPFD_BACKOFF_MIN_NS            32
#define GBPFD_BACKOFF_MAX_NS            4096

#endif /* GBPFD_LAYOUT_H */
