"""Integer ids of the table's semantic operations, as module constants.

The fast interpreter switches on these names (``opids.ADD``); Numba folds
module attributes into constants, so dispatch compiles to a jump table.
The names come from the table, so an interpreter can only handle what the
table defines.
"""
from gbpfd.isa.table import OPS

INVALID = -1
globals().update({name.upper(): i for i, name in enumerate(OPS)})
