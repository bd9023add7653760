"""api.xero.com endpoints of :class:`XeroTestServer` (:class:`_ApiMixin`): the identity API's
``GET /connections`` and ``DELETE /connections/{id}``, and the Accounting API's
``GET /api.xro/2.0/Organisation``."""

from __future__ import annotations

import copy
import urllib.parse
import uuid

from atlas_integrations.testing.xero.common import _empty_resp, _json_resp, _problem, ms_date

ORGANISATION_SCOPES = ("accounting.settings", "accounting.settings.read")


def _www_auth(detail: str) -> list:
	return [("WWW-Authenticate", 'Bearer error="invalid_token"')] if detail.startswith("TokenExpired") else []


class _ApiMixin:
	"""Connections and Organisation handlers of :class:`XeroTestServer`."""

	def _connections_list(self, headers, query: str) -> tuple:
		q = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
		with self._lock:
			self._calls["connections"] += 1
			grant, detail = self._bearer(headers)
			if grant is None:
				return _problem(401, detail, _www_auth(detail))
			event = q.get("authEventId")
			items = [
				self._render_connection(c)
				for c in self._connections.values()
				if c["client_id"] == grant["client_id"] and (not event or c["auth_event_id"] == event)
			]
			return _json_resp(200, items, content_type="application/json")

	def _connection_delete(self, headers, conn_id: str) -> tuple:
		with self._lock:
			self._calls["connections_delete"] += 1
			grant, detail = self._bearer(headers)
			if grant is None:
				return _problem(401, detail, _www_auth(detail))
			conn = self._connections.get(conn_id)
			if conn is None or conn["client_id"] != grant["client_id"]:
				return _problem(404, "Resource not found")
			del self._connections[conn_id]
			return _empty_resp(204)

	def _tenant_access(self, headers) -> tuple[str | None, tuple | None]:
		"""(tenant id, None) for an authorised Accounting API request, else (None, error response)."""
		grant, detail = self._bearer(headers)
		if grant is None:
			return None, _problem(401, detail, _www_auth(detail))
		tid = (headers.get("xero-tenant-id") or "").strip().lower()
		connected = any(
			c["client_id"] == grant["client_id"] and c["tenant_id"] == tid for c in self._connections.values()
		)
		if not connected:
			return None, _problem(403, "AuthenticationUnsuccessful")
		return tid, None

	def _organisation(self, headers) -> tuple:
		with self._lock:
			self._calls["organisation"] += 1
			tid, err = self._tenant_access(headers)
			if err is not None:
				return err
			grant, _ = self._bearer(headers)
			if not set(ORGANISATION_SCOPES) & set(grant["scope"].split()):
				return _problem(401, "AuthorizationUnsuccessful")
			org = copy.deepcopy(self._tenants[tid])
			envelope = {
				"Id": str(uuid.uuid4()),
				"Status": "OK",
				"ProviderName": self._clients[grant["client_id"]]["name"],
				"DateTimeUTC": ms_date(self.now()),
				"Organisations": [org],
			}
			limit_headers, _ = self._consume(tid, grant["client_id"])  # counted, never refused
			return _json_resp(200, envelope, limit_headers)
