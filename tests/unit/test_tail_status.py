"""The tail status line: rate since the previous line and lag from the last applied record's creation time."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from ddbrepl.runners.shard_worker import Tally
from ddbrepl.runners.tail_status import StatusLine


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    status = StatusLine(stream=out, every=0.0)
    now = datetime.now(UTC)
    tallies = {"Orders": Tally(records=1200, last_event_at=now - timedelta(seconds=2.5))}
    status.maybe_print(tallies, 3)
    line = out.getvalue()
    assert line.startswith("tail [3 shard(s)] Orders: 1,200 records, ") and line.endswith("\n")
    lag = float(line.split("lag ")[1].rstrip("s\n"))
    assert 2.5 <= lag < 10
    tallies["Orders"].records = 1200
    status.maybe_print(tallies, 3)
    assert "1,200 records, 0/s, lag" in out.getvalue().splitlines()[1]  # the rate counts since the last line


def test_one_line_rewritten_in_place_on_a_terminal() -> None:
    out = Tty()
    status = StatusLine(stream=out)
    status.every = 0.0
    status.maybe_print({"T": Tally(records=5)}, 1)
    status.maybe_print({"T": Tally(records=9)}, 1)
    status.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and "lag -" in text


def test_disabled_prints_nothing() -> None:
    out = io.StringIO()
    StatusLine(stream=out, enabled=False, every=0.0).maybe_print({"T": Tally(records=5)}, 1)
    assert out.getvalue() == ""
