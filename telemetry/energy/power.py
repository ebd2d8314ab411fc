"""Energy from power samples, integrated the way the parameter map says the device samples.

- instant: power at the sample's instant; energy between two samples by the trapezoid rule;
- interval average: the sample is the mean over the interval ending at it;
- interval average stamped at the start: the mean over the interval starting at it.
Two samples further apart than the channel's maximum gap are not integrated: what happened
between them is unknown, so the buckets lose coverage instead of gaining made-up energy.
A sample above the plausible maximum (either sign) is refused and flagged.
"""

from .samples import INSTANT, INTERVAL_AVERAGE, Energy, Flag, Interval, Rules, in_time_order


def power_energy(samples, rules: Rules) -> Energy:
    valid, flags = [], []
    for sample in in_time_order(samples):
        if rules.max_power_w is not None and abs(sample.value) > rules.max_power_w:
            flags.append(Flag(sample.time, "out_of_range", f"{sample.value:g} W is above the plausible {rules.max_power_w:g} W"))
        else:
            valid.append(sample)
    intervals = []
    for earlier, later in zip(valid, valid[1:]):
        seconds = (later.time - earlier.time).total_seconds()
        if rules.max_gap_s is not None and seconds > rules.max_gap_s:
            continue
        if rules.kind == INSTANT:
            energy = (earlier.value + later.value) / 2 * seconds / 3600.0
            intervals.append(Interval(earlier.time, later.time, energy, earlier.value, later.value))
        else:
            power = later.value if rules.kind == INTERVAL_AVERAGE else earlier.value
            intervals.append(Interval(earlier.time, later.time, power * seconds / 3600.0))
    return Energy(intervals, flags)
