"""The codec: DynamoDB JSON → exact Python values → PostgreSQL-ready rows, or a dead-letter reason.

Entry points: `compile_mapping` (one Mapping → a Converter called per RawChange) and `route` (several mappings
reading one table). Submodules: `attrs` decodes attribute values exactly, `paths` reads attribute paths lazily,
`transforms` and `convert` shape values per column, `columns` fuses them into one closure per column (with `fast`
shortcuts for the commonest column shapes and `jsontext` rendering ``$item`` straight to JSON text, both proven
equal to the general path), `filters` decides which changes a mapping takes, `rows` puts it together; `reject` is
the verdict that becomes a dead letter.
"""

from __future__ import annotations

from ddbrepl.codec.reject import Reject
from ddbrepl.codec.rows import Converter, compile_mapping, route

__all__ = ["Converter", "Reject", "compile_mapping", "route"]
