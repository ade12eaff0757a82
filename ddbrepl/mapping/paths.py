"""Parse the ``from:`` attribute-path syntax into an AttrPath.

Grammar: ``name ( "." name | "[" digits "]" )*`` where a name is a bare word (no ``.``, ``[``, ``]``, ``"``)
or a double-quoted string (for attribute names that contain dots: ``"a.b".c``), plus the roots
``$item``, ``$event.name|time|sequence``, and inside a child ``$index``, ``$key``, ``$value[.steps]``.
"""

from __future__ import annotations

import re

from ddbrepl.mapping.model import ELEMENT_FIELDS, EVENT_FIELDS, AttrPath

_TOKEN = re.compile(r'\.?(?:"((?:[^"\\]|\\.)*)"|([^.\[\]"]+))|\[(\d+)\]')


def _steps(text: str, start: int) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    pos = start
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos or (m.group(0).startswith(".") and not steps and start == 0):
            raise ValueError(f"cannot parse attribute path {text!r} at character {pos + 1}")
        if not steps and start == 0 and m.group(0).startswith("["):
            raise ValueError(f"attribute path {text!r} must start with an attribute name")
        if (steps or start > 0) and not m.group(0).startswith((".", "[")):
            raise ValueError(f"expected '.' or '[' in attribute path {text!r} at character {pos + 1}")
        if m.group(3) is not None:
            steps.append(int(m.group(3)))
        else:
            name = m.group(1) if m.group(1) is not None else m.group(2)
            if m.group(1) is not None:
                name = re.sub(r"\\(.)", r"\1", name)
            if name == "":
                raise ValueError(f"empty attribute name in path {text!r}")
            steps.append(name)
        pos = m.end()
    return tuple(steps)


def parse_path(text: str, *, in_child: bool = False) -> AttrPath:
    """Parse ``text``; raise ValueError with a message meant for the mapping author."""
    text = text.strip()
    if not text:
        raise ValueError("empty attribute path")
    if text == "$item":
        return AttrPath("item", (), text)
    if text.startswith("$event"):
        field = text[len("$event.") :] if text.startswith("$event.") else ""
        if field not in EVENT_FIELDS:
            choices = ", ".join(f"$event.{f}" for f in EVENT_FIELDS)
            raise ValueError(f"unknown stream field {text!r}; use one of {choices}")
        return AttrPath("event", (field,), text)
    if text.startswith("$"):
        head = re.match(r"\$([a-z]+)", text)
        word = head.group(1) if head else ""
        if word not in ELEMENT_FIELDS:
            raise ValueError(f"unknown path root {text!r}; use an attribute name, $item, $event.<field>"
                             + (", $index, $key or $value" if in_child else ""))
        if not in_child:
            raise ValueError(f"{text!r} is only meaningful inside `children`")
        rest = _steps(text, len(word) + 1) if len(text) > len(word) + 1 else ()
        if word != "value" and rest:
            raise ValueError(f"${word} has no attributes; only $value can be followed by a path")
        return AttrPath("element", (word, *rest), text)
    return AttrPath("attr", _steps(text, 0), text)
