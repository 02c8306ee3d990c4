"""The policy ISA: a verified subset of RFC 9669 eBPF (see docs/isa.md)."""
