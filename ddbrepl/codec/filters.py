"""A mapping's ``filter:``, compiled: which events it takes, and ``where`` conditions on the item.

Conditions read the new image, or for a REMOVE the old image. A REMOVE that carries only ``Keys`` (stream view
NEW_IMAGE or KEYS_ONLY) cannot show the other attributes: a condition on an attribute it lacks passes,
because deleting a key this mapping never stored is harmless, while skipping a delete it did store would leave a ghost.

Comparisons are type-aware: the string "1" never equals the number 1, and true never equals 1.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ddbrepl.codec.paths import MISSING, Getter, compile_path
from ddbrepl.codec.transforms import scalar
from ddbrepl.mapping.model import Condition, Filter
from ddbrepl.records import RawChange

Test = Callable[[Any], bool]


def same(a: Any, b: Any) -> bool:
    """Equality as DynamoDB sees it: same type and same value (numbers compare by value: 1.50 equals 1.5)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Decimal | int) and isinstance(b, Decimal | int):
        return a == b
    return type(a) is type(b) and a == b


def _test(cond: Condition) -> Test:
    op = cond.op
    if op == "exists":
        want = bool(cond.value)
        return lambda v: (v is not MISSING) == want
    if op in ("equals", "not_equals"):
        target = scalar(cond.value)
        if op == "equals":
            return lambda v: v is not MISSING and same(v, target)
        return lambda v: v is MISSING or not same(v, target)
    if op == "begins_with":
        prefix = cond.value
        if isinstance(prefix, str):
            return lambda v: isinstance(v, str) and v.startswith(prefix)
        raise ValueError(f"begins_with takes a string, not {prefix!r}")
    if op == "in":
        options = tuple(scalar(o) for o in cond.value)
        return lambda v: v is not MISSING and any(same(v, o) for o in options)
    raise ValueError(f"unknown condition {op!r}")


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    top: str | None
    """The top-level attribute read (None for $event paths), to know whether a Keys-only image can answer."""
    get: Getter
    test: Test


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    events: frozenset[str]
    where: tuple[CompiledCondition, ...]

    def matches(self, image: AnyMapping[str, Any], change: RawChange, *, keys_only: bool = False) -> bool:
        """Whether every condition holds on ``image``; ``keys_only``: conditions keys cannot answer pass."""
        for cond in self.where:
            if keys_only and cond.top is not None and cond.top not in image:
                continue
            if not cond.test(cond.get(image, change, None)):
                return False
        return True

    def takes_remove(self, change: RawChange) -> bool:
        """Whether a REMOVE concerns this mapping: judged on the old image, else on the keys alone."""
        if "REMOVE" not in self.events:
            return False
        if change.old_image is not None:
            return self.matches(change.old_image, change)
        return self.matches(change.keys, change, keys_only=True)


def compile_filter(flt: Filter) -> CompiledFilter:
    """Compile ``flt``; a condition the model should not allow raises ValueError."""
    where = tuple(CompiledCondition(c.path.top, compile_path(c.path), _test(c)) for c in flt.where)
    return CompiledFilter(frozenset(flt.events), where)
