"""gbpfd: the device side of an extensible GPU policy plane."""

__version__ = "0.1.0"

__all__ = ["Plane", "PlaneOptions", "Periods", "admit", "admit_raw", "paced_copy", "warp_gate", "load_quotas",
           "attach"]


def __getattr__(name: str):
    # Lazy: importing gbpfd must not compile device code or touch a GPU.
    if name == "Plane":
        from gbpfd.plane.plane import Plane
        return Plane
    if name == "PlaneOptions":
        from gbpfd.plane.options import PlaneOptions
        return PlaneOptions
    if name == "Periods":
        from gbpfd.plane.arrays import Periods
        return Periods
    if name in ("admit", "paced_copy"):
        from gbpfd import admission as module
        return getattr(module, name)
    if name == "admit_raw":
        from gbpfd.admission_cupy import admit_raw
        return admit_raw
    if name == "warp_gate":
        from gbpfd.device.admit_kernels import warp_gate
        return warp_gate
    if name == "attach":
        from gbpfd.service.client import attach
        return attach
    if name == "load_quotas":
        from gbpfd.quotas.load import load_quotas
        return load_quotas
    raise AttributeError(f"module 'gbpfd' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names are not in the module's namespace until first used; list them for tab completion.
    return sorted({*globals(), *__all__})
