"""A pynwb-written session with a trials table, for the PSTH tests."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone


def write_trials_session(
    path, trains, unit_ids, events, conditions, observed, *, description="condition"
) -> str:
    """An NWB file written by pynwb: a Units table (``obs_intervals`` per
    unit) and a trials table starting at ``events`` (1 s long) with a
    ``condition`` column."""
    import pynwb

    nwb = pynwb.NWBFile(
        session_description="trials session",
        identifier="trials-session",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    nwb.add_trial_column("condition", description)
    for start, cond in zip(events, conditions, strict=True):
        nwb.add_trial(start_time=start, stop_time=start + 1.0, condition=str(cond))
    for uid, times, obs in zip(unit_ids, trains, observed, strict=True):
        nwb.add_unit(spike_times=times, id=int(uid), obs_intervals=obs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pynwb.NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return str(path)
