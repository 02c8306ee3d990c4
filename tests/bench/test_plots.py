"""The plots say what was measured and hide nothing: a host figure is not
titled simulated, no legend or label covers a value, coinciding curves are
named together, log-axis labels do not collide, a band target is a band."""
from __future__ import annotations

import pytest

from gbpfd.bench import plots
from gbpfd.bench.stats import quantiles

plt = pytest.importorskip("matplotlib.pyplot") and plots._pyplot()

RECORD = {"backend": "sim", "date": "2026-12-02T10:00:00+00:00", "commit": "0123456789abcdef",
          "machine": {"gpu": None, "host_cpu": "AMD EPYC"}}


def _case(backend="sim", cdfs=None, bars=None, targets=None, figures=None):
    return {"backend": backend, "cdfs": cdfs or {}, "bars": bars or {}, "targets": targets or {},
            "figures": figures or {}}


def _cdf(samples, unit="us"):
    return {"unit": unit, "samples": len(samples), "floor": False, "quantiles": quantiles(samples)}


def _boxes(fig, texts):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts if t.get_text()]


def _overlapping(boxes) -> bool:
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.parametrize("backend, where", [
    ("host", "host CPU (AMD EPYC), no device involved"),
    ("sim", "SIMULATED device"),
])
def test_the_title_says_where_the_case_ran(backend, where):
    assert plots.where_measured(RECORD, _case(backend)) == where
    gpu = dict(RECORD, backend="cuda", machine={"gpu": "NVIDIA H200", "host_cpu": "x"})
    assert plots.where_measured(gpu, _case("cuda")) == "NVIDIA H200"
    assert plots.where_measured(gpu, _case("host")) == "host CPU (x), no device involved"


def test_no_legend_or_target_label_covers_a_bar_value():
    bars = {"unit": "x alone", "values": {"no plane": 0.986, "stream priorities": 0.962, "plane": 0.936},
            "target": 0.6, "band": None}
    fig = plots.bar_figure(plt, RECORD, "isolation", _case(bars={"be": bars}), "be", bars)
    ax = fig.axes[0]
    legend = [ax.get_legend()] if ax.get_legend() else []
    boxes = _boxes(fig, ax.texts) + [b.get_window_extent(fig.canvas.get_renderer()) for b in legend]
    assert len(boxes) == 4 + len(legend)  # three values and the target's label
    assert not _overlapping(boxes)
    plt.close(fig)


def test_a_band_target_is_drawn_as_a_band_not_a_line():
    bars = {"unit": "achieved/target", "values": {"a": 1.04, "b": 0.97}, "target": None, "band": [0.9, 1.1]}
    fig = plots.bar_figure(plt, RECORD, "paced_copy", _case(bars={"r": bars}), "r", bars)
    ax = fig.axes[0]
    drawn_bars = set(ax.containers[0])
    (span,) = [p for p in ax.patches if p not in drawn_bars]
    assert (round(span.get_y(), 6), round(span.get_y() + span.get_height(), 6)) == (0.9, 1.1)
    assert not ax.get_lines(), "no target line at exactly 1"
    assert "target 0.9-1.1" in [t.get_text().strip() for t in ax.texts]
    plt.close(fig)


def test_curves_that_coincide_are_one_curve_under_all_their_names():
    same = list(range(150, 180))
    case = _case(cdfs={"lc_alone": _cdf(same), "lc_noplane": _cdf(range(3000, 4000, 30)),
                       "lc_plane": _cdf(same), "lc_plane_alone": _cdf(same)})
    fig = plots.cdf_figure(plt, RECORD, "isolation", case)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["lc_alone = lc_plane = lc_plane_alone (n=30 each, identical)", "lc_noplane (n=34)"]
    assert len({line.get_linestyle() for line in fig.axes[0].get_lines()}) == 2
    plt.close(fig)


def test_log_axis_labels_do_not_collide():
    case = _case(cdfs={"fast": _cdf(range(150, 400)), "slow": _cdf(range(3000, 4200))})
    fig = plots.cdf_figure(plt, RECORD, "isolation", case)
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True)
              if t.get_text() and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
    assert [t.get_text() for t in labels] == ["200", "500", "1000", "2000"]
    assert not _overlapping(_boxes(fig, labels))
    plt.close(fig)
