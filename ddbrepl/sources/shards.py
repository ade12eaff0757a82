"""Pure shard lineage: which shards may be read now, parents strictly before their children.

A child shard continues its parent's keys, so reading it before the parent is finished could apply an item's
newer change before an older one. Order comes from the lineage, never from comparing sequence numbers across
shards (AWS promises their order only within one shard).

DescribeStream is allowed to be inconsistent for a while (facts §1.2), and everything here copes with it:

- a closed leaf with no child listed yet: nothing to start; the child shows up in a later listing;
- an open parent listed next to its open child: the child waits until the parent is *finished* (read to its
  end), whatever the listing says about the parent being open;
- a parent that is no longer listed (trimmed after 24 h, or never seen): the child is ready;
- the same shard listed twice (pages overlapping, or once open and later closed): the closed view wins;
- listing order is arbitrary: nothing depends on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Set

from ddbrepl.records import Shard


def _parent(shard: Shard) -> str | None:
    # A shard naming itself as its parent would wait forever; treat it as a root.
    return None if shard.parent_id == shard.id else shard.parent_id


def merge(*listings: Iterable[Shard]) -> list[Shard]:
    """Union of shard listings by id; a closed view replaces an open one, else the later listing wins."""
    by_id: dict[str, Shard] = {}
    for listing in listings:
        for shard in listing:
            seen = by_id.get(shard.id)
            if seen is not None and seen.closed and not shard.closed:
                continue  # a shard never reopens: an open view after a closed one is a stale page
            by_id[shard.id] = shard
    return list(by_id.values())


def ready(shards: Iterable[Shard], finished: Set[str]) -> list[Shard]:
    """Unfinished shards that may be read now: no parent, a finished parent, or a parent no longer listed.

    Returned in lineage order (see :func:`order`), so a caller with fewer readers than ready shards starts the
    oldest first.
    """
    listed = merge(shards)
    known = {s.id for s in listed}
    out = [
        s
        for s in listed
        if s.id not in finished and ((parent := _parent(s)) is None or parent in finished or parent not in known)
    ]
    return order(out)


def order(shards: Iterable[Shard]) -> list[Shard]:
    """Shards sorted so that every parent comes before its children (ties: starting sequence, then id).

    Shards whose parent is not among ``shards`` count as roots.
    """
    listed = merge(shards)
    ids = {s.id for s in listed}
    kids: dict[str | None, list[Shard]] = {}
    for shard in listed:
        parent = _parent(shard)
        kids.setdefault(parent if parent in ids else None, []).append(shard)
    out: list[Shard] = []
    placed: set[str] = set()
    frontier = sorted(kids.get(None, []), key=_rank)
    while frontier:
        shard = frontier.pop(0)
        if shard.id in placed:
            continue
        placed.add(shard.id)
        out.append(shard)
        frontier = sorted(frontier + kids.get(shard.id, []), key=_rank)
    # A parent cycle (never produced by AWS) would leave shards unplaced; keep them rather than lose them.
    out.extend(sorted((s for s in listed if s.id not in placed), key=_rank))
    return out


def _rank(shard: Shard) -> tuple[int, str]:
    return (shard.starting_sequence, shard.id)


def children(shards: Iterable[Shard], parent_id: str) -> list[Shard]:
    """The listed children of one shard, oldest first (a split gives two, a plain rollover one)."""
    return sorted((s for s in merge(shards) if _parent(s) == parent_id), key=_rank)
