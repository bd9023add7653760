"""The per-user send rate limit: how many emails one user may send through Atlas in any rolling minute.

One budget per user covers every email a user sends through a connected mailbox: Smart Inbox replies
(:func:`atlas_integrations.gmail.send.reply`) and "Send quote" (:func:`atlas_integrations.xero.quotes.
request_send`). Its size is Atlas Settings ``reply_rate_limit`` (*Emails Per User Per Minute*, default
:data:`DEFAULT_LIMIT`); it guards against loops and runaway clients, not against a determined user.

The check and the record are **one Redis Lua script** (:data:`_TAKE`): a rolling-window sorted set of the
user's admissions, scored by Redis's own clock, is trimmed, counted and — only when under the limit —
added to in one atomic step, so any number of parallel requests of one user, on any number of web
workers, never admit more than the limit. The key goes through ``frappe.cache.make_key`` (the site's
``db_name|`` prefix), so sites sharing one Redis never share a budget. Provider-neutral: no provider import.
"""

from __future__ import annotations

import uuid

import frappe
from frappe import _

from atlas_integrations import messages

DEFAULT_LIMIT = 10  # emails per user per rolling minute
WINDOW = 60  # seconds

_TAKE = """
-- KEYS[1]: the user's admissions (sorted set, member = unique id, score = Redis time in seconds)
-- ARGV: limit, window (seconds), member
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = window
  if oldest[2] then wait = tonumber(oldest[2]) + window - now end
  return {0, used, tostring(wait)}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
return {1, used + 1, '0'}
"""


class SendRateLimited(frappe.RateLimitExceededError):
	"""The user sent :func:`limit` emails in the last :data:`WINDOW` seconds (HTTP 429)."""


def limit() -> int:
	"""Emails a user may send in any rolling minute (Atlas Settings ``reply_rate_limit``; empty or 0 =
	:data:`DEFAULT_LIMIT`)."""
	from atlas_integrations.settings import get_settings

	return int(get_settings().get("reply_rate_limit") or DEFAULT_LIMIT)


def _key(user: str) -> bytes:
	return frappe.cache.make_key(f"atlas:send-rate:{user}")


def take(user: str) -> int:
	"""Admit one email of ``user`` or refuse it, atomically (check and record are one Lua script).

	Args:
		user: the sending user (``frappe.session.user``).

	Returns:
		How many of the user's emails the window holds now, this one included (1 … :func:`limit`).

	Raises:
		SendRateLimited: the window is full ("You are sending too fast: at most N messages a minute");
			nothing is recorded.
	"""
	allowed = limit()
	ok, count, _wait = frappe.cache.register_script(_TAKE)(keys=[_key(user)],
														  args=[allowed, WINDOW, uuid.uuid4().hex])
	if int(ok):
		return int(count)
	frappe.throw(messages.text("You are sending too fast: at most {0} messages a minute", allowed), SendRateLimited,
				 title=_("Sending"))


def used(user: str) -> int:
	"""How many emails of ``user`` the current window holds (a read; for tests and diagnostics)."""
	seconds, micros = frappe.cache.time()
	return int(frappe.cache.zcount(_key(user), seconds + micros / 1_000_000 - WINDOW, "+inf"))


def reset(user: str) -> None:
	"""Forget ``user``'s window (an admin's or a test's fresh start)."""
	frappe.cache.delete(_key(user))
