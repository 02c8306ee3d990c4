"""docs/isa.md and docs/abi.md are generated from the table and the ABI."""
from pathlib import Path

import pytest

from gbpfd.isa import docgen
from gbpfd.isa.table import ROWS

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", sorted(docgen.PAGES))
def test_committed_page_matches_generator(name):
    committed = (DOCS / name).read_text()
    assert committed == docgen.PAGES[name](), (
        f"docs/{name} is stale: run `python -m gbpfd.isa.docgen`")


def test_every_row_is_documented():
    page = docgen.render_isa()
    for row in ROWS:
        assert f"| `{row.opcode:#04x}` | `{row.mnemonic}` |" in page, row
