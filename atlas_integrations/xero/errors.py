"""One family of Xero errors, raised by the client (:class:`atlas_integrations.xero.client.XeroSession`) and
by the OAuth code, and mapped to what the Sync Job ledger does once, in the drain
(:func:`atlas_integrations.xero.drain.run_batch`):

* :class:`Temporary` — a rate limit, a timeout, a 5xx, a lock held by another run: the jobs go back to
  pending (:func:`atlas_integrations.jobs.defer`), with ``retry_after`` seconds when known.
* :class:`TokenRejected` (a Temporary) — Xero answered 401 to an access token: it is refreshed (under the
  grant's lock) on the next run, which comes at once.
* :class:`Revoked` — the organisation disconnected the app (403) or Xero refused the grant
  (``invalid_grant``): the connection is marked revoked, admins are told, and its jobs wait (pending, no
  attempt used) for a reconnect.
* :class:`Permanent` — any other 4xx (Xero's ValidationErrors): the call will not succeed as it is; the job
  fails with Xero's words and keeps its payload for Retry.

Status rules: Xero's "Responses and Errors" and "OAuth 2.0 API limits" pages
(https://developer.xero.com/documentation/api/accounting/responsecodes,
https://developer.xero.com/documentation/guides/oauth2/limits). Plain Python: it imports no other module.
"""

from __future__ import annotations

import json

#: statuses after which the same call may succeed later
TRANSIENT_STATUSES = (500, 502, 503, 504)


class XeroError(Exception):
	"""Base of every Xero error the app raises; ``str()`` is words for a Sync Job, never a token."""


class Temporary(XeroError):
	"""A Xero call could not be done now for a passing reason: the Sync Jobs involved go back to pending.

	Attributes:
		retry_after: seconds to wait before trying again (None: the job's exponential backoff).
		count_attempt: False when nothing reached Xero (waiting never fails a job).
	"""

	def __init__(self, message: str, retry_after: float | None = None, count_attempt: bool = True):
		super().__init__(message)
		self.retry_after = retry_after
		self.count_attempt = count_attempt


class TokenRejected(Temporary):
	"""Xero answered 401: the access token is not accepted (refresh it, then try again at once)."""

	def __init__(self, message: str = "Xero did not accept the access token: refreshing it"):
		super().__init__(message, retry_after=5, count_attempt=False)


class Revoked(XeroError):
	"""The connection can no longer be used until an admin reconnects: Xero answered 403 (the organisation
	disconnected the app) or refused the grant."""


class XeroAuthError(Revoked):
	"""Xero's identity service refused the grant (``invalid_grant``) or the credentials; never carries a token."""


class Permanent(XeroError):
	"""Xero refused the request for good (a 4xx other than 401 / 403 / 429).

	Attributes:
		status: the HTTP status.
		reason: Xero's words (:func:`reason`).
	"""

	def __init__(self, status: int, reason: str):
		super().__init__(f"Xero answered {status}: {reason}"[:500])
		self.status, self.reason = status, reason


def from_http(exc) -> XeroError:
	"""The family member for a xero-python ``HTTPStatusException`` that is not a 429 (the session waits out
	429s itself): 401 → :class:`TokenRejected`, 403 → :class:`Revoked`, 5xx → :class:`Temporary`, any other
	→ :class:`Permanent` with Xero's words."""
	status = int(getattr(exc, "status", 0) or 0)
	if status == 401:
		return TokenRejected()
	if status == 403:
		return Revoked("Xero refused the connection (403): reconnect Xero")
	if status in TRANSIENT_STATUSES:
		return Temporary(f"Xero answered {status} {getattr(exc, 'reason', '') or ''}".strip())
	return Permanent(status, reason(exc))


def reason(exc) -> str:
	"""Xero's words from an error answer (``exc.body``, JSON): the ValidationErrors when there are some, else
	its Message, else the HTTP reason; at most 300 characters."""
	try:
		data = json.loads(getattr(exc, "body", None) or "{}")
	except Exception:
		return str(getattr(exc, "reason", "") or type(exc).__name__)[:300]
	if not isinstance(data, dict):
		return str(getattr(exc, "reason", "") or type(exc).__name__)[:300]
	found = [e.get("Message") for el in data.get("Elements") or [] if isinstance(el, dict)
			 for e in el.get("ValidationErrors") or [] if isinstance(e, dict)]
	return "; ".join(m for m in found if m)[:300] or str(data.get("Message") or getattr(exc, "reason", ""))[:300]


def validation_messages(answer) -> str:
	"""Xero's ValidationErrors of one element of a ``summarizeErrors=false`` answer (a xero-python model:
	Invoice, CreditNote, Quote, Contact), joined by "; " ("" when it has none)."""
	return "; ".join(e.message for e in (getattr(answer, "validation_errors", None) or []) if e.message)
