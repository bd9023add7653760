"""The one way to get an authorised xero-python client for a Company's Xero organisation.

xero-python would refresh an expired token on its own, outside any lock, against Xero's fixed identity
URL: the app refreshes first, under the grant's row lock (:func:`atlas_integrations.xero.oauth.access_token`),
and hands the SDK a token that is valid, so the SDK never refreshes. Every endpoint comes from site
config (``atlas_xero_api_url``), so tests and the demo use the local Xero-compatible server.
"""

from __future__ import annotations

import time

import frappe

from atlas_integrations.endpoints import get_endpoint
from atlas_integrations.xero import oauth


def accounting_api(company: str):
	"""An ``AccountingApi`` for ``company``'s connected organisation (call it with the connection's
	``tenant_id`` as ``xero_tenant_id``).

	Raises:
		frappe.ValidationError: the Company has no connected Xero organisation.
		atlas_integrations.xero.oauth.XeroAuthError: the grant was refused (now marked revoked).
	"""
	from xero_python.accounting import AccountingApi
	from xero_python.api_client import ApiClient, Configuration
	from xero_python.api_client.oauth2 import OAuth2Token

	conn = frappe.db.get_value(oauth.CONNECTION, company, ["status", "xero_grant"], as_dict=True)
	if not conn or conn.status != oauth.CONNECTED or not conn.xero_grant:
		frappe.throw(f"Company {company} has no connected Xero organisation", title="Xero")
	client_id, secret = oauth.client_credentials()
	token = oauth.access_token(conn.xero_grant)
	expires_at = time.time() + oauth.REFRESH_MARGIN  # valid at least this long: the SDK will not refresh
	api_client = ApiClient(
		Configuration(oauth2_token=OAuth2Token(client_id=client_id, client_secret=secret)),
		pool_threads=1,
		oauth2_token_getter=lambda: {"access_token": token, "token_type": "Bearer", "expires_at": expires_at,
									 "expires_in": oauth.REFRESH_MARGIN, "scope": list(oauth.SCOPES)},
		oauth2_token_saver=lambda _token: None,
	)
	# urllib3 would re-send GET/PUT after a 429/503 itself, sleeping Retry-After (hours for a spent day
	# budget): the app's rate limiter decides instead
	api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
	return AccountingApi(api_client, base_url=get_endpoint("atlas_xero_api_url").rstrip("/") + "/api.xro/2.0")
