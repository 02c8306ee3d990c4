"""docs/layout.md is generated from host_bridge/layout.toml and names all of it."""
import dataclasses
import tomllib
from pathlib import Path

import pytest

from gbpfd.bridge import layout_doc
from gbpfd.plane.plane import Health
from gbpfd.resources import shared_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def page() -> str:
    return layout_doc.render_layout()


def _layout_toml() -> dict:
    """Read here, not through gbpfd.bridge.layout, so an entry it skipped would show."""
    with open(shared_file("host_bridge", "layout.toml"), "rb") as fh:
        return tomllib.load(fh)


def _layout_entries():
    """(name, doc) of every word, op and event kind layout.toml defines."""
    data = _layout_toml()
    groups = [data["header"]["fields"], data["ring_header"]["fields"], data["snapshot"]["fields"],
              *(record["fields"] for record in data["records"].values())]
    for group in groups:
        for word in group:
            yield word["name"], word["doc"]
    for table in ("command_ops", "event_kinds"):
        for name, code in data[table].items():
            yield name, code["doc"]


def test_committed_page_matches_generator(page):
    assert (ROOT / layout_doc.PAGE).read_text() == page, (
        "docs/layout.md is stale: run `python -m gbpfd.bridge.layout_doc`")


@pytest.mark.parametrize("name, doc", list(_layout_entries()))
def test_every_layout_entry_appears_with_its_doc(page, name, doc):
    assert f"| `{name}` |" in page
    assert doc in page


def test_every_table_doc_and_size_appears(page):
    data = _layout_toml()
    for table in (data["header"], data["snapshot"], data["demand"], data["histogram"], *data["records"].values()):
        assert table["doc"][1:] in page, table["doc"]  # the page may capitalise the first letter
    assert f"then {data['rings']['command_slots']} records of" in page
    assert f"then {data['rings']['event_slots']} records of" in page
    assert f"{data['histogram']['buckets']} buckets per tenant" in page


def test_every_event_arg_name_appears_in_its_kind_row(page):
    from gbpfd.bridge.layout import EVENT_KINDS
    for kind in EVENT_KINDS.values():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{kind.name}` | {kind.id} |"))
        for arg in filter(None, kind.args):
            assert f"`{arg}`" in row, (kind.name, arg)


def test_every_region_appears_with_its_start(page):
    from gbpfd.bridge.layout import REGION
    for name, start in REGION._asdict().items():
        assert f"| `{name}` | {start} |" in page


def test_every_health_field_is_documented(page):
    for field in dataclasses.fields(Health):
        assert f"| `{field.name}` |" in page


def test_a_health_field_without_a_doc_is_refused(monkeypatch):
    monkeypatch.delitem(layout_doc.HEALTH_DOCS, "telemetry")
    with pytest.raises(ValueError, match="Health field 'telemetry' has no doc"):
        layout_doc.render_layout()


def test_main_writes_the_page(tmp_path, page):
    target = tmp_path / "layout.md"
    assert layout_doc.main(str(target)) == 0
    assert target.read_text() == page
