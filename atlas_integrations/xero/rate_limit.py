"""Xero's API limits, per tenant, shared by every worker on every machine (Redis).

Xero allows per connected organisation (tenant) 60 calls in any rolling minute, 5 calls in flight at
once and a daily budget that depends on the tier (the ``X-DayLimit-Remaining`` response header says what
is left; it is never hard-coded here), and per app 10,000 calls a minute. A 429 answer carries
``Retry-After`` (seconds) and ``X-Rate-Limit-Problem`` (``minute``, ``day``, ``concurrent`` or
``appminute``). Source: Xero developer docs, "OAuth 2.0 API limits".

:class:`TenantLimiter` enforces the minute and concurrency limits *before* a call (one atomic Lua script
per attempt, so two workers can never both take the 60th slot) and learns from every answer: a spent day
budget or a 429 pauses that tenant (``appminute`` pauses every tenant of the app) until the time Xero
gave. The clock and the sleep are injectable, and so are the window and the limits, so tests prove the
limits in seconds. No Frappe import: the caller passes a ``redis.Redis`` client.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Callable

MINUTE_LIMIT = 60
CONCURRENT_LIMIT = 5
WINDOW = 60.0  # seconds of the rolling minute
SLOT_TTL = 120.0  # seconds after which an in-flight slot of a crashed worker no longer counts

_ACQUIRE = """
-- KEYS: window zset, in-flight zset, tenant pause, app pause
-- ARGV: now, window, minute limit, concurrent limit, slot id, slot ttl
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
if not now then  -- the real clock: Redis's own, the same for every worker (callers' clocks and delays differ)
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local minute_limit, concurrent_limit = tonumber(ARGV[3]), tonumber(ARGV[4])
for _, key in ipairs({KEYS[3], KEYS[4]}) do
  local until_ = tonumber(redis.call('GET', key) or '0')
  if until_ > now then return {0, tostring(until_ - now), key} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= concurrent_limit then
  return {0, '0.05', 'concurrent'}
end
if redis.call('ZCARD', KEYS[1]) >= minute_limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) + window - now), 'minute'}
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[5])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 5)
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[6])) + 5)
return {1, tostring(now), ''}
"""


class RateLimited(Exception):
	"""No slot within the caller's deadline. ``retry_after`` is seconds until one may be free; ``reason``
	is ``minute``, ``concurrent``, ``paused`` (tenant) or ``app paused``."""

	def __init__(self, retry_after: float, reason: str):
		super().__init__(f"Xero rate limit ({reason}): retry in {retry_after:.1f} s")
		self.retry_after, self.reason = retry_after, reason


@dataclass
class Slot:
	"""One call in flight; give it back with :meth:`TenantLimiter.release` (or use the context manager)."""

	id: str
	taken_at: float


class TenantLimiter:
	"""Limits of one Xero tenant, shared through Redis.

	Args:
		redis: a ``redis.Redis`` client (the site's cache Redis in production).
		tenant_id: the Xero tenant id.
		minute_limit, concurrent_limit: calls per rolling window and at once (Xero: 60 and 5).
		window: seconds of the rolling window (60).
		clock: seconds since the epoch (``time.time``).
		sleep: waits a number of seconds (``time.sleep``).
		prefix: Redis key prefix.
	"""

	def __init__(self, redis, tenant_id: str, *, minute_limit: int = MINUTE_LIMIT,
				 concurrent_limit: int = CONCURRENT_LIMIT, window: float = WINDOW,
				 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
				 prefix: str = "atlas:xero"):
		self.redis, self.tenant_id = redis, tenant_id
		self.minute_limit, self.concurrent_limit, self.window = minute_limit, concurrent_limit, window
		self.clock, self.sleep = clock, sleep
		#: with the real clock, admissions are timed by Redis itself (one clock for every worker)
		self.redis_time = clock is time.time
		self.keys = [f"{prefix}:{tenant_id}:window", f"{prefix}:{tenant_id}:inflight",
					 f"{prefix}:{tenant_id}:paused_until", f"{prefix}:app:paused_until"]
		self.day_key = f"{prefix}:{tenant_id}:day_remaining"
		self._script = redis.register_script(_ACQUIRE)

	# -- before a call ------------------------------------------------------------------------------------------
	def acquire(self, timeout: float = 60.0) -> Slot:
		"""Take a slot, waiting (``sleep``) up to ``timeout`` seconds.

		Raises:
			RateLimited: no slot within ``timeout`` (or the tenant/app is paused beyond it).
		"""
		deadline = self.clock() + timeout
		while True:
			now = self.clock()
			slot = Slot(uuid.uuid4().hex, now)
			ok, wait, why = self._script(keys=self.keys, args=["" if self.redis_time else now, self.window,
															   self.minute_limit, self.concurrent_limit, slot.id,
															   SLOT_TTL])
			if int(ok):
				slot.taken_at = float(wait)  # the admission time the shared window recorded
				return slot
			wait = max(float(wait), 0.01)
			why = why.decode() if isinstance(why, bytes) else str(why)
			reason = {self.keys[2]: "paused", self.keys[3]: "app paused"}.get(why, why)
			if now + wait > deadline:
				raise RateLimited(wait, reason)
			self.sleep(min(wait, max(deadline - now, 0.01)))

	def release(self, slot: Slot) -> None:
		"""The call is over: its in-flight place is free, and its minute-window entry moves to now.

		Xero counted the call at some moment between admission and answer, which the caller cannot see
		(network delays differ per request), so the entry counts until ``window`` seconds after the answer:
		a later call admitted when it leaves the window reaches Xero more than ``window`` after this one
		did, whatever the delays."""
		pipe = self.redis.pipeline()
		pipe.zadd(self.keys[0], {slot.id: self._now()}, xx=True)
		pipe.zrem(self.keys[1], slot.id)
		pipe.execute()

	def call(self, fn: Callable, *args, timeout: float = 60.0, **kwargs):
		"""Run ``fn(*args, **kwargs)`` inside a slot; the slot is released whatever happens."""
		slot = self.acquire(timeout)
		try:
			return fn(*args, **kwargs)
		finally:
			self.release(slot)

	# -- after a call -------------------------------------------------------------------------------------------
	def record(self, status: int, headers: dict | None) -> None:
		"""Learn from a response: ``X-DayLimit-Remaining`` is kept (0 pauses the tenant until
		``Retry-After`` or, without it, a day); a 429 pauses the tenant (``minute``, ``day``, ``concurrent``)
		or the whole app (``appminute``) for ``Retry-After`` seconds (60 when missing)."""
		h = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
		now = self._now()
		retry_after = _seconds(h.get("retry-after"))
		remaining = h.get("x-daylimit-remaining")
		if remaining is not None and remaining.strip().lstrip("-").isdigit():
			self.redis.set(self.day_key, int(remaining), ex=86_400)
			if int(remaining) <= 0:
				self.pause(retry_after or 86_400.0, now=now)
		if status == 429:
			problem = h.get("x-rate-limit-problem", "").strip().lower()
			if problem == "appminute":
				self._pause_key(self.keys[3], retry_after or 60.0, now)
			elif problem != "concurrent":  # concurrent: the in-flight check already waits
				self.pause(retry_after or 60.0, now=now)

	def pause(self, seconds: float, now: float | None = None) -> None:
		"""Stop this tenant's calls for ``seconds`` (other tenants go on)."""
		self._pause_key(self.keys[2], seconds, self._now() if now is None else now)

	def _pause_key(self, key: str, seconds: float, now: float) -> None:
		until = now + max(seconds, 0.0)
		current = float(self.redis.get(key) or 0)
		if until > current:
			self.redis.set(key, until, ex=int(seconds) + 5)

	# -- what admins see ----------------------------------------------------------------------------------------
	def _now(self) -> float:
		if self.redis_time:
			seconds, micros = self.redis.time()
			return seconds + micros / 1_000_000
		return self.clock()

	def state(self) -> dict:
		"""``{"calls_in_window", "in_flight", "paused_for", "day_remaining"}`` (seconds; None when unknown)."""
		now = self._now()
		self.redis.zremrangebyscore(self.keys[0], "-inf", now - self.window)
		self.redis.zremrangebyscore(self.keys[1], "-inf", now)
		paused = max(float(self.redis.get(self.keys[2]) or 0), float(self.redis.get(self.keys[3]) or 0)) - now
		day = self.redis.get(self.day_key)
		return {"calls_in_window": self.redis.zcard(self.keys[0]), "in_flight": self.redis.zcard(self.keys[1]),
				"paused_for": max(paused, 0.0), "day_remaining": int(day) if day is not None else None}


def _seconds(value: str | None) -> float | None:
	try:
		return max(float(value), 0.0) if value not in (None, "") else None
	except ValueError:
		return None
