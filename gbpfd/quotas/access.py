"""Who may do what to a plane run as a service: the optional ``[access]``
table of a quota file.

    [access]
    socket_group = "gpu"            # the control socket is 0660 with this group (default: 0600, owner only)
    admin_groups = ["gbpfd-admin"]  # besides the daemon's owner, may load programs and set quotas
    [access.tenants.train]          # who may attach as tenant train (default: the owner and admins only)
    uids = [1000]
    groups = ["ml", 1234]           # group names or gids

Group names are resolved when the file is read, so a typo is an error that
names its line, not a refusal discovered later.
"""
from __future__ import annotations

import grp
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral

KEYS = ("socket_group", "admin_groups", "tenants")
TENANT_KEYS = ("uids", "groups")


@dataclass(frozen=True)
class Access:
    socket_gid: int | None = None
    admin_gids: frozenset[int] = frozenset()
    tenant_uids: Mapping = field(default_factory=dict)   # tenant -> frozenset of uids
    tenant_gids: Mapping = field(default_factory=dict)   # tenant -> frozenset of gids

    def may_administer(self, uid: int, gids: set[int], owner_uid: int) -> bool:
        return uid == owner_uid or uid == 0 or bool(self.admin_gids & gids)

    def may_attach(self, tenant: str, uid: int, gids: set[int], owner_uid: int) -> bool:
        if self.may_administer(uid, gids, owner_uid):
            return True
        return uid in self.tenant_uids.get(tenant, ()) or bool(self.tenant_gids.get(tenant, frozenset()) & gids)


def _gid(value, error, *keys) -> int:
    if isinstance(value, Integral) and not isinstance(value, bool) and value >= 0:
        return int(value)
    if isinstance(value, str):
        try:
            return grp.getgrnam(value).gr_gid
        except KeyError:
            raise error(f"access: no group named {value!r} on this machine", *keys) from None
    raise error(f"access: a group is a name or a gid (an integer >= 0), got {value!r}", *keys)


def _list(value, error, *keys) -> list:
    if not isinstance(value, list):
        raise error(f"access: {keys[-1]!r} must be an array, got {value!r}", *keys)
    return value


def _uids(values, error, *keys) -> frozenset[int]:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 0:
            raise error(f"access: a uid is an integer >= 0, got {v!r}", *keys)
    return frozenset(int(v) for v in values)


def parse_access(table, tenant_names: tuple[str, ...], error) -> Access:
    """The ``[access]`` table; ``error(reason, *keys)`` makes the loader's
    file:line error for a key path."""
    if table is None:
        return Access()
    if not isinstance(table, Mapping):
        raise error(f"'access' must be a table, got {table!r}", "access")
    for key in table:
        if key not in KEYS:
            raise error(f"access: unknown key {key!r}; it may hold {', '.join(KEYS)}", "access", key)
    socket_gid = None if "socket_group" not in table else _gid(table["socket_group"], error, "access",
                                                                 "socket_group")
    admins = frozenset(_gid(g, error, "access", "admin_groups")
                       for g in _list(table.get("admin_groups", []), error, "access", "admin_groups"))
    uids, gids = {}, {}
    tenants = table.get("tenants", {})
    if not isinstance(tenants, Mapping):
        raise error(f"access: 'tenants' must be a table of [access.tenants.NAME] tables, got {tenants!r}",
                    "access", "tenants")
    for name, body in tenants.items():
        keys = ("access", "tenants", name)
        if name not in tenant_names:
            raise error(f"access: no tenant {name!r}; the tenants are {', '.join(tenant_names)}", *keys)
        if not isinstance(body, Mapping) or set(body) - set(TENANT_KEYS):
            raise error(f"access: tenant {name!r} takes a table of {' and '.join(TENANT_KEYS)}", *keys)
        uids[name] = _uids(_list(body.get("uids", []), error, *keys, "uids"), error, *keys, "uids")
        gids[name] = frozenset(_gid(g, error, *keys, "groups") for g in _list(body.get("groups", []), error,
                                                                                *keys, "groups"))
    return Access(socket_gid, admins, uids, gids)
