"""Tenant quotas: quota files checked against ``quotas/schema.toml``
(``load``), packed into abi quota records and published to the device in
the host area's seqlocked snapshot (``snapshot``)."""
from gbpfd.quotas.load import QuotaError, QuotaSet, Tenant, UnknownTenantError, load_quotas
from gbpfd.quotas.snapshot import SnapshotError, SnapshotPublisher, pack_quotas, read_snapshot, unpack_quotas

__all__ = ["QuotaError", "QuotaSet", "SnapshotError", "SnapshotPublisher", "Tenant", "UnknownTenantError",
           "load_quotas", "pack_quotas", "read_snapshot", "unpack_quotas"]
