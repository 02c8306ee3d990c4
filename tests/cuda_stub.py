"""Compile device code without a GPU: the stand-in device lives in the
package (``gbpfd.ptx``), where ``gbpfd check``'s compile stage uses it
too; the tests import it from here."""
from gbpfd.ptx import TARGET_CC, nvvm_missing_reason, stand_in_device  # noqa: F401
