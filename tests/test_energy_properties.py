"""Property tests: shuffling, repeating or splitting a stream into batches changes no bucket and no flag.

The incremental roll-up (modelled in tests/energy_streams.py as the database does it) must
give what the rules give on the whole stream at once, for counters with every fault of
energy-cases.md and for power sampled each way.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.energy import INSTANT, INTERVAL_AVERAGE, INTERVAL_AVERAGE_START, Rules

from .energy_streams import COUNTER_RULES, ROLLOVER_RULES, RollUpModel, assert_same_buckets, counter_streams, from_scratch, power_streams

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def deliveries(draw, stream):
    """The stream as the broker may deliver it: some samples twice, in any order, cut into batches."""
    repeated = draw(st.lists(st.sampled_from(stream), max_size=len(stream))) if stream else []
    shuffled = draw(st.permutations(stream + repeated))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(shuffled) - 1)), max_size=10)))
    return [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)])]


def check(stream, batches, rules):
    model = RollUpModel(rules)
    for batch in batches:
        model.ingest(batch)
    buckets, flags = from_scratch(stream, rules)
    assert_same_buckets(model.buckets, buckets)
    assert model.flags == flags


@PROPERTY_SETTINGS
@given(st.data())
def test_counter_batches_in_any_order_with_repeats_equal_the_whole_stream(data):
    stream = data.draw(counter_streams())
    check(stream, data.draw(deliveries(stream)), COUNTER_RULES)


@PROPERTY_SETTINGS
@given(st.data())
def test_counter_with_a_declared_rollover_in_any_order_equals_the_whole_stream(data):
    stream = data.draw(counter_streams(rollover=ROLLOVER_RULES.rollover_wh))
    check(stream, data.draw(deliveries(stream)), ROLLOVER_RULES)


@pytest.mark.parametrize("kind", [INSTANT, INTERVAL_AVERAGE, INTERVAL_AVERAGE_START])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_power_batches_in_any_order_with_repeats_equal_the_whole_stream(kind, data):
    stream = data.draw(power_streams())
    check(stream, data.draw(deliveries(stream)), Rules(kind, max_power_w=50_000.0, max_gap_s=900.0))


@PROPERTY_SETTINGS
@given(st.data())
def test_one_batch_or_one_sample_at_a_time_give_the_same_buckets(data):
    stream = data.draw(counter_streams())
    one_by_one = RollUpModel(COUNTER_RULES)
    for sample in stream:
        one_by_one.ingest([sample])
    whole = RollUpModel(COUNTER_RULES)
    whole.ingest(stream)
    assert_same_buckets(one_by_one.buckets, whole.buckets)
    assert one_by_one.flags == whole.flags
