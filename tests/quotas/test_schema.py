"""quotas/schema.toml against the abi quota record and the Tenant class:
the files cannot drift apart."""
from __future__ import annotations

import dataclasses

from gbpfd.isa.abi import LIMITS, RECORDS
from gbpfd.quotas.load import Tenant, attribute_name
from gbpfd.quotas.schema import FIELD_BY_NAME, FIELDS, MAX_TENANTS, MIN_TENANTS, NAME


def test_every_quota_record_field_but_present_is_a_schema_field_and_back():
    record_fields = {f.name for f in RECORDS["quota"].fields}
    assert record_fields - {"present"} == set(FIELD_BY_NAME)


def test_every_schema_field_is_a_tenant_attribute_and_back():
    assert {attribute_name(spec.name) for spec in FIELDS} | {"name"} == {f.name for f in dataclasses.fields(Tenant)}


def test_field_bounds_fit_the_record_field_sizes():
    sizes = {f.name: f.size for f in RECORDS["quota"].fields}
    for spec in FIELDS:
        largest = max(spec.values.values()) if spec.type == "enum" else spec.maximum
        assert 0 <= largest < 1 << (8 * sizes[spec.name]), spec.name


def test_defaults_are_valid_values():
    for spec in FIELDS:
        if spec.required:
            continue
        if spec.type == "enum":
            assert spec.default in spec.values, spec.name
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
    ]
    assert dict(FIELD_BY_NAME["class"].values) == {"best-effort": 0, "latency-critical": 1}
    assert (MIN_TENANTS, MAX_TENANTS) == (1, LIMITS.max_tenants)


def test_name_rule():
    accepted = ["a", "infer", "t-0_x", "a" * 32]
    refused = ["", "Infer", "0a", "-a", "_a", "a.b", "a b", "a" * 33, "ä"]
    assert [NAME.accepts(n) for n in accepted] == [True] * len(accepted)
    assert [NAME.accepts(n) for n in refused] == [False] * len(refused)
