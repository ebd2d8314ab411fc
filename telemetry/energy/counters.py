"""Energy from a cumulative counter: the difference of consecutive samples, when it is not plain.

A drop below the last valid sample is, in the order tried:
1. jitter: small against the value (at most JITTER_FRACTION of it). Nothing counts until the
   counter passes its highest value again, so the wobble is never counted twice;
2. the end of an upward glitch: the last sample stepped up and this one is back between the two
   before: that last sample was invalid;
3. a glitch: within GLITCH_LOOKAHEAD samples the counter comes back to the value before the drop
   (a 0 or a bad read between good ones): the samples below are invalid;
4. a rollover: the register wrapped at its declared width, and the step across the wrap is plausible;
5. a reset: the counter restarted from zero, so the new value is the energy since the reset.
   Nothing is known of the time before it, so nothing more counts (and the new value is not
   counted either if it is more than the time since the last sample allows).
A step up:
- implying a power above the plausible maximum over the time since the value last changed is a
  spike (invalid), or, when the counter goes on from the new value, a jump (the register was set:
  the step is not counted). A long gap is not a spike: the power is judged over the whole time;
- after a value repeated (stale) for up to STALE_MAX_REPEATS samples, a step about as big as the
  counter's earlier rate over the whole stale time (a "double step") is spread over that time,
  estimated. A step that does not match the earlier rate is energy used when it was measured.

The rules remember the last MEMORY_SAMPLES valid samples and look GLITCH_LOOKAHEAD ahead, no
further: the highest value (for jitter) and the time the value last changed (for spikes) are
taken within that memory. So a sample's verdict never depends on what lies further away, and the
roll-up can work out a late sample's effect from a few stored neighbours (telemetry/energy/changes.py)
and get what the whole stream gives.
"""

from dataclasses import dataclass
from datetime import datetime

from .samples import Energy, Flag, Interval, Rules, Sample, in_time_order

JITTER_FRACTION = 1e-4
GLITCH_LOOKAHEAD = 3
MEMORY_SAMPLES = 6  # at least STALE_MAX_REPEATS + 2: a stale run and the step before it
# A longer run of one value is a real plateau (a PV counter at night), whatever comes after it.
STALE_MAX_REPEATS = 3
# A stale step is spread when, over the whole stale time, it runs at this range of the earlier rate
# while on its own interval it runs at least STALE_STEP_FACTOR times that rate.
STALE_RATE_RANGE = (2 / 3, 3 / 2)
STALE_STEP_FACTOR = 1.5
# A counter held at no more than this share of the step it then makes is taken as restored, not caught up.
JUMP_FROM_ZERO_FRACTION = 0.01


class _State:
    """Everything a later sample's verdict depends on. Never changed once made: the state before the
    last valid sample is kept as it was, so that verdict can be taken back."""

    __slots__ = ("last", "recent", "recent_times", "changed_at", "rate_w", "plateau_from", "stepped_up", "intervals", "flags",
                 "before_reset")

    def __init__(self, last=None, recent=(), recent_times=(), changed_at=None, rate_w=None, plateau_from=0,
                 stepped_up=False, intervals=0, flags=0, before_reset=None):
        self.last = last  # index of the last valid sample
        self.recent = recent  # values of the last MEMORY_SAMPLES valid samples since the last reset
        self.recent_times = recent_times  # and their times
        self.changed_at = changed_at  # when the counter last moved up (or restarted)
        self.rate_w = rate_w  # average power of the last interval that moved it
        self.plateau_from = plateau_from  # first interval of the current run of zero steps
        self.stepped_up = stepped_up  # the last valid sample was a plain step up
        self.intervals = intervals  # how many intervals and flags existed before the last valid sample
        self.flags = flags
        self.before_reset = before_reset  # (highest value, time) before the last reset, while it is remembered


@dataclass(frozen=True)
class Checkpoint:
    """Where a run stood at the top of its loop: a later run over the same samples plus newer ones resumes here."""

    index: int
    state: _State
    before_last: _State
    intervals: int
    flags: int


def counter_energy(samples, rules: Rules) -> Energy:
    return run_counter(in_time_order(samples), rules)[0]


def run_counter(ordered: list[Sample], rules: Rules, resume: tuple[Checkpoint, Energy] | None = None,
                checkpoint_until: int = -1) -> tuple[Energy, Checkpoint | None]:
    """The rules over samples in time order, one time each.

    `checkpoint_until`: also return the last checkpoint at or before this index whose verdicts so far looked
    at no sample after it plus GLITCH_LOOKAHEAD. `resume`: start from such a checkpoint of an earlier run
    (and that run's verdict), over the same samples up to there.
    """
    if resume is None:
        intervals: list[Interval] = []
        flags: list[Flag] = []
        state, before_last, i = _State(), _State(), 0
    else:
        checkpoint, earlier = resume
        intervals, flags = earlier.intervals[: checkpoint.intervals], earlier.flags[: checkpoint.flags]
        state, before_last, i = checkpoint.state, checkpoint.before_last, checkpoint.index
    checkpoint_at = None  # (index, state, before_last, intervals, flags): a tuple, made every sample

    def plausible(energy_wh: float, since: datetime | None, until: datetime) -> bool:
        """Whether the energy fits in the time at the plausible maximum power; `since` None: a time too long to know."""
        if rules.max_power_w is None or since is None:
            return True
        seconds = (until - since).total_seconds()
        return seconds > 0 and energy_wh * 3600.0 / seconds <= rules.max_power_w

    def keep(i: int, counts: tuple[int, int]) -> None:
        """Sample i is valid but did not move the counter (a repeat, jitter): it becomes the last one.

        The state before it is kept for a take-back; `counts`: intervals and flags before its verdict.
        """
        nonlocal state, before_last
        before_last = state
        sample = ordered[i]
        state = _State(i, (*state.recent[1 - MEMORY_SAMPLES:], sample.value), (*state.recent_times[1 - MEMORY_SAMPLES:], sample.time),
                       state.changed_at, state.rate_w, state.plateau_from, False, *counts, state.before_reset)

    def move(i: int, counts: tuple[int, int], rate_w: float | None, restart: bool = False, stepped_up: bool = False,
             before_reset: tuple[float, datetime] | None = None, reset_undone: bool = False) -> None:
        """Sample i is valid and moved the counter: a plateau may start after it.

        `restart`: the counter starts afresh here (reset, rollover, jump): nothing before it is remembered.
        """
        nonlocal state, before_last
        before_last = state
        sample = ordered[i]
        if restart:
            recent, recent_times = (sample.value,), (sample.time,)
        else:
            recent, recent_times = (*state.recent[1 - MEMORY_SAMPLES:], sample.value), (*state.recent_times[1 - MEMORY_SAMPLES:], sample.time)
        remembered = None if restart or reset_undone else state.before_reset
        state = _State(i, recent, recent_times, sample.time, rate_w, len(intervals), stepped_up, *counts, before_reset or remembered)

    while i < len(ordered):
        if i <= checkpoint_until:
            checkpoint_at = (i, state, before_last, len(intervals), len(flags))
        current = ordered[i]
        if state.last is None:
            # When the counter last moved is not known here: as far as the rules can tell, it has held this value for long.
            state = _State(last=i, recent=(current.value,), recent_times=(current.time,))
            i += 1
            continue
        last = ordered[state.last]
        high = max(state.recent)
        # When the counter last moved, if within the memory; None: it has held its value longer than that.
        changed_at = state.changed_at if state.changed_at is not None and state.changed_at >= state.recent_times[0] else None
        before_reset = state.before_reset if state.before_reset and state.before_reset[1] >= state.recent_times[0] else None
        start_count = (len(intervals), len(flags))

        if current.value < last.value:
            drop = last.value - current.value
            if drop <= JITTER_FRACTION * abs(last.value):
                intervals.append(Interval(last.time, current.time, 0.0))
                flags.append(Flag(current.time, "jitter", f"{drop:g} below the last value"))
                keep(i, start_count)
                i += 1
                continue
            if state.stepped_up and before_last.last is not None and current.value >= ordered[before_last.last].value:
                # The last sample stood out above both neighbours: take its verdict back and judge this one again.
                glitch = last
                del intervals[state.intervals:]
                del flags[state.flags:]
                state, before_last = before_last, _State()  # one take-back: the sample before is not judged again
                flags.append(Flag(glitch.time, "glitch", "stood above the samples on either side"))
                continue
            back = _comes_back(ordered, i, last.value)
            if back is not None:
                for k in range(i, back):
                    flags.append(Flag(ordered[k].time, "glitch", f"dropped from {last.value:g} and came back"))
                i = back
                continue
            if rules.rollover_wh:
                wrapped = current.value + rules.rollover_wh - high
                if 0 <= wrapped <= rules.rollover_wh / 2 and plausible(wrapped, changed_at, current.time):
                    intervals.append(Interval(last.time, current.time, wrapped))
                    flags.append(Flag(current.time, "rollover", f"wrapped at {rules.rollover_wh:g}"))
                    move(i, start_count, _rate(intervals[-1]), restart=True)
                    i += 1
                    continue
            counted = current.value if current.value >= 0 and plausible(current.value, last.time, current.time) else 0.0
            intervals.append(Interval(last.time, current.time, counted))
            detail = f"from {last.value:g} to {current.value:g}"
            flags.append(Flag(current.time, "reset", detail if counted == current.value else detail + "; the value is more than the time allows, not counted"))
            move(i, start_count, None, restart=True, before_reset=(high, current.time))
            i += 1
            continue

        step = current.value - high
        if step <= 0:  # repeated value, or still below the highest after jitter
            intervals.append(Interval(last.time, current.time, 0.0))
            keep(i, start_count)
            i += 1
            continue

        if before_reset is not None and current.value >= before_reset[0]:
            # Back at or above where it stood before the reset: the drop was a run of bad reads, not a reset.
            intervals.append(Interval(last.time, current.time, current.value - before_reset[0]))
            flags.append(Flag(current.time, "reset", f"back above {before_reset[0]:g}, its value before the reset at "
                                                     f"{before_reset[1].isoformat()}: that was a bad read, only the rise above it counts"))
            move(i, start_count, _rate(intervals[-1]), stepped_up=True, reset_undone=True)
            i += 1
            continue

        if changed_at is None and len(state.recent) < MEMORY_SAMPLES:
            changed_at = state.recent_times[0]  # the first readings known: judged over the time they span
        if changed_at is None:
            # Held longer than the memory: a catch-up of the time it was held, never a spike (a spike that
            # comes straight back down is still a glitch, taken back by the next sample). Unless it was held
            # at about zero: a register restored to its old value after a run of zero reads is a jump.
            if not plausible(step, state.recent_times[0], current.time):
                if abs(high) <= JUMP_FROM_ZERO_FRACTION * step:
                    flags.append(Flag(current.time, "jump", f"from {high:g}, held for more than {MEMORY_SAMPLES} readings, "
                                                            f"to {current.value:g}: more than the time allows, not counted"))
                    move(i, start_count, None, restart=True)
                    i += 1
                    continue
                flags.append(Flag(current.time, "stale", f"held {high:g} for more than {MEMORY_SAMPLES} readings; "
                                                         "the catch-up counts where it was read"))
            intervals.append(Interval(last.time, current.time, step))
            move(i, start_count, _rate(intervals[-1]), stepped_up=True)
            i += 1
            continue

        if not plausible(step, changed_at, current.time):
            following = ordered[i + 1] if i + 1 < len(ordered) else None
            if following is not None and following.value >= current.value and plausible(following.value - current.value, current.time, following.time):
                flags.append(Flag(current.time, "jump", f"from {high:g} to {current.value:g}: more than the time allows, not counted"))
                move(i, start_count, None, restart=True)
            else:
                flags.append(Flag(current.time, "spike", f"{step:g} above {high:g}: more than the time allows"))
            i += 1
            continue

        repeats = len(intervals) - state.plateau_from
        if 1 <= repeats <= STALE_MAX_REPEATS and state.rate_w and _is_stale_catch_up(step, state.rate_w, changed_at, last, current):
            stale_from = intervals[state.plateau_from].start
            del intervals[state.plateau_from:]
            intervals.append(Interval(stale_from, current.time, step, estimated=True))
            flags.append(Flag(current.time, "stale", f"repeated {repeats} time(s) before; spread since {stale_from.isoformat()}"))
        else:
            intervals.append(Interval(last.time, current.time, step))
        move(i, start_count, _rate(intervals[-1]), stepped_up=True)
        i += 1
    return Energy(intervals, flags), Checkpoint(*checkpoint_at) if checkpoint_at else None


def _rate(interval: Interval) -> float | None:
    seconds = (interval.end - interval.start).total_seconds()
    return interval.energy_wh * 3600.0 / seconds if seconds > 0 else None


def _is_stale_catch_up(step: float, rate_w: float, changed_at: datetime, last: Sample, current: Sample) -> bool:
    own_seconds = (current.time - last.time).total_seconds()
    whole_seconds = (current.time - changed_at).total_seconds()
    if own_seconds <= 0 or whole_seconds <= 0:
        return False
    low, high = STALE_RATE_RANGE
    whole_rate = step * 3600.0 / whole_seconds
    return step * 3600.0 / own_seconds >= STALE_STEP_FACTOR * rate_w and low * rate_w <= whole_rate <= high * rate_w


def _comes_back(ordered: list[Sample], drop_at: int, level: float) -> int | None:
    """Index of the first of the next GLITCH_LOOKAHEAD samples back at `level` or above, if any."""
    for k in range(drop_at + 1, min(drop_at + 1 + GLITCH_LOOKAHEAD, len(ordered))):
        if ordered[k].value >= level:
            return k
    return None
