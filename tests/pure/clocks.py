"""A clock the pure tests move by hand, shared by the Redis-backed limit tests and the Xero server tests."""

from __future__ import annotations


class Clock:
	"""Seconds (a float, like ``time.time()``) that pass only when the test says so.

	``sleep(s)`` and ``advance(s)`` both move the clock on by ``s`` seconds: code under test sleeps, a test
	advances.
	"""

	def __init__(self, t: float = 1_000_000.0):
		self.t = t

	def __call__(self) -> float:
		return self.t

	def sleep(self, seconds: float) -> None:
		self.t += seconds

	advance = sleep
