"""Hypothesis strategies for DynamoDB items: Python values DynamoDB can store, nested, and their DynamoDB JSON."""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeSerializer
from hypothesis import strategies as st

_SERIALIZER = TypeSerializer()


@st.composite
def dynamo_numbers(draw: st.DrawFn) -> Decimal:
    """Any N DynamoDB accepts: 1-38 significant digits, magnitude 1E-130 .. 9.99…E+125, or zero (incl. -0)."""
    digits = draw(st.integers(min_value=0, max_value=10**38 - 1))
    if digits == 0:
        return Decimal(draw(st.sampled_from(["0", "-0", "0.0"])))
    sign = draw(st.sampled_from(["", "-"]))
    ndigits = len(str(digits))
    # adjusted exponent = exponent + ndigits - 1 must stay within [-130, 125]
    exponent = draw(st.integers(min_value=-130 - ndigits + 1, max_value=125 - ndigits + 1))
    value = Decimal(f"{sign}{digits}E{exponent}")
    try:  # the corner below 1E-128 with many digits is subnormal in DynamoDB's context: boto3 refuses it
        DYNAMODB_CONTEXT.create_decimal(value)
    except decimal.DecimalException:
        value = Decimal(f"{sign}1E-130")
    return value


_chars = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
text_values = st.text(_chars, max_size=20)
names = st.text(_chars, min_size=1, max_size=8)
scalars = st.one_of(
    text_values,
    dynamo_numbers(),
    st.binary(max_size=16),
    st.booleans(),
    st.none(),
    st.sets(text_values, min_size=1, max_size=4),
    st.sets(dynamo_numbers(), min_size=1, max_size=4),
    st.sets(st.binary(max_size=8), min_size=1, max_size=4),
)


def nested(depth: int = 4) -> st.SearchStrategy[Any]:
    """Values nested up to ``depth`` levels of M and L."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(names, inner, max_size=4),
        ),
        max_leaves=12,
    ).filter(lambda v: _depth(v) <= depth)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def items(depth: int = 4) -> st.SearchStrategy[dict[str, Any]]:
    """Python items (attribute name → value) DynamoDB could hold."""
    return st.dictionaries(names, nested(depth), min_size=1, max_size=6)


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB JSON for ``item``, as boto3's TypeSerializer writes it."""
    return {k: _SERIALIZER.serialize(v) for k, v in item.items()}
