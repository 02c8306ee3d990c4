"""quotas/schema.toml against the abi quota record and the Tenant class:
the files cannot drift apart."""
from __future__ import annotations

import dataclasses

from gbpfd.isa.abi import LIMITS, RECORDS
from gbpfd.quotas.load import Tenant, attribute_name
from gbpfd.quotas.schema import ALL_SMS, FIELD_BY_NAME, FIELDS, MAX_TENANTS, MIN_TENANTS, NAME


def test_every_quota_record_field_but_present_is_packed_by_exactly_one_schema_field():
    record_fields = [f.name for f in RECORDS["quota"].fields if f.name != "present"]
    packed = [name for spec in FIELDS for name in spec.record_fields]
    assert sorted(packed) == sorted(record_fields)


def test_an_sms_field_packs_a_mask_over_limits_max_sms():
    sizes = {f.name: f.size for f in RECORDS["quota"].fields}
    spec = FIELD_BY_NAME["sms"]
    assert spec.record_fields == ("sm_mask0", "sm_mask1", "sm_mask2")
    assert 8 * sum(sizes[name] for name in spec.record_fields) == LIMITS.max_sms


def test_every_schema_field_is_a_tenant_attribute_and_back():
    assert {attribute_name(spec.name) for spec in FIELDS} | {"name"} == {f.name for f in dataclasses.fields(Tenant)}


def test_field_bounds_fit_the_record_field_sizes():
    sizes = {f.name: f.size for f in RECORDS["quota"].fields}
    for spec in FIELDS:
        if spec.type == "sms":
            continue  # test_an_sms_field_packs_a_mask_over_limits_max_sms
        largest = max(spec.values.values()) if spec.type == "enum" else spec.maximum
        assert 0 <= largest < 1 << (8 * sizes[spec.name]), spec.name


def test_defaults_are_valid_values():
    for spec in FIELDS:
        if spec.required:
            continue
        if spec.type == "enum":
            assert spec.default in spec.values, spec.name
        elif spec.type == "sms":
            assert spec.default == ALL_SMS, spec.name
        else:
            assert spec.minimum <= spec.default <= spec.maximum, spec.name


def test_schema_values():
    assert [(s.name, s.type, s.minimum, s.maximum, s.default) for s in FIELDS] == [
        ("class", "enum", None, None, None),
        ("weight", "int", 1, 10000, 1),
        ("max_ctas", "int", 1, 65535, None),
        ("warp_cap", "int", 1, 65535, 65535),
        ("dma_bytes_per_epoch", "int", 0, 2 ** 40, 0),
        ("burst", "int", 0, 65535, 0),
        ("max_ctas_per_sm", "int", 0, 65535, 0),
        ("sms", "sms", None, None, ALL_SMS),
    ]
    assert dict(FIELD_BY_NAME["class"].values) == {"best-effort": 0, "latency-critical": 1}
    assert (MIN_TENANTS, MAX_TENANTS) == (1, LIMITS.max_tenants)


def test_name_rule():
    accepted = ["a", "infer", "t-0_x", "a" * 32]
    refused = ["", "Infer", "0a", "-a", "_a", "a.b", "a b", "a" * 33, "ä"]
    assert [NAME.accepts(n) for n in accepted] == [True] * len(accepted)
    assert [NAME.accepts(n) for n in refused] == [False] * len(refused)
