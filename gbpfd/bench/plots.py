"""PNG plots of a record: one latency-CDF chart per case that kept CDFs
(the hardware floor dashed), one bar chart per bar set (the target as a
line).  matplotlib draws off-screen (Agg)."""
from __future__ import annotations

from pathlib import Path

from gbpfd.bench.stats import CDF_LEVELS


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:
        raise PlotsUnavailable("the plots need matplotlib: pip install 'gbpfd[bench]' (or pass --no-plots)") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _title(record: dict, case: str, what: str) -> str:
    m = record["machine"]
    where = m["gpu"] if m.get("gpu") else "SIMULATED device"
    return f"{case}: {what}\n{where}, {record['date'][:10]}, {record['commit'][:10]}"


def _cdf_chart(plt, record: dict, name: str, case: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for cname, c in case["cdfs"].items():
        if not c["quantiles"]:
            continue
        style = {"linestyle": "--", "color": "black"} if c["floor"] else {}
        label = f"{cname} (floor, n={c['samples']})" if c["floor"] else f"{cname} (n={c['samples']})"
        ax.plot(c["quantiles"], CDF_LEVELS[:len(c["quantiles"])], label=label, **style)
        units = c["unit"]
    for fname, t in case["targets"].items():
        if case["figures"].get(fname, {}).get("unit") == units and t["op"] in ("<", "<="):
            ax.axvline(t["bound"], color="red", alpha=0.4, linewidth=1)
            ax.annotate(f"target {fname}", (t["bound"], 0.02), rotation=90, fontsize=7, color="red")
    ax.set_xscale("log")
    ax.set_xlabel(units)
    ax.set_ylabel("fraction of samples")
    ax.set_ylim(0, 1.0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(_title(record, name, "latency CDF"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bar_chart(plt, record: dict, name: str, bname: str, bars: dict, path: Path) -> Path:
    labels = list(bars["values"])
    values = [bars["values"][k] or 0.0 for k in labels]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(labels) + 2), 4))
    drawn = ax.bar(labels, values, color=["#4a7ab5" if bars["values"][k] is not None else "#cccccc" for k in labels])
    ax.bar_label(drawn, labels=[("-" if bars["values"][k] is None else f"{bars['values'][k]:.3g}") for k in labels],
                 fontsize=8)
    if bars["target"] is not None:
        ax.axhline(bars["target"], color="red", linestyle="--", linewidth=1, label=f"target {bars['target']:g}")
        ax.legend(fontsize=8)
    ax.set_ylabel(bars["unit"])
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.set_title(_title(record, name, bname), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_plots(record: dict, stem: Path) -> list[Path]:
    """Write the record's plots as ``<stem>-<case>-<chart>.png``; the paths written."""
    charts = [(name, case) for name, case in record["cases"].items() if case.get("cdfs") or case.get("bars")]
    if not charts:
        return []
    plt = _pyplot()
    written = []
    for name, case in charts:
        if any(c["quantiles"] for c in case.get("cdfs", {}).values()):
            written.append(_cdf_chart(plt, record, name, case, Path(f"{stem}-{name}-cdf.png")))
        for bname, bars in case.get("bars", {}).items():
            written.append(_bar_chart(plt, record, name, bname, bars, Path(f"{stem}-{name}-{bname}.png")))
    return written
