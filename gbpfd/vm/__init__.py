"""Interpreters: the bounds-checked reference VM (the oracle) and the fast VM."""
