"""Per-unit metrics against Elephant, SpikeInterface and plain per-unit loops."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikerates.errors import ParameterError
from spikerates.metrics import (
    METRIC_NAMES,
    UnitTable,
    compute_metrics,
    concat_tables,
    observed_intervals,
    summarize,
)
from spikerates.spiketrains import SpikeTrains

FS = 1000.0  # sampling rate of the SpikeInterface oracle, Hz
DURATION = 250.0  # seconds: four full presence bins and a partial one


def _sample_units(rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Spike samples at FS: Poisson units of several rates, one with
    refractory violations, one silent for most of the recording."""
    n = int(DURATION * FS)
    units = {
        0: np.unique(rng.integers(0, n, 3000)),
        1: np.unique(rng.integers(0, n, 40)),
        2: np.unique(rng.integers(0, n // 5, 200)),  # only in the first bin
    }
    base = np.unique(rng.integers(0, n - 2, 500))
    units[3] = np.unique(np.concatenate([base, base[::10] + 1]))  # 1 ms ISIs
    return units


@pytest.fixture(scope="module")
def si_case():
    """SpikeInterface's own metrics on a NumpySorting and our SpikeTrains."""
    si = pytest.importorskip("spikeinterface.core")
    from spikeinterface.metrics.quality.misc_metrics import (
        compute_isi_violations,
        compute_presence_ratios,
    )
    from spikeinterface.metrics.spiketrain.metrics import compute_firing_rates

    units = _sample_units(np.random.default_rng(7))
    sorting = si.NumpySorting.from_unit_dict([units], FS)
    recording = si.generate_recording(
        num_channels=1, sampling_frequency=FS, durations=[DURATION]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = si.create_sorting_analyzer(
            sorting, recording, format="memory", sparse=False
        )
        expected = {
            "firing_rate": compute_firing_rates(analyzer),
            "presence_ratio": compute_presence_ratios(analyzer, bin_duration_s=60.0),
        }
        isi = compute_isi_violations(analyzer, isi_threshold_ms=1.5, min_isi_ms=0.2)
    expected["isi_violations_ratio"] = isi.isi_violations_ratio
    expected["isi_violations_count"] = isi.isi_violations_count
    trains = SpikeTrains(
        [units[k] / FS for k in sorted(units)],
        unit_ids=np.array(sorted(units)),
        t_start=0.0,
        t_stop=DURATION,
    )
    return trains, expected


@pytest.mark.parametrize(
    "name",
    ["firing_rate", "presence_ratio", "isi_violations_ratio", "isi_violations_count"],
)
def test_metrics_match_spikeinterface(si_case, name):
    trains, expected = si_case
    table = compute_metrics(
        trains, presence_bin=60.0, isi_threshold=0.0015, min_isi=0.0002
    )
    want = np.array([expected[name][u] for u in trains.unit_ids], dtype=np.float64)
    np.testing.assert_allclose(table.columns[name], want, rtol=1e-9, atol=0)
    if name == "isi_violations_count":
        assert table.columns[name][3] > 0


def test_presence_ratio_recording_shorter_than_a_bin():
    trains = SpikeTrains([np.array([1.0, 2.0]), np.array([5.0])], t_start=0, t_stop=30)
    table = compute_metrics(trains, presence_bin=60.0)
    assert np.all(np.isnan(table.columns["presence_ratio"]))
    np.testing.assert_allclose(table.columns["firing_rate"], [2 / 30, 1 / 30])


def _elephant_isi_stats(times: np.ndarray):
    from elephant.statistics import cv2, isi, lv
    from scipy.stats import variation

    intervals = isi(times)
    return variation(intervals), cv2(intervals), lv(intervals)


def test_cv_cv2_lv_match_elephant(rng):
    elephant_stats = pytest.importorskip("elephant.statistics")
    del elephant_stats
    trains = SpikeTrains(
        [
            np.sort(rng.uniform(0, 100, 800)),
            np.cumsum(rng.gamma(4.0, 0.025, 500)),
            np.sort(rng.uniform(0, 100, 3)),
        ],
        t_start=0.0,
        t_stop=130.0,
    )
    table = compute_metrics(trains)
    for i, times in enumerate(trains.spike_times):
        want = _elephant_isi_stats(times)
        for name, value in zip(("cv", "cv2", "lv"), want, strict=True):
            np.testing.assert_allclose(table.columns[name][i], value, rtol=1e-9)
    # Regular gamma(4) intervals: CV near 1/2, Lv near 3/(2*4+1) = 1/3.
    assert abs(table.columns["cv"][1] - 0.5) < 0.08
    assert abs(table.columns["lv"][1] - 1 / 3) < 0.08


def test_fano_factor_matches_elephant(rng):
    from elephant.statistics import fanofactor

    times = np.sort(rng.uniform(0, 50.5, 400))
    trains = SpikeTrains([times], t_start=0.0, t_stop=50.5)
    table = compute_metrics(trains, fano_window=2.0)
    # 25 full windows of 2 s; the partial one is left out.
    edges = np.arange(26) * 2.0
    windows = [
        times[(times >= a) & (times < b)]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    windows[-1] = times[(times >= edges[-2]) & (times <= edges[-1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = fanofactor(windows)
    np.testing.assert_allclose(table.columns["fano_factor"][0], want, rtol=1e-9)


def _plain_metrics(times, intervals, *, presence_bin, threshold, min_isi, window):
    """The metrics of one unit by a plain loop over its observation intervals."""
    pieces = [times[(times >= a) & (times <= b)] for a, b in intervals]
    n = sum(p.size for p in pieces)
    duration = sum(b - a for a, b in intervals)
    isis = np.concatenate([np.diff(p) for p in pieces]) if pieces else np.zeros(0)
    pairs = [(np.diff(p)[:-1], np.diff(p)[1:]) for p in pieces if p.size >= 3]
    first = np.concatenate([a for a, _ in pairs]) if pairs else np.zeros(0)
    second = np.concatenate([b for _, b in pairs]) if pairs else np.zeros(0)

    total = first + second
    local = np.array(
        [
            (b - a) / t if t > 0 else 0.0
            for a, b, t in zip(first, second, total, strict=True)
        ]
    )

    def full_bins(width):
        counts = []
        for (a, b), p in zip(intervals, pieces, strict=True):
            k = int(np.floor((b - a) / width + 1e-9))
            if k:
                counts.extend(np.histogram(p, bins=a + width * np.arange(k + 1))[0])
        return np.array(counts)

    pres = full_bins(presence_bin)
    win = full_bins(window)
    v = int(np.sum(isis < threshold))
    out = {
        "num_spikes": n,
        "firing_rate": n / duration,
        "presence_ratio": np.mean(pres > 0) if pres.size else np.nan,
        "isi_violations_count": v,
        "isi_violations_ratio": v * duration / (2 * n**2 * (threshold - min_isi))
        if n
        else np.nan,
        "cv": np.std(isis) / np.mean(isis) if isis.size >= 2 else np.nan,
        # Two zero intervals (a time repeated three times) vary by nothing.
        "cv2": 2 * np.mean(np.abs(local)) if first.size else np.nan,
        "lv": 3 * np.mean(local**2) if first.size else np.nan,
        "fano_factor": np.var(win) / np.mean(win)
        if win.size >= 2 and np.mean(win) > 0
        else np.nan,
    }
    return out


def test_obs_intervals_with_gaps_match_plain_loop(rng):
    obs = [
        np.array([[0.0, 130.0], [200.0, 330.5]]),
        np.array([[10.0, 20.0], [50.0, 200.0], [199.0, 260.0]]),  # overlapping
        np.array([[0.0, 400.0]]),
        np.zeros((0, 2)),
    ]
    spikes = [np.sort(rng.uniform(0, 400, m)) for m in (900, 700, 5, 50)]
    trains = SpikeTrains(spikes, t_start=0.0, t_stop=400.0, obs_intervals=obs)
    params = dict(presence_bin=60.0, threshold=0.002, min_isi=0.0, window=1.0)
    table = compute_metrics(trains, isi_threshold=0.002, presence_bin=60.0)
    merged = observed_intervals(trains)
    np.testing.assert_array_equal(merged[1], [[10.0, 20.0], [50.0, 260.0]])
    assert merged[3].shape == (0, 2)
    for i in range(3):
        want = _plain_metrics(spikes[i], merged[i], **params)
        for name in METRIC_NAMES:
            np.testing.assert_allclose(
                table.columns[name][i], want[name], rtol=1e-9, err_msg=name
            )
    # A unit never observed: no spikes, no time, every rate-like value NaN.
    assert table.columns["num_spikes"][3] == 0
    assert np.isnan(table.columns["firing_rate"][3])


def test_intervals_spanning_a_gap_are_not_intervals():
    # Two spikes 1 ms apart across a gap: not a violation.
    trains = SpikeTrains(
        [np.array([0.5, 9.9995, 10.0005, 15.0])],
        obs_intervals=[np.array([[0.0, 10.0], [10.0001, 20.0]])],
    )
    table = compute_metrics(trains)
    assert table.columns["isi_violations_count"][0] == 0
    joined = SpikeTrains([trains.spike_times[0]], t_start=0.0, t_stop=20.0)
    assert compute_metrics(joined).columns["isi_violations_count"][0] == 1


def test_empty_and_one_spike_units():
    trains = SpikeTrains(
        [np.array([]), np.array([3.0]), np.array([1.0, 2.0])],
        unit_ids=np.array([5, 6, 7]),
        labels=np.array(["mua", "good", "good"]),
        label_column="quality",
        t_start=0.0,
        t_stop=120.0,
    )
    table = compute_metrics(trains)
    c = table.columns
    assert table.names[:2] == ["cluster_id", "quality"]
    np.testing.assert_array_equal(c["cluster_id"], [5, 6, 7])
    np.testing.assert_array_equal(c["num_spikes"], [0, 1, 2])
    np.testing.assert_allclose(c["firing_rate"], [0.0, 1 / 120, 2 / 120])
    np.testing.assert_allclose(c["presence_ratio"], [0.0, 0.5, 0.5])
    assert np.isnan(c["isi_violations_ratio"][0])
    assert c["isi_violations_ratio"][1] == 0.0
    np.testing.assert_array_equal(c["isi_violations_count"], [0, 0, 0])
    for name in ("cv", "cv2", "lv"):
        assert np.all(np.isnan(c[name])), name
    assert np.isnan(c["fano_factor"][0])
    assert c["num_spikes"].dtype == np.int64
    assert c["isi_violations_count"].dtype == np.int64


def test_spikes_exactly_on_bin_edges():
    # Bins [0, 60), [60, 120]: the spike at 60 is in the second bin, the one
    # at 120 (the last edge) in the last bin, the one at 130 in no full bin.
    for times, want in [
        ([60.0], 0.5),
        ([120.0], 0.5),
        ([0.0, 120.0], 1.0),
        ([130.0], 0.0),
        ([59.999, 60.0], 1.0),
    ]:
        trains = SpikeTrains([np.array(times)], t_start=0.0, t_stop=130.0)
        got = compute_metrics(trains, presence_bin=60.0).columns["presence_ratio"][0]
        assert got == want, times
    # A window of exactly three bins has three, though (0.5 - 0.2) / 0.1 < 3.
    assert (0.5 - 0.2) / 0.1 < 3
    trains = SpikeTrains([np.array([0.25, 0.49])], t_start=0.2, t_stop=0.5)
    got = compute_metrics(trains, presence_bin=0.1).columns["presence_ratio"][0]
    assert got == 2 / 3


def test_observed_time_without_a_window_spans_all_units():
    trains = SpikeTrains([np.array([2.0, 3.0]), np.array([10.0, 12.0])])
    table = compute_metrics(trains)
    np.testing.assert_allclose(table.columns["firing_rate"], [2 / 10, 2 / 10])
    summary = summarize(trains)
    np.testing.assert_allclose(summary.columns["observed_duration"], [10.0, 10.0])
    assert summary.attrs == {"t_start": 2.0, "t_stop": 12.0}


def test_one_stated_end_takes_the_other_from_the_spikes():
    trains = SpikeTrains([np.array([2.0, 3.0]), np.array([10.0])], t_start=0.0)
    np.testing.assert_allclose(summarize(trains).columns["observed_duration"], 10.0)


def test_summarize_columns(sample_trains):
    summary = summarize(sample_trains)
    c = summary.columns
    np.testing.assert_array_equal(c["unit_id"], sample_trains.unit_ids)
    np.testing.assert_array_equal(c["label"], sample_trains.labels)
    np.testing.assert_array_equal(
        c["num_spikes"], [t.size for t in sample_trains.spike_times]
    )
    for i, times in enumerate(sample_trains.spike_times):
        if times.size:
            assert c["first_spike"][i] == times.min()
            assert c["last_spike"][i] == times.max()
        else:
            assert np.isnan(c["first_spike"][i]) and np.isnan(c["last_spike"][i])
    span = max(t.max() for t in sample_trains.spike_times if t.size) - min(
        t.min() for t in sample_trains.spike_times if t.size
    )
    np.testing.assert_allclose(c["observed_duration"], span)
    np.testing.assert_allclose(c["firing_rate"], c["num_spikes"] / span)


def test_summarize_counts_only_observed_spikes_in_the_rate():
    trains = SpikeTrains(
        [np.array([1.0, 2.0, 15.0])],
        obs_intervals=[np.array([[0.0, 4.0]])],
        t_start=0.0,
        t_stop=20.0,
    )
    c = summarize(trains).columns
    assert c["num_spikes"][0] == 3
    assert c["observed_duration"][0] == 4.0
    assert c["firing_rate"][0] == 0.5


def test_summarize_window_counts_spikes_inside():
    trains = SpikeTrains([np.array([1.0, 2.0, 15.0])], t_start=0.0, t_stop=10.0)
    assert summarize(trains).columns["firing_rate"][0] == 0.2


def test_no_units():
    trains = SpikeTrains([])
    assert compute_metrics(trains).n_rows == 0
    assert summarize(trains).n_rows == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"presence_bin": 0}, "presence_bin"),
        ({"isi_threshold": -1}, "isi_threshold"),
        ({"fano_window": np.inf}, "fano_window"),
        ({"min_isi": 0.002}, "min_isi"),
        ({"min_isi": -0.001}, "min_isi"),
    ],
)
def test_bad_parameters(kwargs, match):
    trains = SpikeTrains([np.array([1.0])])
    with pytest.raises(ParameterError, match=match):
        compute_metrics(trains, **kwargs)


def test_table_rows_and_concat():
    a = UnitTable({"cluster_id": np.array([1, 2]), "x": np.array([0.5, np.nan])})
    b = UnitTable({"cluster_id": np.array(["a"]), "x": np.array([2.0])})
    both = concat_tables([a, b], ["f1.nwb", "f2.npz"])
    assert both.names == ["file", "cluster_id", "x"]
    np.testing.assert_array_equal(both.columns["file"], ["f1.nwb", "f1.nwb", "f2.npz"])
    np.testing.assert_array_equal(both.columns["cluster_id"], ["1", "2", "a"])
    rows = both.rows()
    assert rows[0] == {"file": "f1.nwb", "cluster_id": "1", "x": 0.5}
    assert np.isnan(rows[1]["x"])
    c = UnitTable({"cluster_id": np.array([5]), "quality": np.array(["good"])})
    mixed = concat_tables([a, c], ["f1", "f3"])
    assert mixed.names == ["file", "cluster_id", "x", "quality"]
    np.testing.assert_array_equal(mixed.columns["quality"], ["", "", "good"])
    assert np.isnan(mixed.columns["x"][2])
    np.testing.assert_array_equal(mixed.columns["cluster_id"], [1, 2, 5])
    with pytest.raises(ValueError, match="lengths"):
        UnitTable({"a": np.zeros(2), "b": np.zeros(3)})


@st.composite
def _unit_with_intervals(draw):
    """Spike times in [0, 50) s and one to three observation intervals."""
    times = np.sort(
        np.array(
            draw(
                st.lists(
                    st.floats(0, 50, allow_nan=False, exclude_max=True),
                    max_size=60,
                )
            )
        )
    )
    cuts = sorted(draw(st.lists(st.floats(0, 50), min_size=2, max_size=6, unique=True)))
    pairs = [(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False)]
    return times, np.array(pairs, dtype=float).reshape(-1, 2)


@settings(max_examples=60, deadline=None)
@given(_unit_with_intervals())
def test_property_matches_plain_loop(case):
    times, intervals = case
    trains = SpikeTrains([times], t_start=0.0, t_stop=50.0, obs_intervals=[intervals])
    table = compute_metrics(
        trains, presence_bin=5.0, isi_threshold=0.5, fano_window=2.0
    )
    want = _plain_metrics(
        times,
        observed_intervals(trains)[0],
        presence_bin=5.0,
        threshold=0.5,
        min_isi=0.0,
        window=2.0,
    )
    for name in METRIC_NAMES:
        got = table.columns[name][0]
        if name == "firing_rate" and not sum(b - a for a, b in intervals):
            assert np.isnan(got)
            continue
        np.testing.assert_allclose(got, want[name], rtol=1e-9, atol=1e-12, err_msg=name)
