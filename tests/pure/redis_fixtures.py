"""Shared by the pure tests of Redis-backed limits (Xero's tenant limiter, the quota window): a Redis client on the
machine's server with a key prefix of its own, cleaned up after."""

from __future__ import annotations

import uuid

import pytest

redis = pytest.importorskip("redis")


@pytest.fixture
def client():
	"""``(redis.Redis on 127.0.0.1:6379, a fresh key prefix)``; every key under the prefix is deleted after."""
	r = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
	try:
		r.ping()
	except redis.exceptions.ConnectionError as exc:  # pragma: no cover - the machine runs Redis
		pytest.fail(f"Redis at 127.0.0.1:6379 is needed for these tests: {exc}")
	prefix = f"atlas-test:{uuid.uuid4().hex}"
	yield r, prefix
	for key in r.scan_iter(f"{prefix}*"):
		r.delete(key)
