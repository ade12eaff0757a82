"""Pure parts of sources.scan: the default TotalSegments and the read-capacity rate limiter."""

from __future__ import annotations

import threading

import pytest

from ddbrepl.sources.scan import GIB, MAX_SEGMENTS, MIB, RateLimiter, suggest_segments


@pytest.mark.parametrize(
    ("size", "items", "expected"),
    [
        (0, 0, 1),  # empty table: one call tells
        (500_000, 2_000, 1),  # one page
        (3 * MIB, 10_000, 3),  # never more segments than pages
        (500 * MIB, 1_000_000, 4),  # small but many pages: a few segments overlap the round trips
        (30 * GIB, 10**8, 15),  # AWS's rule of thumb: one per 2 GB
        (10**15, 10**12, MAX_SEGMENTS),
        (0, 50_000, 4),  # a stale zero size on a loaded table: estimate from the item count
    ],
)
def test_suggest_segments(size: int, items: int, expected: int) -> None:
    assert suggest_segments(size, items) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_limiter_holds_the_average_rate_and_allows_one_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(100.0, clock=clock, sleep=clock.sleep)
    assert limiter.wait() == 0.0  # the full burst is available at once
    for _ in range(50):
        limiter.wait()
        limiter.consume(64.0)  # a 1 MB eventually consistent page costs about 128 RCU / 2
    # 50 pages × 64 units at 100 units/s, less the initial burst of 100 units, take ≈ 31 s.
    limiter.wait()
    assert 30.0 <= clock.now <= 32.1


def test_the_limiter_lets_a_page_run_into_debt_and_pays_it_back() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, burst=10.0, clock=clock, sleep=clock.sleep)
    limiter.wait()
    limiter.consume(40.0)  # a page cost more than the whole bucket
    assert limiter.wait() == pytest.approx(3.0)


def test_the_limiter_loses_no_charge_when_threads_share_it() -> None:
    limiter = RateLimiter(1.0, burst=2000.0, clock=lambda: 0.0)  # a frozen clock: no refill, exact arithmetic

    def work() -> None:
        for _ in range(1000):
            limiter.consume(1.0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert limiter.balance == -2000.0


def test_the_limiter_refuses_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
