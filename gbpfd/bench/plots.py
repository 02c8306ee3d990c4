"""PNG plots of a record: one latency-CDF chart per case that kept CDFs
(the hardware floor dashed), one bar chart per bar set (the target as a
line, or a shaded band where the target is a tolerance).  matplotlib draws
off-screen (Agg).

What each chart must not do, since a reader takes a plot at its word: say
"SIMULATED device" over a host-CPU figure, hide a value behind its legend,
draw curves that coincide as one without saying so, crowd a log axis with
overlapping labels, or draw a band target as an exact line.
"""
from __future__ import annotations

from pathlib import Path

from gbpfd.bench.stats import CDF_LEVELS

LINESTYLES = ("-", "--", "-.", ":")
HEADROOM = 1.15  # the top of a bar chart, over its highest bar or target: room for the value labels
TARGET_COLOR = "red"


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


def where_measured(record: dict, case: dict) -> str:
    """What the figures of ``case`` were measured on, as a title says it."""
    m = record["machine"]
    backend = case.get("backend", record["backend"])
    if backend == "host":
        return f"host CPU ({m['host_cpu']}), no device involved"
    return m["gpu"] if backend == "cuda" and m.get("gpu") else "SIMULATED device"


def _title(record: dict, case: dict, name: str, what: str) -> str:
    return f"{name}: {what}\n{where_measured(record, case)}, {record['date'][:10]}, {record['commit'][:10]}"


def _curves(case: dict) -> list[tuple[list[str], dict]]:
    """The CDFs to draw: curves with the same quantiles are one curve under
    all their names (drawn apart, the last would hide the others)."""
    groups: dict[tuple, tuple[list[str], dict]] = {}
    for cname, c in case["cdfs"].items():
        if c["quantiles"]:
            groups.setdefault((tuple(c["quantiles"]), c["floor"]), ([], c))[0].append(cname)
    return list(groups.values())


def _curve_label(names: list[str], c: dict) -> str:
    floor = "floor, " if c["floor"] else ""
    each = " each, identical" if len(names) > 1 else ""
    return f"{' = '.join(names)} ({floor}n={c['samples']}{each})"


def _plain_number(value: float, _pos=None) -> str:
    return f"{value:g}"


def _log_axis(ax, low: float, high: float) -> None:
    """A log x axis labelled at 1, 2 and 5 per decade in plain numbers,
    with no labels on the minor ticks (which is where they overlapped)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_xscale("log")
    ax.set_xlim(low / 1.1, high * 1.1)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.xaxis.set_minor_formatter(NullFormatter())


def cdf_figure(plt, record: dict, name: str, case: dict):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    units, xs = None, []
    for i, (names, c) in enumerate(_curves(case)):
        style = {"linestyle": "--", "color": "black"} if c["floor"] else {"linestyle": LINESTYLES[i % len(LINESTYLES)]}
        ax.plot(c["quantiles"], CDF_LEVELS[:len(c["quantiles"])], label=_curve_label(names, c), **style)
        units = c["unit"]
        xs += [q for q in c["quantiles"] if q > 0]
    for fname, t in case["targets"].items():
        if case["figures"].get(fname, {}).get("unit") == units and t["op"] in ("<", "<="):
            ax.axvline(t["bound"], color=TARGET_COLOR, alpha=0.4, linewidth=1)
            # at the top: the legend sits at the bottom right, where a tail's targets fall
            ax.annotate(f"target {fname}", (t["bound"], 0.98), rotation=90, fontsize=7, color=TARGET_COLOR,
                        ha="right", va="top")
            xs.append(t["bound"])
    _log_axis(ax, min(xs), max(xs))
    ax.set_xlabel(units)
    ax.set_ylabel("fraction of samples")
    ax.set_ylim(0, 1.0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(_title(record, case, name, "latency CDF"), fontsize=9)
    fig.tight_layout()
    return fig


def _draw_target(ax, bars: dict) -> float:
    """The target as a labelled line, or a shaded band; its highest value."""
    band = bars.get("band")
    if band is not None:
        ax.axhspan(band[0], band[1], color=TARGET_COLOR, alpha=0.12, linewidth=0)
        ax.text(1.0, band[1], f" target {band[0]:g}-{band[1]:g}", transform=ax.get_yaxis_transform(),
                fontsize=8, color=TARGET_COLOR, va="bottom", ha="right")
        return band[1]
    if bars["target"] is None:
        return 0.0
    ax.axhline(bars["target"], color=TARGET_COLOR, linestyle="--", linewidth=1)
    ax.text(1.0, bars["target"], f"target {bars['target']:g} ", transform=ax.get_yaxis_transform(),
            fontsize=8, color=TARGET_COLOR, va="bottom", ha="right")
    return bars["target"]


def bar_figure(plt, record: dict, name: str, case: dict, bname: str, bars: dict):
    labels = list(bars["values"])
    values = [bars["values"][k] or 0.0 for k in labels]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(labels) + 2), 4))
    drawn = ax.bar(labels, values, color=["#4a7ab5" if bars["values"][k] is not None else "#cccccc" for k in labels])
    ax.bar_label(drawn, labels=[("-" if bars["values"][k] is None else f"{bars['values'][k]:.3g}") for k in labels],
                 fontsize=8)
    top = max(values + [_draw_target(ax, bars)])
    ax.set_ylim(0, (top or 1.0) * HEADROOM)
    ax.set_ylabel(bars["unit"])
    ax.tick_params(axis="x", labelsize=8, rotation=15)
    ax.set_title(_title(record, case, name, bname), fontsize=9)
    fig.tight_layout()
    return fig


def _save(plt, fig, path: Path) -> Path:
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
            written.append(_save(plt, cdf_figure(plt, record, name, case), Path(f"{stem}-{name}-cdf.png")))
        for bname, bars in case.get("bars", {}).items():
            written.append(_save(plt, bar_figure(plt, record, name, case, bname, bars),
                                 Path(f"{stem}-{name}-{bname}.png")))
    return written
