/* token_refill: each tick, give a tenant CTA tokens in proportion to its
 * fair-share weight, never more than its max_ctas plus burst.
 *
 * Works for tenants with a quota record: tokens = weight * max_ctas /
 * weight_scale (a .rodata constant), capped at max_ctas + burst and at
 * token_ceiling.  The global `ticks` (.bss) counts ticks across all
 * tenants and `last_grant` (.data, after `policy_version`) remembers the
 * last grant, for the host to read back.
 * Fails safe: a weight of 0 or a missing quota leaves cta_tokens at 0, so
 * the tenant falls back to the cta_admit policy for every request.
 */
#include "gbpfd.h"

/* volatile reads keep the constants in .rodata instead of folded into code */
static const __u32 token_ceiling = 64;
static const __u32 weight_scale = 100;
__u32 policy_version = 1; /* for the host to read back */
__u32 last_grant = 1;
__u64 ticks;

SEC("tick")
int token_refill(struct gbpfd_tick_ctx *ctx)
{
	__u32 tenant = ctx->tenant;
	__u32 weight = gbpfd_quota_read(tenant, GBPFD_QUOTA_WEIGHT);
	__u32 max_ctas = gbpfd_quota_read(tenant, GBPFD_QUOTA_MAX_CTAS);
	__u32 burst = gbpfd_quota_read(tenant, GBPFD_QUOTA_BURST);
	__u32 tokens = weight * max_ctas / *(volatile const __u32 *)&weight_scale;
	__u32 cap = max_ctas + burst;

	if (cap > *(volatile const __u32 *)&token_ceiling)
		cap = token_ceiling;
	if (tokens > cap)
		tokens = cap;
	ctx->cta_tokens = tokens;
	ticks += 1;
	last_grant = tokens;
	return 0;
}
