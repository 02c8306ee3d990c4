"""Outcome codes shared by both interpreters and the device plane."""

OK = 0
FAULT_BOUNDS = 1      # load or store outside a region, or without the right
FAULT_OPCODE = 2      # a slot that does not decode (unverified programs only)
FAULT_FUEL = 3        # more instructions than the fuel allowed
FAULT_HELPER = 4      # unknown helper id
FAULT_CALL_DEPTH = 5  # local calls nested deeper than the stack frames
FAULT_PC = 6          # control left the program or landed on an lddw's second slot

REASONS = {
    OK: "ok",
    FAULT_BOUNDS: "memory access out of bounds",
    FAULT_OPCODE: "invalid instruction",
    FAULT_FUEL: "out of fuel",
    FAULT_HELPER: "unknown helper",
    FAULT_CALL_DEPTH: "call depth exceeded",
    FAULT_PC: "jump out of the program",
}
