"""Quota files and dicts: every shipped file loads; every schema rule has
its exact message; a source with any error is refused whole."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gbpfd.errors import InputError
from gbpfd.quotas import QuotaError, QuotaSet, Tenant, UnknownTenantError, load_quotas
from gbpfd.resources import shared_file

QUOTA_DIR = shared_file("quotas")
SHIPPED = sorted([QUOTA_DIR / "demo.toml", *(QUOTA_DIR / "examples").glob("*.toml")])
TRAIN = '[tenants.train]\nclass = "best-effort"\n'
NAME_RULE = "a tenant name is 1 to 32 characters of a-z, 0-9, '_' and '-', starting with a letter"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_quota_file_loads(path):
    quotas = load_quotas(path)
    assert quotas.source == str(path)
    assert 1 <= len(quotas.tenants)


def test_the_shipped_examples_are_there():
    assert len(SHIPPED) >= 3


def test_demo_quotas():
    quotas = load_quotas(QUOTA_DIR / "demo.toml")
    assert quotas.tenants == (
        Tenant("infer", "latency-critical", weight=1, max_ctas=16, warp_cap=256, dma_bytes_per_epoch=0, burst=0),
        Tenant("train", "best-effort", weight=3, max_ctas=4096, warp_cap=65535, dma_bytes_per_epoch=0, burst=0),
        Tenant("batch", "best-effort", weight=1, max_ctas=4096, warp_cap=65535, dma_bytes_per_epoch=1 << 20,
               burst=0),
    )
    assert [t.latency_critical for t in quotas.tenants] == [True, False, False]


def test_an_sm_list_names_its_sms_ascending_once_each(tmp_path):
    path = tmp_path / "q.toml"
    path.write_text(TRAIN + 'max_ctas = 4\nmax_ctas_per_sm = 1\nsms = [70, "0-3", 2, "191-191"]\n')
    tenant = load_quotas(path).tenants[0]
    assert (tenant.sms, tenant.max_ctas_per_sm) == ((0, 1, 2, 3, 70, 191), 1)
    assert load_quotas({"tenants": {"t": {"class": "best-effort", "max_ctas": 1}}}).tenants[0].sms == "all"


ERRORS = [
    ("sms: not a list", TRAIN + 'max_ctas = 4\nsms = "some"\n',
     "bad.toml:4: tenant 'train': field 'sms': expected 'all' or a list of SM numbers and \"A-B\" ranges, "
     "got string 'some'"),
    ("sms: an empty list", TRAIN + "max_ctas = 4\nsms = []\n",
     "bad.toml:4: tenant 'train': field 'sms': the list names no SM; give 'all' for every SM"),
    ("sms: an SM past the last", TRAIN + "max_ctas = 4\nsms = [1, 192]\n",
     "bad.toml:4: tenant 'train': field 'sms': item 1 (integer 192): expected an SM number or an \"A-B\" range "
     "with 0 <= A <= B <= 191"),
    ("sms: a backwards range", TRAIN + 'max_ctas = 4\nsms = ["9-3"]\n',
     "bad.toml:4: tenant 'train': field 'sms': item 0 (string '9-3'): expected an SM number or an \"A-B\" "
     "range with 0 <= A <= B <= 191"),
    ("missing required field", TRAIN + "weight = 3\n",
     "bad.toml:1: tenant 'train': missing required field 'max_ctas'"),
    ("out of range", '# c\n[tenants.infer]\nclass = "latency-critical"\nmax_ctas = 16\n\n' + TRAIN
     + "weight = 0\nmax_ctas = 4\n",
     "bad.toml:8: tenant 'train': field 'weight': 0 is out of range 1..10000"),
    ("over the top of the range", TRAIN + "max_ctas = 4\ndma_bytes_per_epoch = 1099511627777\n",
     "bad.toml:4: tenant 'train': field 'dma_bytes_per_epoch': 1099511627777 is out of range 0..1099511627776"),
    ("negative", TRAIN + "max_ctas = 4\nburst = -1\n",
     "bad.toml:4: tenant 'train': field 'burst': -1 is out of range 0..65535"),
    ("string for an integer", TRAIN + 'max_ctas = "4"\n',
     "bad.toml:3: tenant 'train': field 'max_ctas': expected an integer, got string '4'"),
    ("float for an integer", TRAIN + "max_ctas = 4.0\n",
     "bad.toml:3: tenant 'train': field 'max_ctas': expected an integer, got float 4.0"),
    ("bool is not an integer", TRAIN + "max_ctas = true\n",
     "bad.toml:3: tenant 'train': field 'max_ctas': expected an integer, got boolean true"),
    ("unknown field, close", TRAIN + "max_ctas = 4\nwieght = 2\n",
     "bad.toml:4: tenant 'train': unknown field 'wieght' (did you mean 'weight'?)"),
    ("unknown field, far", TRAIN + "max_ctas = 4\ncolour = 2\n",
     "bad.toml:4: tenant 'train': unknown field 'colour'"),
    ("unknown top-level key", 'tenant = 1\n' + TRAIN + "max_ctas = 4\n",
     "bad.toml:1: unknown top-level key 'tenant' (did you mean 'tenants'?); a quota file holds [tenants.NAME] "
     "tables (and an optional [access] table)"),
    ("bad class", '[tenants.train]\nclass = "latency_critical"\nmax_ctas = 4\n',
     "bad.toml:2: tenant 'train': field 'class': 'latency_critical' is not 'best-effort' or 'latency-critical' "
     "(did you mean 'latency-critical'?)"),
    ("class as a number", '[tenants.train]\nclass = 1\nmax_ctas = 4\n',
     "bad.toml:2: tenant 'train': field 'class': expected 'best-effort' or 'latency-critical', got integer 1"),
    ("upper-case name", '[tenants.Train]\nclass = "best-effort"\nmax_ctas = 4\n',
     f"bad.toml:1: tenant 'Train': bad name: {NAME_RULE}"),
    ("name starting with a digit", '[tenants.9x]\nclass = "best-effort"\nmax_ctas = 4\n',
     f"bad.toml:1: tenant '9x': bad name: {NAME_RULE}"),
    ("name too long", f'[tenants.{"a" * 33}]\nclass = "best-effort"\nmax_ctas = 4\n',
     f"bad.toml:1: tenant '{'a' * 33}': bad name: {NAME_RULE}"),
    ("too many tenants", "".join(f'[tenants.t{i}]\nclass = "best-effort"\nmax_ctas = 1\n' for i in range(33)),
     "bad.toml:97: too many tenants: 33, at most 32 are allowed (tenant 't32' is number 33)"),
    ("zero tenants", "[tenants]\n",
     "bad.toml:1: no tenants: at least 1 [tenants.NAME] table is required"),
    ("no tenants table", "# nothing here\n",
     "bad.toml: no tenants: at least 1 [tenants.NAME] table is required"),
    ("tenants is not a table", "tenants = 5\n",
     "bad.toml:1: 'tenants' must be a table of [tenants.NAME] tables, got integer 5"),
    ("tenant is not a table", "[tenants]\ntrain = 5\n",
     "bad.toml:2: tenant 'train': expected a table of fields, got integer 5"),
    ("inline table", '[tenants]\ntrain = { class = "best-effort", max_ctas = 0 }\n',
     "bad.toml:2: tenant 'train': field 'max_ctas': 0 is out of range 1..65535"),
    ("dotted keys", '[tenants]\ntrain.class = "best-effort"\ntrain.max_ctas = 0\n',
     "bad.toml:3: tenant 'train': field 'max_ctas': 0 is out of range 1..65535"),
    ("TOML syntax error", TRAIN + "max_ctas = \n",
     "bad.toml:3:12: TOML syntax error: Invalid value"),
    ("duplicate tenant (tomllib)", TRAIN + "max_ctas = 4\n[tenants.train]\nweight = 2\n",
     "bad.toml:4:15: TOML syntax error: Cannot declare ('tenants', 'train') twice"),
    ("duplicate field (tomllib)", TRAIN + "max_ctas = 4\nmax_ctas = 5\n",
     "bad.toml:4:13: TOML syntax error: Cannot overwrite a value"),
]


@pytest.mark.parametrize("text, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_file_errors(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    Path("bad.toml").write_text(text)
    with pytest.raises(QuotaError) as caught:
        load_quotas("bad.toml")
    assert str(caught.value) == message
    assert isinstance(caught.value, InputError)


def test_error_names_the_path_as_given(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TRAIN + "weight = 0\nmax_ctas = 4\n")
    with pytest.raises(QuotaError) as caught:
        load_quotas(path)
    assert (caught.value.path, caught.value.line) == (str(path), 3)
    assert caught.value.reason == "tenant 'train': field 'weight': 0 is out of range 1..10000"


def test_unreadable_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QuotaError) as caught:
        load_quotas("missing.toml")
    assert str(caught.value) == "missing.toml: cannot read the quota file: No such file or directory"
    Path("binary.toml").write_bytes(b"# \xff\n")
    with pytest.raises(QuotaError) as caught:
        load_quotas("binary.toml")
    assert str(caught.value) == "binary.toml: not UTF-8 text: byte 0xff at offset 2"


def test_a_file_with_one_bad_tenant_is_refused_whole(tmp_path):
    good = "".join(f'[tenants.t{i}]\nclass = "best-effort"\nmax_ctas = 1\n' for i in range(5))
    path = tmp_path / "q.toml"
    path.write_text(good + '[tenants.last]\nclass = "best-effort"\nmax_ctas = 1\nburst = 70000\n')
    with pytest.raises(QuotaError, match=r"q\.toml:19: tenant 'last': field 'burst': 70000 is out of range"):
        load_quotas(path)


def test_dict_input_gets_the_defaults():
    quotas = load_quotas({"tenants": {"a": {"class": "best-effort", "max_ctas": 7},
                                      "b": {"class": "latency-critical", "max_ctas": 1, "weight": 9}}})
    assert quotas == QuotaSet((
        Tenant("a", "best-effort", weight=1, max_ctas=7, warp_cap=65535, dma_bytes_per_epoch=0, burst=0),
        Tenant("b", "latency-critical", weight=9, max_ctas=1, warp_cap=65535, dma_bytes_per_epoch=0, burst=0),
    ), "<dict>")


@pytest.mark.parametrize("data, message", [
    ({"tenants": {"a": {"class": "best-effort", "max_ctas": True}}},
     "<dict>: tenant 'a': field 'max_ctas': expected an integer, got boolean true"),
    ({}, "<dict>: no tenants: at least 1 [tenants.NAME] table is required"),
    ({"tenants": {5: {}}}, f"<dict>: tenant 5: bad name: {NAME_RULE}"),
    ({"tenants": {"a": {"class": "best-effort"}}}, "<dict>: tenant 'a': missing required field 'max_ctas'"),
], ids=["bool", "empty", "name not a string", "missing field"])
def test_dict_errors(data, message):
    with pytest.raises(QuotaError) as caught:
        load_quotas(data)
    assert str(caught.value) == message
    assert caught.value.line is None


def test_numpy_integers_in_a_dict_become_ints():
    tenant = load_quotas({"tenants": {"a": {"class": "best-effort", "max_ctas": np.int64(3)}}}).tenants[0]
    assert type(tenant.max_ctas) is int and tenant.max_ctas == 3


def test_a_quota_set_is_returned_as_is():
    quotas = load_quotas(QUOTA_DIR / "demo.toml")
    assert load_quotas(quotas) is quotas


def test_other_sources_are_a_type_error():
    with pytest.raises(TypeError, match=r"^load_quotas: expected a quota file path, a dict or a QuotaSet, "
                                        r"got int 3$"):
        load_quotas(3)


def test_index_and_names():
    quotas = load_quotas(QUOTA_DIR / "demo.toml")
    assert quotas.names == ("infer", "train", "batch")
    assert [quotas.index(n) for n in quotas.names] == [0, 1, 2]


def test_index_of_a_missing_tenant_names_it_and_the_known_ones():
    quotas = load_quotas({"tenants": {"a": {"class": "best-effort", "max_ctas": 1},
                                      "b": {"class": "best-effort", "max_ctas": 1}}})
    with pytest.raises(UnknownTenantError) as caught:
        quotas.index("c")
    assert str(caught.value) == "<dict>: no tenant 'c'; the tenants are a, b"
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, QuotaError)


def test_with_fields_changes_one_tenant_and_checks_the_whole_set():
    qs = load_quotas(QUOTA_DIR / "demo.toml")
    changed = qs.with_fields("batch", weight=5, class_="best-effort")
    assert changed.tenants[changed.index("batch")].weight == 5
    assert [t for t in changed.tenants if t.name != "batch"] == [t for t in qs.tenants if t.name != "batch"]
    with pytest.raises(QuotaError, match=r"^<dict>: tenant 'batch': field 'weight'"):
        qs.with_fields("batch", weight=-1)
    with pytest.raises(UnknownTenantError, match=r"no tenant 'nosuch'; the tenants are infer, train, batch"):
        qs.with_fields("nosuch", weight=1)
