"""build_memory refuses what the ABI limits refuse, with the limit's own figure."""
import pytest

from gbpfd.isa.abi import LIMITS
from gbpfd.isa.program import MapDef
from gbpfd.vm.memory import build_memory


def test_maps_over_the_map_byte_limit_are_refused():
    maps = (MapDef("a", "array", LIMITS.max_map_bytes, 1), MapDef("b", "array", 1, 1))
    with pytest.raises(ValueError) as err:
        build_memory(maps)
    assert str(err.value) == f"maps need {LIMITS.max_map_bytes + 8} bytes, at most {LIMITS.max_map_bytes} are allowed"


def test_maps_at_the_limit_and_shared_maps_are_laid_out():
    maps = (MapDef("a", "array", LIMITS.max_map_bytes, 1), MapDef.of_kind("q", "quota"))
    memory = build_memory(maps)
    assert memory.nmaps == 2 and int(memory.size[int(memory.map_rid[0])]) == LIMITS.max_map_bytes
