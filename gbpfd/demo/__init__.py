"""``gbpfd demo``: the plane with the baseline policy and the shipped demo
quotas, a latency-critical tenant beside two weighted best-effort tenants
and a paced copy, a live policy swap half-way, and the figures that show
whether it all worked."""
from gbpfd.demo.run import DemoConfig, run_demo
from gbpfd.demo.report import format_report

__all__ = ["DemoConfig", "format_report", "run_demo"]
