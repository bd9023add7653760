"""Connecting Xero (issue "Xero I", connection part) through the real OAuth redirect flow over HTTP,
against the local Xero-compatible server: one organisation, the organisation picker, deny, an
organisation already linked to another Company, admins only, refresh under concurrency, disconnect that
revokes only the last connection of a grant, and no token in any response."""

from __future__ import annotations

import subprocess
import uuid


from tests.conftest import BENCH, SITE, SITES_PATH
from tests.realsite.conftest import TEST_PASSWORD, login
from tests.realsite.xero_fixtures import (  # noqa: F401 - fixtures and helpers
	CLIENT_ID,
	DISPATCHER,
	SECOND_COMPANY,
	_connect,
	_reset,
	xero,
)



def test_admin_connects_one_organisation(site, web, xero):
	frappe = site
	company = frappe.defaults.get_global_default("company")
	tenant = xero.add_tenant(f"Demo Org {uuid.uuid4().hex[:4]}", short_code="!Dm01", base_currency="NZD")
	xero.set_consent(tenants=[tenant])
	admin = login(web)
	try:
		done = _connect(web, admin, company)
		assert done.status_code in (302, 303), done.text[:300]
		assert done.headers["Location"].endswith(f"/app/xero-connection/{company.replace(' ', '%20')}")
		frappe.db.rollback()
		conn = frappe.get_doc("Xero Connection", company)
		assert (conn.status, conn.tenant_id, conn.short_code, conn.base_currency) == ("connected", tenant, "!Dm01", "NZD")
		assert conn.connected_by == "Administrator" and "offline_access" in conn.granted_scopes
		# the form over REST shows no token; the grant's fields hold only a mask
		got = admin.get(f"{web}/api/resource/Xero Connection/{company}").json()["data"]
		grant = admin.get(f"{web}/api/resource/Xero Grant/{conn.xero_grant}").json()["data"]
		for token_field in ("refresh_token", "access_token"):
			assert set(str(grant.get(token_field) or "*")) <= {"*"}
		from frappe.utils.password import get_decrypted_password

		secret = get_decrypted_password("Xero Grant", conn.xero_grant, "refresh_token")
		assert secret and secret not in str(got) and secret not in str(grant)
	finally:
		_reset(frappe, company)


def test_several_organisations_make_the_admin_choose(site, web, xero):
	frappe = site
	company = frappe.defaults.get_global_default("company")
	hostile = f'Pick <img src=x onerror="window.__x=1"> B {uuid.uuid4().hex[:4]}'  # an organisation name is provider text
	a, b = xero.add_tenant("Pick A Ltd"), xero.add_tenant(hostile)
	xero.set_consent(tenants=[a, b])
	admin = login(web)
	try:
		done = _connect(web, admin, company)
		assert done.headers["Location"].endswith("?choose=1")
		frappe.db.rollback()
		assert frappe.db.get_value("Xero Connection", company, "status") == "not connected"  # never connections[0]
		offered = admin.get(f"{web}/api/method/atlas_integrations.api.xero.pending_tenants",
							params={"company": company}).json()["message"]
		assert {t["tenant_id"] for t in offered} == {a, b}
		picked = admin.post(f"{web}/api/method/atlas_integrations.api.xero.choose_tenant",
							data={"company": company, "tenant_id": b})
		assert picked.status_code == 200, picked.text[:300]
		frappe.db.rollback()
		assert frappe.db.get_value("Xero Connection", company, ["status", "tenant_id"]) == ("connected", b)
		# the same organisation for a second Company is refused
		xero.set_consent(tenants=[b])
		refused = _connect(web, admin, SECOND_COMPANY)
		assert refused.status_code == 400 and "already connected to Company" in refused.text
		assert "<img" not in refused.text and "&lt;img" in refused.text  # shown as text on the error page
		frappe.db.rollback()
		assert frappe.db.get_value("Xero Connection", SECOND_COMPANY, "status") == "not connected"
		from atlas_integrations.inbox.text import mail_text, plain

		assert frappe.db.get_value("Xero Connection", company, "tenant_name") == mail_text(hostile)  # HTML text
		stored_error = frappe.db.get_value("Xero Connection", SECOND_COMPANY, "last_error")
		assert "<img" not in stored_error and hostile in plain(stored_error)
	finally:
		_reset(frappe, company, SECOND_COMPANY)


def test_denied_consent_and_non_admins(site, web, xero):
	frappe = site
	company = frappe.defaults.get_global_default("company")
	xero.set_consent(action="deny")
	admin = login(web)
	try:
		denied = _connect(web, admin, company)
		assert denied.status_code == 400 and "Xero connection was cancelled" in denied.text
		dispatcher = login(web, DISPATCHER, TEST_PASSWORD)
		r = dispatcher.post(f"{web}/api/method/atlas_integrations.api.xero.connect", data={"company": company})
		assert r.status_code == 403 and "Only admins can connect Xero" in r.text
		assert dispatcher.get(f"{web}/api/resource/Xero Grant").status_code == 403  # tokens are admins' only
	finally:
		xero.set_consent(action="allow")
		_reset(frappe, company)


REFRESHER = """
import sys, frappe
frappe.init(site=sys.argv[1], sites_path=sys.argv[2]); frappe.connect(); frappe.set_user("Administrator")
from atlas_integrations.xero import oauth
ok = 0
for _ in range(int(sys.argv[4])):
	frappe.db.set_value("Xero Grant", sys.argv[3], "access_token_expires_at", "2000-01-01 00:00:00")
	frappe.db.commit()
	oauth.access_token(sys.argv[3])
	ok += 1
print("refreshed", ok)
"""


def test_concurrent_refreshes_never_end_in_invalid_grant_and_disconnect_revokes_the_last(site, web, xero):
	frappe = site
	company = frappe.defaults.get_global_default("company")
	a, b = xero.add_tenant("Shared Grant A"), xero.add_tenant("Shared Grant B")
	xero.set_consent(tenants=[a, b])
	xero.set_refresh_grace(0)  # a spent refresh token fails at once: only serialised refreshes survive
	admin = login(web)
	try:
		_connect(web, admin, company)
		admin.post(f"{web}/api/method/atlas_integrations.api.xero.choose_tenant", data={"company": company, "tenant_id": a})
		frappe.db.rollback()
		grant = frappe.db.get_value("Xero Connection", company, "xero_grant")
		# the other organisation of the same consent for the second Company
		frappe.db.set_value("Xero Connection", company, "pending_tenants", None)
		pending = {"grant": grant, "scopes": [], "tenants": [{"connection_id": c["id"], "tenant_id": c["tenantId"],
															  "tenant_name": c["tenantName"]}
															 for c in xero.connections(CLIENT_ID) if c["tenantId"] == b]}
		import json

		if not frappe.db.exists("Xero Connection", SECOND_COMPANY):
			frappe.get_doc({"doctype": "Xero Connection", "company": SECOND_COMPANY}).insert(ignore_permissions=True)
		frappe.db.set_value("Xero Connection", SECOND_COMPANY, "pending_tenants", json.dumps(pending))
		frappe.db.commit()
		assert admin.post(f"{web}/api/method/atlas_integrations.api.xero.choose_tenant",
						  data={"company": SECOND_COMPANY, "tenant_id": b}).status_code == 200
		before = xero.calls("token")
		procs = [subprocess.Popen([str(BENCH / "env" / "bin" / "python"), "-c", REFRESHER, SITE, ".", grant, "5"],
								  cwd=str(SITES_PATH), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
				 for _ in range(4)]
		results = [p.communicate(timeout=120) for p in procs]
		for (out, err), p in zip(results, procs):
			assert p.returncode == 0, err[-2000:]
			assert "refreshed 5" in out
		assert xero.calls("token") - before >= 5  # real refreshes happened, each with the latest token
		frappe.db.rollback()
		assert frappe.db.get_value("Xero Grant", grant, "status") == "active"
		# disconnecting one Company keeps the grant for the other; the last one revokes it
		first = admin.post(f"{web}/api/method/atlas_integrations.api.xero.disconnect", data={"company": company})
		assert first.json()["message"] == {"company": company, "revoked": False}
		assert {c["tenantId"] for c in xero.connections(CLIENT_ID)} >= {b} and a not in {
			c["tenantId"] for c in xero.connections(CLIENT_ID)}
		last = admin.post(f"{web}/api/method/atlas_integrations.api.xero.disconnect", data={"company": SECOND_COMPANY})
		assert last.json()["message"] == {"company": SECOND_COMPANY, "revoked": True}
		assert b not in {c["tenantId"] for c in xero.connections(CLIENT_ID)}
		frappe.db.rollback()
		assert frappe.db.get_value("Xero Grant", grant, "status") == "revoked"
	finally:
		xero.set_refresh_grace(1800)
		_reset(frappe, company, SECOND_COMPANY)
