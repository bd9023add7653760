"""The local Gmail- and Xero-compatible servers driven from another process (the demo's servers run
under honcho; the demo and ``make demo-mail`` drive them over HTTP).

:class:`RemoteGmail` speaks the Gmail server's ``/_atlas/*`` control endpoints
(:mod:`atlas_integrations.testing.gmail.control`); :class:`RemoteXero` calls the Xero server's public
methods through ``POST /_atlas/call``. Both offer the method names of the in-process servers that the demo
uses, so the same demo code drives either. Pure standard library + requests; no frappe.
"""

from __future__ import annotations

import base64

import requests

from atlas_integrations.testing.xero.common import XeroUrls

TIMEOUT = 60  # seconds per control call


class RemoteError(RuntimeError):
	"""A control call was refused or failed at the server (its error text)."""


def _check(r: requests.Response) -> dict:
	if r.status_code != 200:
		raise RemoteError(f"{r.request.method} {r.url}: {r.status_code} {r.text[:300]}")
	return r.json()


class RemoteGmail:
	"""A :class:`~atlas_integrations.testing.gmail.server.GmailTestServer` in another process at ``url``."""

	def __init__(self, url: str):
		self.url = url.rstrip("/") + "/"
		self.http = requests.Session()

	def _post(self, name: str, **data) -> dict:
		return _check(self.http.post(self.url + "_atlas/" + name, json=data, timeout=TIMEOUT))

	def _get(self, name: str, **params) -> dict:
		return _check(self.http.get(self.url + "_atlas/" + name, params=params, timeout=TIMEOUT))

	def register_client(self, client_id: str, client_secret: str) -> None:
		"""Register an OAuth client (``POST /_atlas/client``)."""
		self._post("client", client_id=client_id, client_secret=client_secret)

	def add_mailbox(self, email: str, sent_from=None) -> None:
		"""Create a mailbox (``POST /_atlas/mailbox``)."""
		self._post("mailbox", email=email, sent_from=sent_from)

	def load_eml_dir(self, email: str, path: str, spread_days: float | None = None, sent_from=None) -> list:
		"""Load every ``.eml`` under ``path`` into ``email``'s mailbox; returns the new message ids."""
		return self._post("load", email=email, path=path, spread_days=spread_days, sent_from=sent_from).get("ids", [])

	def insert_message(self, email: str, raw: bytes, label_ids=None, internal_date_ms: int | None = None) -> str:
		"""Insert one RFC 822 message; returns its id (``POST /_atlas/insert``)."""
		out = self._post("insert", email=email, raw=base64.urlsafe_b64encode(raw).decode(), label_ids=label_ids,
						 internal_date_ms=internal_date_ms)
		return out.get("id", "")

	def dump_messages(self, email: str) -> list[dict]:
		"""Every message of the mailbox as Gmail's ``format=raw`` resources (``GET /_atlas/messages``)."""
		return self._get("messages", email=email).get("messages", [])

	def stats(self, email: str) -> dict:
		"""The mailbox's API counters (``GET /_atlas/stats``)."""
		return self._get("stats", email=email)

	def set_consent(self, email: str | None = None, action: str = "allow") -> None:
		"""What the consent screen answers next (``POST /_atlas/consent``)."""
		self._post("consent", email=email, action=action)

	def configure_push(self, **settings) -> None:
		"""Push notifications to a site (``POST /_atlas/push``; see ``configure_push`` of the server)."""
		self._post("push", **settings)

	def notify(self, email: str) -> int:
		"""Publish the mailbox's pending change to its watch, as Gmail does (``POST /_atlas/notify``)."""
		return int(self._post("notify", email=email).get("queued") or 0)

	def stop(self) -> None:
		"""Nothing to stop: the server is supervised elsewhere."""


class RemoteXero(XeroUrls):
	"""A :class:`~atlas_integrations.testing.xero.server.XeroTestServer` in another process at ``url``:
	attribute access returns a function calling the server's method of that name."""

	def __init__(self, url: str):
		self.url = url.rstrip("/") + "/"
		self.http = requests.Session()

	def stop(self) -> None:
		"""Nothing to stop: the server is supervised elsewhere."""

	def __getattr__(self, name: str):
		if name.startswith("_"):
			raise AttributeError(name)

		def wire(value):
			return {"__bytes__": base64.b64encode(value).decode()} if isinstance(value, bytes) else value

		def call(*args, **kwargs):
			r = self.http.post(self.url + "_atlas/call", timeout=TIMEOUT, json={
				"method": name, "args": [wire(a) for a in args], "kwargs": {k: wire(v) for k, v in kwargs.items()}})
			return _check(r)["result"]

		call.__name__ = name
		return call
