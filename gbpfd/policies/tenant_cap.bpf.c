/* tenant_cap: admit a CTA while the tenant runs fewer CTAs than its quota's
 * max_ctas.
 *
 * Works when the host publishes a quota record for the requesting tenant:
 * requests under the cap are admitted (1) and counted per tenant in the
 * `admissions` array map.  Requests at or over the cap are deferred (0) and
 * bump the tenant's policy counter 0 (user0 in the counters record).
 * Fails safe: a tenant index outside the quota map (lookup returns NULL)
 * is deferred, so a bad snapshot never admits work.
 */
#include "gbpfd.h"

struct {
	__uint(type, GBPFD_MAP_QUOTA);
	__uint(max_entries, GBPFD_MAX_TENANTS);
	__type(value, struct gbpfd_quota);
} quota SEC(".maps");

struct {
	__uint(type, GBPFD_MAP_ARRAY);
	__uint(max_entries, GBPFD_MAX_TENANTS);
	__type(value, __u64);
} admissions SEC(".maps");

SEC("cta_admit")
int tenant_cap(struct gbpfd_cta_admit_ctx *ctx)
{
	__u32 tenant = ctx->tenant;
	struct gbpfd_quota *q = gbpfd_map_lookup_elem(&quota, &tenant);

	if (!q || ctx->running_ctas >= q->max_ctas) {
		gbpfd_counter_add(tenant, 0, 1);
		return 0;
	}
	__u64 *count = gbpfd_map_lookup_elem(&admissions, &tenant);
	if (count)
		*count += 1;
	return 1;
}
