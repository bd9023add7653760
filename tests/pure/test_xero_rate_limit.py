"""Xero's per-tenant limits through real Redis (127.0.0.1:6379), with an injected clock so minutes pass in
microseconds, and with real threads and the real clock for the atomicity of the shared counters."""

from __future__ import annotations

import threading
import time

import pytest

redis = pytest.importorskip("redis")

from atlas_integrations.xero.rate_limit import RateLimited, TenantLimiter  # noqa: E402
from tests.pure.clocks import Clock  # noqa: E402
from tests.pure.redis_fixtures import client  # noqa: E402,F401 - client is a fixture


def limiter(client, tenant="t1", clock=None, **kw):
	r, prefix = client
	clock = clock or Clock()
	return TenantLimiter(r, tenant, clock=clock, sleep=clock.sleep, prefix=prefix, **kw), clock


def test_sixty_calls_a_minute_then_wait_for_the_oldest_to_leave_the_window(client):
	lim, clock = limiter(client)
	for _ in range(60):
		lim.release(lim.acquire(timeout=0))
		clock.t += 0.5  # 60 calls over 30 s
	with pytest.raises(RateLimited) as err:
		lim.acquire(timeout=0)
	assert err.value.reason == "minute"
	assert err.value.retry_after == pytest.approx(30.0, abs=0.01)  # the first call leaves the window at 60 s
	start = clock.t
	lim.release(lim.acquire(timeout=60))  # waits (injected sleep) for the window to move
	assert clock.t - start == pytest.approx(30.0, abs=0.1)


def test_five_in_flight_at_most_and_a_release_frees_one(client):
	lim, clock = limiter(client)
	slots = [lim.acquire(timeout=0) for _ in range(5)]
	with pytest.raises(RateLimited) as err:
		lim.acquire(timeout=0)
	assert err.value.reason == "concurrent"
	lim.release(slots.pop())
	slots.append(lim.acquire(timeout=0))
	assert lim.state()["in_flight"] == 5


def test_a_crashed_workers_slot_stops_counting(client):
	lim, clock = limiter(client)
	for _ in range(5):
		lim.acquire(timeout=0)  # never released
	clock.t += 121  # SLOT_TTL passed
	lim.release(lim.acquire(timeout=0))


def test_429_pauses_that_tenant_only_and_appminute_pauses_all(client):
	a, clock = limiter(client, "tenant-a")
	b, _ = limiter(client, "tenant-b", clock=clock)
	a.record(429, {"Retry-After": "20", "X-Rate-Limit-Problem": "minute"})
	with pytest.raises(RateLimited) as err:
		a.acquire(timeout=5)
	assert err.value.reason == "paused" and err.value.retry_after == pytest.approx(20, abs=0.01)
	b.release(b.acquire(timeout=0))  # the other tenant goes on
	clock.t += 20.01
	a.release(a.acquire(timeout=0))
	b.record(429, {"Retry-After": "7", "X-Rate-Limit-Problem": "appminute"})
	for lim in (a, b):
		with pytest.raises(RateLimited) as err:
			lim.acquire(timeout=1)
		assert err.value.reason == "app paused"


def test_day_budget_from_the_headers_pauses_the_tenant(client):
	lim, clock = limiter(client)
	lim.record(200, {"X-DayLimit-Remaining": "4213", "X-MinLimit-Remaining": "59"})
	assert lim.state()["day_remaining"] == 4213
	lim.record(429, {"Retry-After": "3600", "X-Rate-Limit-Problem": "day", "X-DayLimit-Remaining": "0"})
	state = lim.state()
	assert state["day_remaining"] == 0 and state["paused_for"] == pytest.approx(3600, abs=1)
	with pytest.raises(RateLimited):
		lim.acquire(timeout=60)


def test_workers_sharing_redis_never_exceed_the_limits(client):
	"""Eight threads, each with its own Redis connection and the real clock, 80 calls on a tenant limited to
	10 per 1-second window and 3 in flight: no window ever holds more than 10 admissions, never more than 3
	run at once."""
	r, prefix = client
	starts, running, peak, lock = [], [0], [0], threading.Lock()

	def worker():
		own = redis.Redis(host="127.0.0.1", port=6379)
		lim = TenantLimiter(own, "shared", minute_limit=10, concurrent_limit=3, window=1.0, prefix=prefix)

		for _ in range(10):
			slot = lim.acquire(timeout=30)
			with lock:
				starts.append(slot.taken_at)  # the admission time the shared window counted
				running[0] += 1
				peak[0] = max(peak[0], running[0])
			time.sleep(0.01)
			with lock:
				running[0] -= 1
			lim.release(slot)

	threads = [threading.Thread(target=worker) for _ in range(8)]
	for t in threads:
		t.start()
	for t in threads:
		t.join(60)
	assert len(starts) == 80
	starts.sort()
	worst = max(sum(1 for s in starts if t0 <= s < t0 + 1.0) for t0 in starts)
	assert worst <= 10, worst
	assert peak[0] <= 3, peak[0]
	assert starts[-1] - starts[0] >= 6.9  # 80 calls at 10 per second take about 7 s


def test_a_call_counts_in_the_window_until_window_seconds_after_its_answer(client):
	"""Xero counts a call when it arrives, somewhere between admission and answer: the next admission waits
	for the oldest call's answer plus the window, so arrival jitter can never put one call too many in."""
	lim, clock = limiter(client, minute_limit=2, window=2.0)
	first = lim.acquire(timeout=0)
	clock.t += 0.3  # the first call takes 0.3 s to answer
	lim.release(first)
	lim.release(lim.acquire(timeout=0))
	with pytest.raises(RateLimited) as err:
		lim.acquire(timeout=0)
	assert err.value.reason == "minute"
	assert err.value.retry_after == pytest.approx(2.0, abs=0.01)  # 2 s after the first answer, not admission
	clock.t += 1.75  # 2.05 s after admission, 1.75 s after the answer: still full
	with pytest.raises(RateLimited):
		lim.acquire(timeout=0)
	clock.t += 0.3
	lim.release(lim.acquire(timeout=0))
