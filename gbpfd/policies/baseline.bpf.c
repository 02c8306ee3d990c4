/* baseline: the policy gbpfd loads when no other is given.  Latency-critical
 * tenants get strict priority up to their own cap; best-effort tenants share
 * what is left in proportion to their weights; nobody exceeds max_ctas.
 *
 * One allowance per tenant, used by tick and cta_admit alike:
 *   latency-critical (class 1): max_ctas.
 *   best-effort (any other class): pool = total_slots - lc_reserved (0 when
 *     the reservation takes every slot); share = pool * weight / be_weight_sum
 *     (the whole pool while no best-effort tenant is active), at least 1 so
 *     a starved tenant still makes progress; allowance = min(share + burst,
 *     max_ctas).
 * tick leaves allowance - running_ctas CTA tokens (0 at or over it);
 * cta_admit admits while running_ctas + cta_tokens < allowance (the tokens
 * left are a claim on the same slots, so admissions and tokens together never
 * pass the allowance); dma_tick adds one epoch
 * of dma_bytes_per_epoch to the byte tokens, banking at most two epochs;
 * warp_throttle_tick sets the warp cap to the quota's warp_cap; sm_tick
 * drains the last min(demand, num_sms / 2) SMs while a latency-critical
 * tenant is active and for HOLD_NS after, where demand is lc_demand (the
 * CTAs of the latency-critical tenants' latest launches, one SM each) or,
 * before any launch was announced, lc_reserved (best-effort persistent workers
 * leave them at their next block boundary, so the latency-critical CTAs find
 * empty SMs), and nothing otherwise.  There is no therm_tick program: the
 * plane then leaves the GPU-wide cap alone.
 *
 * Works when the host publishes a quota record per tenant and the plane
 * fills total_slots, be_weight_sum and lc_reserved from the same snapshot.
 * The shares are computed in 64 bits, so no weight or slot count overflows;
 * byte tokens saturate at 2^64 - 1 instead of wrapping.
 * Fails closed: a tenant whose record is absent (present == 0, or an index
 * outside the quota map) gets allowance 0, so no CTA tokens and every
 * admission denied, no byte tokens (banked ones are dropped) and a warp cap
 * of 0.  A snapshot whose lc_reserved covers every slot leaves each active
 * best-effort tenant one CTA (plus burst), not none.  Draining needs the
 * best-effort work in persistent mode (a gate-mode CTA cannot leave its SM);
 * the first latency-critical launch after an idle longer than HOLD_NS waits
 * for one best-effort block (or runs beside it), and best-effort tenants
 * never lose more than half the SMs to it.
 */
#include "gbpfd.h"

#define CLASS_LATENCY_CRITICAL 1
/* how long SMs stay drained after the last latency-critical activity: longer than the gaps between its launches */
#define HOLD_NS 20000000ULL
#define U64_MAX 0xffffffffffffffffULL

struct {
	__uint(type, GBPFD_MAP_QUOTA);
	__uint(max_entries, GBPFD_MAX_TENANTS);
	__type(value, struct gbpfd_quota);
} quota SEC(".maps");

/* The tenant's quota record, or NULL when it has none. */
static __always_inline const struct gbpfd_quota *quota_of(__u32 tenant)
{
	const struct gbpfd_quota *q = gbpfd_map_lookup_elem(&quota, &tenant);

	if (!q || !q->present)
		return 0;
	return q;
}

/* CTAs the tenant may run at once; 0 without a quota record. */
static __always_inline __u64 allowance(const struct gbpfd_quota *q, __u64 total_slots,
				       __u64 be_weight_sum, __u64 lc_reserved)
{
	if (!q)
		return 0;
	if (q->class == CLASS_LATENCY_CRITICAL)
		return q->max_ctas;
	__u64 pool = total_slots > lc_reserved ? total_slots - lc_reserved : 0;
	__u64 share = be_weight_sum ? pool * q->weight / be_weight_sum : pool;

	if (share < 1)
		share = 1;
	share += q->burst;
	return share < q->max_ctas ? share : q->max_ctas;
}

static __always_inline __u64 saturating_add(__u64 a, __u64 b)
{
	__u64 sum = a + b;

	return sum < a ? U64_MAX : sum;
}

SEC("tick")
int baseline_tick(struct gbpfd_tick_ctx *ctx)
{
	__u64 allowed = allowance(quota_of(ctx->tenant), ctx->total_slots, ctx->be_weight_sum,
				  ctx->lc_reserved);
	__u64 running = ctx->running_ctas;

	ctx->cta_tokens = allowed > running ? allowed - running : 0;
	return 0;
}

SEC("cta_admit")
int baseline_admit(struct gbpfd_cta_admit_ctx *ctx)
{
	__u64 allowed = allowance(quota_of(ctx->tenant), ctx->total_slots, ctx->be_weight_sum,
				  ctx->lc_reserved);

	return (__u64)ctx->running_ctas + ctx->cta_tokens < allowed ? 1 : 0;
}

SEC("dma_tick")
int baseline_dma(struct gbpfd_dma_tick_ctx *ctx)
{
	const struct gbpfd_quota *q = quota_of(ctx->tenant);

	if (!q) {
		ctx->dma_tokens = 0;
		return 0;
	}
	__u64 per = q->dma_bytes_per_epoch;
	__u64 tokens = saturating_add(ctx->dma_tokens, per);
	__u64 ceiling = saturating_add(per, per);

	ctx->dma_tokens = tokens < ceiling ? tokens : ceiling;
	return 0;
}

SEC("warp_throttle_tick")
int baseline_warp(struct gbpfd_warp_throttle_tick_ctx *ctx)
{
	const struct gbpfd_quota *q = quota_of(ctx->tenant);

	ctx->warp_cap = q ? q->warp_cap : 0;
	return 0;
}

SEC("sm_tick")
int baseline_sm(struct gbpfd_sm_tick_ctx *ctx)
{
	__u32 count = 0;

	if (ctx->lc_active || ctx->lc_idle_ns < HOLD_NS) {
		count = ctx->lc_demand ? ctx->lc_demand : ctx->lc_reserved;
		if (count > ctx->num_sms / 2)
			count = ctx->num_sms / 2;
	}
	ctx->drain_first = count ? ctx->num_sms - count : 0;
	ctx->drain_count = count;
	return 0;
}
