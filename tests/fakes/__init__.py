"""Fakes at client boundaries, for cases no emulator can produce (named as fakes, used only by tests)."""
