"""The [access] table of a quota file: who may attach as which tenant and
who may administer the service, checked with file:line errors."""
from __future__ import annotations

import grp
import os

import pytest

from gbpfd.quotas import QuotaError
from gbpfd.quotas.load import load_quotas

TENANTS = '[tenants.train]\nclass = "best-effort"\nweight = 1\nmax_ctas = 8\n' \
          '[tenants.infer]\nclass = "latency-critical"\nweight = 1\nmax_ctas = 8\n'
OWN_GROUP = grp.getgrgid(os.getgid()).gr_name


def quotas(tmp_path, access: str):
    path = tmp_path / "q.toml"
    path.write_text(TENANTS + access)
    return load_quotas(path)


def test_without_an_access_table_only_the_owner_and_root_may_attach_or_administer(tmp_path):
    access = quotas(tmp_path, "").access
    assert access.may_attach("train", 1000, {1000}, owner_uid=1000)
    assert not access.may_attach("train", 1001, {1001}, owner_uid=1000)
    assert access.may_administer(0, set(), owner_uid=1000)
    assert not access.may_administer(1001, {1001}, owner_uid=1000)
    assert access.socket_gid is None


def test_tenants_bound_to_uids_and_groups_and_admin_groups(tmp_path):
    access = quotas(tmp_path, f'[access]\nsocket_group = "{OWN_GROUP}"\nadmin_groups = [4242]\n'
                              f'[access.tenants.train]\nuids = [1001]\ngroups = ["{OWN_GROUP}", 77]\n').access
    assert access.socket_gid == os.getgid()
    assert access.may_attach("train", 1001, {5}, owner_uid=1000)
    assert access.may_attach("train", 1002, {77}, owner_uid=1000)
    assert not access.may_attach("infer", 1001, {5}, owner_uid=1000)
    assert access.may_administer(1003, {4242}, owner_uid=1000) and access.may_attach("infer", 1003, {4242}, 1000)


@pytest.mark.parametrize("text, message", [
    ('[access]\nsocket_grup = "x"\n', "q.toml:10: access: unknown key 'socket_grup'; it may hold socket_group, "
                                       "admin_groups, tenants"),
    ('[access]\nsocket_group = "no-such-group-here"\n', "q.toml:10: access: no group named 'no-such-group-here' "
                                                         "on this machine"),
    ('[access.tenants.trian]\nuids = [1]\n', "q.toml:9: access: no tenant 'trian'; the tenants are train, infer"),
    ('[access.tenants.train]\nuids = [-1]\n', "q.toml:10: access: a uid is an integer >= 0, got -1"),
    ('[access.tenants.train]\nuids = 5\n', "q.toml:10: access: 'uids' must be an array, got 5"),
    ('[access.tenants.train]\nnames = ["x"]\n', "q.toml:9: access: tenant 'train' takes a table of uids and groups"),
])
def test_a_bad_access_table_is_refused_naming_the_line(tmp_path, text, message):
    with pytest.raises(QuotaError) as err:
        quotas(tmp_path, text)
    assert str(err.value) == str(tmp_path / message)
