"""A provider's per-user quota as a moving window of weighted units, shared by every worker (Redis).

Gmail allows one user 15,000 quota units in any moving minute (Gmail API "Usage limits": a
``messages.get`` costs 5 units, ``messages.list`` 5, ``history.list`` 2, ``messages.send`` 100); beyond it,
429 ``userRateLimitExceeded``. Microsoft Graph counts requests per mailbox in a moving ten minutes. Rather
than spending the budget in a burst and then backing off blindly, a client *takes* the units of a request
before sending it: :meth:`MovingWindow.take` atomically checks the units spent in the window (one Lua
script, Redis's own clock, the same for every worker) and records the new spend, or says how long until
enough of the window has expired, and waits that long.

No Frappe import: the caller passes a ``redis.Redis`` client. The clock and the sleep are injectable.
"""

from __future__ import annotations

import time
import uuid
from typing import Callable

_TAKE = """
-- KEYS[1]: zset of spends, member '<id>:<units>', score = time spent (seconds)
-- ARGV: now ('' = Redis TIME), window (s), limit (units), units, id
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local window, limit, units = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local items = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #items, 2 do used = used + tonumber(string.match(items[i], ':(%d+)$')) end
if used + units <= limit then
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. units)
  redis.call('EXPIRE', KEYS[1], math.ceil(window) + 5)
  return {1, '0', tostring(used + units)}
end
local need, freed = used + units - limit, 0
for i = 1, #items, 2 do
  freed = freed + tonumber(string.match(items[i], ':(%d+)$'))
  if freed >= need then return {0, tostring(tonumber(items[i + 1]) + window - now), tostring(used)} end
end
return {0, tostring(window), tostring(used)}
"""


class QuotaWait(Exception):
	"""The units could not be taken within the caller's deadline; ``retry_after`` is seconds until they may."""

	def __init__(self, retry_after: float):
		super().__init__(f"quota: wait {retry_after:.1f} s")
		self.retry_after = retry_after


class MovingWindow:
	"""``limit`` units in any moving ``window`` seconds, for one key (e.g. one mailbox), across processes.

	Args:
		redis: a ``redis.Redis`` client.
		key: the Redis key of the window (e.g. ``atlas:gmail-quota:<account>``).
		limit: units allowed per window (> 0); a request of more units than this takes the whole window.
		window: seconds (> 0).
		clock: seconds now (default: Redis's own clock); sleep: the sleep function (seconds).

	Attributes:
		waited: seconds slept in :meth:`take` so far.
	"""

	def __init__(self, redis, key: str, limit: int, window: float = 60.0, clock: Callable[[], float] | None = None,
				 sleep: Callable[[float], None] = time.sleep):
		if limit <= 0 or window <= 0:
			raise ValueError("a quota needs a positive limit and window")
		self.redis, self.key, self.limit, self.window = redis, key, int(limit), float(window)
		self.clock, self.sleep = clock, sleep
		self.waited = 0.0
		self._script = redis.register_script(_TAKE)

	def try_take(self, units: int) -> float:
		"""Take ``units`` now if the window has room. Returns 0.0 when taken, else the seconds to wait
		before it may have room (nothing is taken then)."""
		units = max(1, min(int(units), self.limit))
		now = "" if self.clock is None else repr(float(self.clock()))
		ok, wait, _used = self._script(keys=[self.key], args=[now, self.window, self.limit, units, uuid.uuid4().hex])
		return 0.0 if int(ok) else max(float(wait), 0.001)

	def take(self, units: int, deadline: float | None = None) -> float:
		"""Take ``units``, sleeping until the window has room. Returns the seconds slept.

		Args:
			units: the request's cost (e.g. 5 per Gmail ``messages.get``).
			deadline: give up after this many seconds of waiting (None: wait as long as needed).

		Raises:
			QuotaWait: the deadline would pass first (nothing was taken).
		"""
		slept = 0.0
		while True:
			wait = self.try_take(units)
			if not wait:
				self.waited += slept
				return slept
			if deadline is not None and slept + wait > deadline:
				self.waited += slept
				raise QuotaWait(wait)
			self.sleep(wait)
			slept += wait


_ACQUIRE = """
-- KEYS[1]: zset of leases, member '<id>:<permits>', score = lease expiry (seconds)
-- ARGV: now ('' = Redis TIME), limit, permits, lease seconds, id
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local limit, permits, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local items = redis.call('ZRANGE', KEYS[1], 0, -1)
local held = 0
for i = 1, #items do held = held + tonumber(string.match(items[i], ':(%d+)$')) end
if held + permits <= limit then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[5] .. ':' .. permits)
  redis.call('EXPIRE', KEYS[1], math.ceil(lease) + 5)
  return 1
end
return 0
"""


class Permits:
	"""A counting semaphore shared by every process through Redis: at most ``limit`` permits held at once
	for one key (e.g. Graph's 4 concurrent requests per mailbox). Each hold is a lease that expires after
	``lease`` seconds, so the permits of a killed process come back by themselves.

	Args:
		redis: a ``redis.Redis`` client; key: the Redis key; limit: permits in all (> 0);
		lease: seconds a hold lives at most (longer than the slowest request it covers);
		sleep: the sleep function (seconds), poll: seconds between tries while all permits are held.

	Attributes:
		waited: seconds slept waiting for permits so far.
	"""

	def __init__(self, redis, key: str, limit: int, lease: float = 120.0, sleep: Callable[[float], None] = time.sleep,
				 poll: float = 0.02):
		if limit <= 0 or lease <= 0:
			raise ValueError("a semaphore needs a positive limit and lease")
		self.redis, self.key, self.limit, self.lease = redis, key, int(limit), float(lease)
		self.sleep, self.poll = sleep, poll
		self.waited = 0.0
		self._script = redis.register_script(_ACQUIRE)

	def try_acquire(self, permits: int = 1) -> str | None:
		"""Hold ``permits`` (at most :attr:`limit`) now if free. Returns the hold's token, else None."""
		permits = max(1, min(int(permits), self.limit))
		token = f"{uuid.uuid4().hex}:{permits}"
		ok = self._script(keys=[self.key], args=["", self.limit, permits, self.lease, token.rpartition(":")[0]])
		return token if int(ok) else None

	def acquire(self, permits: int = 1, timeout: float = 600.0) -> str:
		"""Hold ``permits``, waiting while they are taken (jittered polls). Returns the token for
		:meth:`release`.

		Raises:
			TimeoutError: not free within ``timeout`` seconds.
		"""
		import random

		slept = 0.0
		while True:
			token = self.try_acquire(permits)
			if token:
				self.waited += slept
				return token
			if slept >= timeout:
				self.waited += slept
				raise TimeoutError(f"{self.key}: {permits} permit(s) not free within {timeout:.0f} s")
			nap = self.poll * random.uniform(0.5, 1.5)
			self.sleep(nap)
			slept += nap

	def release(self, token: str) -> None:
		"""Give back the hold ``token`` (a lease that already expired is a no-op)."""
		self.redis.zrem(self.key, token)

	def held(self) -> int:
		"""Permits held now (leases not expired)."""
		import time as _time

		total = 0
		for member, expiry in self.redis.zrange(self.key, 0, -1, withscores=True):
			if expiry > _time.time():
				total += int((member.decode() if isinstance(member, bytes) else member).rpartition(":")[2])
		return total
