"""Subtree and ancestor queries by recursive SQL that starts at the asset itself.

django-tree-queries (used for the admin's tree ordering and depth) builds its
CTE from the roots of the whole tree down; for "this asset's subtree" and "this
asset's ancestors" a walk that starts at the asset touches only the rows it
returns, through the (parent) index, so it stays fast however large the site is.
"""

from django.db import connection

from .models import Asset

_SUBTREE = """
    WITH RECURSIVE subtree(id, parent_id, depth) AS (
        SELECT id, parent_id, 0 FROM assets_asset WHERE id = %s
        UNION ALL
        SELECT child.id, child.parent_id, subtree.depth + 1
        FROM assets_asset child JOIN subtree ON child.parent_id = subtree.id
    )
    SELECT id, parent_id FROM subtree ORDER BY depth, id
"""

_ANCESTORS = """
    WITH RECURSIVE chain(id, parent_id, depth) AS (
        SELECT id, parent_id, 0 FROM assets_asset WHERE id = %s
        UNION ALL
        SELECT parent.id, parent.parent_id, chain.depth + 1
        FROM assets_asset parent JOIN chain ON parent.id = chain.parent_id
    )
    SELECT id FROM chain WHERE depth > 0 ORDER BY depth DESC
"""


def subtree_parents(asset_id: int) -> dict[int, int | None]:
    """Every asset of the subtree rooted at `asset_id` (itself included) -> its parent id."""
    with connection.cursor() as cursor:
        cursor.execute(_SUBTREE, [asset_id])
        return dict(cursor.fetchall())


def ancestor_ids(asset_id: int) -> list[int]:
    """The asset's ancestors, root first."""
    with connection.cursor() as cursor:
        cursor.execute(_ANCESTORS, [asset_id])
        return [row[0] for row in cursor.fetchall()]


def subtree(asset: Asset):
    return Asset.objects.filter(id__in=list(subtree_parents(asset.id)))


def ancestors(asset: Asset) -> list[Asset]:
    ids = ancestor_ids(asset.id)
    by_id = Asset.objects.in_bulk(ids)
    return [by_id[i] for i in ids]
