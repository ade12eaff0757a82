"""Mapping files: load YAML, check it, and build the typed model."""
