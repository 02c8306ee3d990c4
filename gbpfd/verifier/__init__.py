"""The verifier: nothing runs unless ``verify`` accepted it for its hook.

Modules: ``structure`` (decoding, CFG, termination rule, cost), ``scalar``
(range arithmetic), ``state`` (abstract registers and stacks), ``check``
(the abstract interpreter), ``log`` (log text), ``verdict`` (the API).
"""
from gbpfd.verifier.verdict import Verdict, verify

__all__ = ["Verdict", "verify"]
