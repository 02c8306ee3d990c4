"""gbpfd: the device side of an extensible GPU policy plane."""

__version__ = "0.1.0"
