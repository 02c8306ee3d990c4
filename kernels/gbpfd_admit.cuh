/* gbpfd_admit.cuh: CTA admission, warp gating and DMA pacing for CUDA C
 * kernels (CuPy RawKernel / RawModule, or nvcc), on the plane's own words.
 *
 * The same protocol as the Numba device code, step for step: the steps
 * mirror gbpfd/device/gates.py and the bounded waits mirror
 * gbpfd/device/kernels_cuda.py (cta_enter, cta_exit, warp_gate_wait,
 * dma_take_wait), on the same int64 `ctl` and `flat` arrays, with the word
 * offsets generated from gbpfd/device/state.py into gbpfd_layout.h.  Every
 * wait is bounded by %globaltimer and the plane's wait_bound_ns; past the
 * bound the CTA or warp runs anyway and the bypass is counted.
 *
 * A kernel under `gbpfd.admit_raw` takes GBPFD_GATE_PARAMS first (the plane
 * fills them) and brackets its body with GBPFD_CTA_ENTER() and
 * GBPFD_CTA_EXIT(); every thread of the CTA must reach GBPFD_CTA_EXIT()
 * (no `return` in between: guard the body with `if`, or put it in a
 * __device__ function).  See kernels/README.md.  Needs sm_70 or newer.
 * Includes no system header, so NVRTC compiles it as is.
 */
#ifndef GBPFD_ADMIT_CUH
#define GBPFD_ADMIT_CUH

#include "gbpfd_layout.h"

#if defined(__CUDACC__)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
#error "gbpfd_admit.cuh needs sm_70 or newer (ld.acquire, st.release, nanosleep)"
#endif
#define GBPFD_FN static __device__ inline

/* Acquire/release at GPU scope, as the Numba primitives (prims_cuda.py): every word a
 * worker gate touches is device memory shared with the control CTA, so nothing here
 * waits for PCIe; the "memory" clobber keeps the compiler from moving other accesses
 * across. */
GBPFD_FN long long gbpfd_load_acquire(const long long *a, long long i) {
    long long v;
    asm volatile("ld.acquire.gpu.b64 %0, [%1];" : "=l"(v) : "l"(a + i) : "memory");
    return v;
}

GBPFD_FN void gbpfd_store_release(long long *a, long long i, long long v) {
    asm volatile("st.release.gpu.b64 [%0], %1;" : : "l"(a + i), "l"(v) : "memory");
}

GBPFD_FN long long gbpfd_atomic_add(long long *a, long long i, long long v) {
    return (long long)atomicAdd((unsigned long long *)(a + i), (unsigned long long)v);
}

GBPFD_FN long long gbpfd_atomic_cas(long long *a, long long i, long long expected, long long desired) {
    return (long long)atomicCAS((unsigned long long *)(a + i), (unsigned long long)expected,
                                (unsigned long long)desired);
}

GBPFD_FN void gbpfd_fence(void) { __threadfence(); }

GBPFD_FN long long gbpfd_globaltimer(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return (long long)t;
}

GBPFD_FN void gbpfd_nanosleep(long long ns) { __nanosleep((unsigned int)ns); }

GBPFD_FN long long gbpfd_smid(void) {
    unsigned int sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    return (long long)sm;
}

#else
/* Host build, for the project's tests only: one thread runs these steps
 * against the Python gates on the same words, and the test supplies the
 * clock (so the waits can be replayed deterministically). */
#define GBPFD_FN static inline
extern "C" long long gbpfd_host_globaltimer(void);
extern "C" void gbpfd_host_nanosleep(long long ns);
extern "C" long long gbpfd_host_smid(void);

GBPFD_FN long long gbpfd_load_acquire(const long long *a, long long i) { return a[i]; }
GBPFD_FN void gbpfd_store_release(long long *a, long long i, long long v) { a[i] = v; }
GBPFD_FN long long gbpfd_atomic_add(long long *a, long long i, long long v) {
    long long old = a[i];
    a[i] = old + v;
    return old;
}
GBPFD_FN long long gbpfd_atomic_cas(long long *a, long long i, long long expected, long long desired) {
    long long old = a[i];
    if (old == expected) a[i] = desired;
    return old;
}
GBPFD_FN void gbpfd_fence(void) {}
GBPFD_FN long long gbpfd_globaltimer(void) { return gbpfd_host_globaltimer(); }
GBPFD_FN void gbpfd_nanosleep(long long ns) { gbpfd_host_nanosleep(ns); }
GBPFD_FN long long gbpfd_smid(void) { return gbpfd_host_smid(); }
#endif

/* Plain words another agent writes: volatile, so a wait re-reads them. */
GBPFD_FN long long gbpfd_load(const long long *a, long long i) { return *(const volatile long long *)(a + i); }
GBPFD_FN void gbpfd_store(long long *a, long long i, long long v) { *(volatile long long *)(a + i) = v; }

GBPFD_FN long long gbpfd_min(long long a, long long b) { return a < b ? a : b; }

/* ------------------------------------------------ steps (gates.py) */
GBPFD_FN long long gbpfd_tenant_word(long long t, long long field) {
    return GBPFD_TENANT_BASE + t * GBPFD_TENANT_STRIDE + field;
}

GBPFD_FN long long gbpfd_slot_word(long long s, long long field) {
    return GBPFD_SLOT_BASE + s * GBPFD_SLOT_STRIDE + field;
}

GBPFD_FN long long gbpfd_counter_word(long long t, long long field) {
    return GBPFD_COUNTERS_WORD + t * GBPFD_COUNTER_RECORD_WORDS + field;
}

/* A CTA of tenant t got in (delta 1) or left, or an admission was taken back (-1). */
GBPFD_FN void gbpfd_note_running(long long *ctl, long long t, long long delta) {
    gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_RUNNING), delta);
    gbpfd_atomic_add(ctl, GBPFD_PLANE_TOTAL_RUNNING, delta);
}

/* The worker starts a logical block: `admitted` counts blocks (a bypassed
 * one was counted by gbpfd_bypass). */
GBPFD_FN void gbpfd_count_block(long long *flat, long long t, long long how) {
    if (how == GBPFD_ENTER_TOKEN || how == GBPFD_ENTER_POLICY)
        gbpfd_atomic_add(flat, gbpfd_counter_word(t, GBPFD_COUNTER_ADMITTED), 1);
}

/* One of tenant t's CTA tokens, with one atomic; false (the word restored) when it has none. */
GBPFD_FN bool gbpfd_take_token(long long *ctl, long long t) {
    if (gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_TOKENS), -1) > 0) return true;
    gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_TOKENS), 1);
    return false;
}

/* One CTA token with one atomic; true when the CTA may start. */
GBPFD_FN bool gbpfd_try_token(long long *ctl, long long t, long long now) {
    gbpfd_store(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_LAST_DEMAND_NS), now);
    if (gbpfd_load(ctl, GBPFD_PLANE_TOTAL_RUNNING) >= gbpfd_load(ctl, GBPFD_PLANE_GLOBAL_CTA_CAP)) return false;
    if (gbpfd_take_token(ctl, t)) {
        gbpfd_note_running(ctl, t, 1);
        gbpfd_atomic_add(ctl, GBPFD_PLANE_FAST_GRANTS, 1);
        return true;
    }
    return false;
}

/* Claim a free request slot and post tenant t's request from a CTA on SM sm:
 * the slot, or -1 when every slot is taken (one pass, no spin).  `now` is
 * never negative. */
GBPFD_FN long long gbpfd_post_request(long long *ctl, long long t, long long sm, long long now) {
    /* %globaltimer moves in steps (32 ns or more): fold higher bits in to spread the first slot */
    const long long first = (t * 7 + (now ^ (now >> 7) ^ (now >> 13))) % GBPFD_NSLOTS;
    for (long long k = 0; k < GBPFD_NSLOTS; ++k) {
        const long long s = (first + k) % GBPFD_NSLOTS;
        if (gbpfd_atomic_cas(ctl, gbpfd_slot_word(s, GBPFD_SLOT_STATE), GBPFD_FREE, GBPFD_CLAIMED) == GBPFD_FREE) {
            gbpfd_store(ctl, gbpfd_slot_word(s, GBPFD_SLOT_TENANT), t);
            gbpfd_store(ctl, gbpfd_slot_word(s, GBPFD_SLOT_POST_NS), now);
            gbpfd_store(ctl, gbpfd_slot_word(s, GBPFD_SLOT_SM), sm);
            gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_QUEUED), 1);
            gbpfd_fence();
            gbpfd_store_release(ctl, gbpfd_slot_word(s, GBPFD_SLOT_STATE), GBPFD_POSTED);
            return s;
        }
    }
    return -1;
}

/* -1 while undecided; else the decision, and the slot is freed (an admitted
 * CTA was already counted as running by the control CTA). */
GBPFD_FN long long gbpfd_poll_request(long long *ctl, long long s) {
    if (gbpfd_load_acquire(ctl, gbpfd_slot_word(s, GBPFD_SLOT_STATE)) != GBPFD_DECIDED) return -1;
    const long long decision = gbpfd_load(ctl, gbpfd_slot_word(s, GBPFD_SLOT_DECISION));
    gbpfd_store_release(ctl, gbpfd_slot_word(s, GBPFD_SLOT_STATE), GBPFD_FREE);
    return decision;
}

/* Give up waiting on slot s (one step, no wait): -1 when the request was
 * withdrawn before the control CTA read it, or marked ABANDONED while it
 * was deciding (it then takes back what it counted and frees the slot);
 * else the decision it had published.  Admitted or bypassed, never both. */
GBPFD_FN long long gbpfd_abandon_request(long long *ctl, long long s) {
    if (gbpfd_atomic_cas(ctl, gbpfd_slot_word(s, GBPFD_SLOT_STATE), GBPFD_POSTED, GBPFD_FREE) == GBPFD_POSTED) {
        const long long t = gbpfd_load(ctl, gbpfd_slot_word(s, GBPFD_SLOT_TENANT));
        gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_QUEUED), -1);
        return -1;
    }
    if (gbpfd_atomic_cas(ctl, gbpfd_slot_word(s, GBPFD_SLOT_STATE), GBPFD_SERVING, GBPFD_ABANDONED) == GBPFD_SERVING)
        return -1;
    return gbpfd_poll_request(ctl, s);
}

/* The wait hit its bound: run anyway, and say so in the counters. */
GBPFD_FN long long gbpfd_bypass(long long *ctl, long long *flat, long long t) {
    gbpfd_note_running(ctl, t, 1);
    gbpfd_atomic_add(flat, gbpfd_counter_word(t, GBPFD_COUNTER_BYPASSED), 1);
    gbpfd_atomic_add(ctl, GBPFD_PLANE_BYPASSED, 1);
    return GBPFD_ENTER_BYPASS;
}

/* An admitted CTA hands its token on only while the tenant, with the tokens
 * it holds, stays under the token limit tick last set (0 at or over its
 * allowance): its next CTAs then go to cta_admit. */
GBPFD_FN void gbpfd_cta_exit(long long *ctl, long long t, long long how) {
    const long long left = gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_RUNNING), -1) - 1;
    gbpfd_atomic_add(ctl, GBPFD_PLANE_TOTAL_RUNNING, -1);
    if (how != GBPFD_ENTER_TOKEN && how != GBPFD_ENTER_POLICY) return;
    long long held = gbpfd_load_acquire(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_TOKENS));
    if (held < 0) held = 0;
    if (left + held < gbpfd_load_acquire(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_TOKEN_LIMIT)))
        gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_TOKENS), 1);
}

/* Take nbytes paced-copy byte tokens; false when there are too few. */
GBPFD_FN bool gbpfd_dma_take(long long *ctl, long long *flat, long long t, long long nbytes) {
    if (gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_DMA_TOKENS), -nbytes) >= nbytes) {
        gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_DMA_MOVED), nbytes);
        gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_DMA_PENDING), -nbytes);
        gbpfd_atomic_add(flat, gbpfd_counter_word(t, GBPFD_COUNTER_DMA_BYTES), nbytes);
        return true;
    }
    gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_DMA_TOKENS), nbytes);
    return false;
}

/* A copy of nbytes starts waiting for tokens (dma_tick sees it as pending). */
GBPFD_FN void gbpfd_dma_announce(long long *ctl, long long t, long long nbytes) {
    gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_DMA_PENDING), nbytes);
}

/* One of the tenant's warp slots; false while it is at its cap. */
GBPFD_FN bool gbpfd_warp_enter(long long *ctl, long long t) {
    if (gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_WARPS_ACTIVE), 1)
        < gbpfd_load(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_WARP_CAP)))
        return true;
    gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_WARPS_ACTIVE), -1);
    return false;
}

GBPFD_FN void gbpfd_warp_leave(long long *ctl, long long t) {
    gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_WARPS_ACTIVE), -1);
}

/* A warp's wait at the gate (waiting_delta +1 as it starts, -1 as it ends). */
GBPFD_FN void gbpfd_warp_throttled(long long *ctl, long long *flat, long long t, long long waited_ns,
                                   long long waiting_delta) {
    gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_WARPS_WAITING), waiting_delta);
    gbpfd_atomic_add(flat, gbpfd_counter_word(t, GBPFD_COUNTER_THROTTLED_NS), waited_ns);
}

/* --------------------------------------- bounded waits (kernels_cuda.py) */
/* One thread per CTA.  How the CTA got in (GBPFD_ENTER_*); GBPFD_ENTER_DENIED
 * only when `persistent`, where a denied worker leaves its SM slot. */
GBPFD_FN long long gbpfd_cta_enter(long long *ctl, long long *flat, long long t, bool persistent) {
    const long long now = gbpfd_globaltimer();
    if (gbpfd_try_token(ctl, t, now)) return GBPFD_ENTER_TOKEN;
    /* the control CTA answers by answer_by, or the CTA runs anyway; past give_up the policy's
     * deferrals end too (a guard against a policy that never admits) */
    long long answer_by = now + gbpfd_load(ctl, GBPFD_PLANE_WAIT_BOUND_NS);
    const long long give_up = now + gbpfd_load(ctl, GBPFD_PLANE_DEFER_BOUND_NS);
    long long backoff = GBPFD_BACKOFF_MIN_NS;
    for (;;) {
        const long long s = gbpfd_post_request(ctl, t, gbpfd_smid(), gbpfd_globaltimer());
        if (s >= 0) {
            long long decision = -1;
            while (decision < 0) {
                decision = gbpfd_poll_request(ctl, s);
                if (decision < 0 && gbpfd_globaltimer() > answer_by) {
                    decision = gbpfd_abandon_request(ctl, s);
                    if (decision < 0) return gbpfd_bypass(ctl, flat, t);
                }
            }
            if (decision == GBPFD_ADMIT) return GBPFD_ENTER_POLICY;
            if (persistent) return GBPFD_ENTER_DENIED;
            answer_by = gbpfd_globaltimer() + gbpfd_load(ctl, GBPFD_PLANE_WAIT_BOUND_NS);
        }
        if (gbpfd_globaltimer() > gbpfd_min(answer_by, give_up)) return gbpfd_bypass(ctl, flat, t);
        gbpfd_nanosleep(backoff);
        backoff = gbpfd_min(backoff * 2, GBPFD_BACKOFF_MAX_NS);
        if (gbpfd_try_token(ctl, t, gbpfd_globaltimer())) return GBPFD_ENTER_TOKEN;
    }
}

/* One lane per warp: leave the tenant's warp slot and take one again,
 * waiting (bounded) while the tenant is over its warp cap. */
GBPFD_FN void gbpfd_warp_gate_wait(long long *ctl, long long *flat, long long t) {
    gbpfd_warp_leave(ctl, t);
    if (gbpfd_warp_enter(ctl, t)) return;
    const long long start = gbpfd_globaltimer();
    const long long deadline = start + gbpfd_load(ctl, GBPFD_PLANE_WAIT_BOUND_NS);
    gbpfd_warp_throttled(ctl, flat, t, 0, 1);
    long long backoff = GBPFD_BACKOFF_MIN_NS;
    while (!gbpfd_warp_enter(ctl, t)) {
        if (gbpfd_globaltimer() > deadline) {
            gbpfd_bypass(ctl, flat, t);
            gbpfd_cta_exit(ctl, t, GBPFD_ENTER_BYPASS);
            gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_WARPS_ACTIVE), 1);
            break;
        }
        gbpfd_nanosleep(backoff);
        backoff = gbpfd_min(backoff * 2, GBPFD_BACKOFF_MAX_NS);
    }
    gbpfd_warp_throttled(ctl, flat, t, gbpfd_globaltimer() - start, -1);
}

/* Byte tokens for one chunk the caller announced (gbpfd_dma_announce),
 * waiting (bounded); false when it bypassed. */
GBPFD_FN bool gbpfd_dma_take_wait(long long *ctl, long long *flat, long long t, long long nbytes) {
    if (gbpfd_dma_take(ctl, flat, t, nbytes)) return true;
    const long long deadline = gbpfd_globaltimer() + gbpfd_load(ctl, GBPFD_PLANE_WAIT_BOUND_NS);
    long long backoff = GBPFD_BACKOFF_MIN_NS;
    while (gbpfd_globaltimer() <= deadline) {
        gbpfd_nanosleep(backoff);
        backoff = gbpfd_min(backoff * 2, GBPFD_BACKOFF_MAX_NS);
        if (gbpfd_dma_take(ctl, flat, t, nbytes)) return true;
    }
    gbpfd_bypass(ctl, flat, t);
    gbpfd_cta_exit(ctl, t, GBPFD_ENTER_BYPASS);
    gbpfd_dma_announce(ctl, t, -nbytes); /* no longer waiting for tokens */
    return false;
}

#if defined(__CUDACC__)
/* ------------------------------ the CTA and warp level (admit_kernels.py) */
GBPFD_FN bool gbpfd_first_thread(void) { return threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0; }

GBPFD_FN unsigned int gbpfd_lane(void) {
    unsigned int lane;
    asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
    return lane;
}

/* All threads: the first one enters (into *how, a __shared__ word), then
 * the CTA waits for it.  A warp-gated CTA then holds one of its tenant's
 * warp slots per warp while its body runs. */
GBPFD_FN void gbpfd_block_enter(long long *ctl, long long *flat, long long t, bool warp_gated, long long *how) {
    if (gbpfd_first_thread()) {
        *how = gbpfd_cta_enter(ctl, flat, t, false);
        gbpfd_count_block(flat, t, *how);
    }
    __syncthreads();
    if (warp_gated && gbpfd_lane() == 0) gbpfd_atomic_add(ctl, gbpfd_tenant_word(t, GBPFD_TENANT_WARPS_ACTIVE), 1);
}

/* All threads, after the body: the CTA leaves once every thread is done. */
GBPFD_FN void gbpfd_block_exit(long long *ctl, long long t, bool warp_gated, long long how) {
    if (warp_gated && gbpfd_lane() == 0) gbpfd_warp_leave(ctl, t);
    __syncthreads();
    if (gbpfd_first_thread()) gbpfd_cta_exit(ctl, t, how);
}

/* A yield point for a loop of a warp-gated CTA, reached by the warp's lanes
 * together: lane 0 gives back the warp's slot and takes one again, waiting
 * (bounded) while the tenant is at its warp cap; the other lanes wait for it. */
GBPFD_FN void gbpfd_warp_gate(long long *ctl, long long *flat, long long t) {
    const unsigned int active = __activemask();
    if (gbpfd_lane() == 0) gbpfd_warp_gate_wait(ctl, flat, t);
    __syncwarp(active);
}

/* The kernel's first parameters, filled by gbpfd.admit_raw. */
#define GBPFD_GATE_PARAMS long long *gbpfd_ctl, long long *gbpfd_flat, long long gbpfd_tenant

#define GBPFD_CTA_ENTER_AS_(warp_gated)                                                        \
    __shared__ long long gbpfd_how_;                                                          \
    constexpr bool gbpfd_warp_gated_ = (warp_gated);                                          \
    gbpfd_block_enter(gbpfd_ctl, gbpfd_flat, gbpfd_tenant, gbpfd_warp_gated_, &gbpfd_how_)

/* At the top of the kernel body; GBPFD_CTA_EXIT() at its end. */
#define GBPFD_CTA_ENTER() GBPFD_CTA_ENTER_AS_(false)
/* The same, for a kernel whose loops call GBPFD_WARP_GATE(). */
#define GBPFD_CTA_ENTER_WITH_WARP_GATE() GBPFD_CTA_ENTER_AS_(true)
#define GBPFD_CTA_EXIT() gbpfd_block_exit(gbpfd_ctl, gbpfd_tenant, gbpfd_warp_gated_, gbpfd_how_)

/* In the kernel itself (a __device__ function of it calls gbpfd_warp_gate). */
#define GBPFD_WARP_GATE()                                                                      \
    do {                                                                                       \
        static_assert(gbpfd_warp_gated_, "GBPFD_WARP_GATE() needs GBPFD_CTA_ENTER_WITH_WARP_GATE()"); \
        gbpfd_warp_gate(gbpfd_ctl, gbpfd_flat, gbpfd_tenant);                                 \
    } while (0)
#endif /* __CUDACC__ */

#endif /* GBPFD_ADMIT_CUH */
