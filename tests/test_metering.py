"""Which channels add up to an asset's energy (plain, no database)."""

from assets.metering import MeteredChannel, metering_plan

# site(1) ─ building(2) ┬ panel(3) ┬ circuit(4) ─ load(5)
#                       │          └ sub-panel(6) ─ circuit(7)
#                       └ heat pump(8)
TREE = {1: None, 2: 1, 3: 2, 4: 3, 5: 4, 6: 3, 7: 6, 8: 2}


def plan(channels, root=1):
    """As the caller does: the subtree's parent links and the channels on its assets."""
    subtree = {a: p for a, p in TREE.items() if _in_subtree(a, root)}
    return metering_plan(root, subtree, [MeteredChannel(*c) for c in channels if c[1] in subtree])


def _in_subtree(asset, root):
    while asset is not None:
        if asset == root:
            return True
        asset = TREE[asset]
    return False


def test_sub_meters_under_a_main_are_not_added_to_consumption():
    p = plan([(10, 3, "main"), (11, 4, "sub_meter"), (12, 5, "sub_meter")])
    assert p.consumption == [10]
    assert p.unmetered == {10: [11, 12]}


def test_a_sub_meter_without_a_main_above_is_consumption():
    p = plan([(11, 4, "sub_meter"), (13, 7, "sub_meter")])
    assert sorted(p.consumption) == [11, 13]
    assert p.unmetered == {}


def test_a_nested_main_is_a_sub_meter_of_the_outer_main_and_keeps_its_own():
    p = plan([(10, 3, "main"), (14, 6, "main"), (13, 7, "sub_meter"), (11, 4, "sub_meter")])
    assert p.consumption == [10]
    assert p.unmetered == {10: [14, 11], 14: [13]}


def test_two_mains_side_by_side_both_count_and_a_main_on_a_leaf_has_no_remainder():
    p = plan([(10, 3, "main"), (15, 8, "main"), (11, 4, "sub_meter")])
    assert sorted(p.consumption) == [10, 15]
    assert p.unmetered == {10: [11]}


def test_the_subtree_of_a_sub_panel_counts_its_own_main_even_under_an_outer_one():
    p = plan([(10, 3, "main"), (14, 6, "main"), (13, 7, "sub_meter")], root=6)
    assert p.consumption == [14]
    assert p.unmetered == {14: [13]}


def test_generation_export_and_storage_stay_out_of_consumption():
    p = plan([(10, 3, "main"), (20, 5, "generation"), (21, 3, "export"), (22, 4, "storage")])
    assert p.consumption == [10]
    assert (p.generation, p.export, p.storage) == ([20], [21], [22])
