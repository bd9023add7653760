"""The Xero queue's semantics on the real site (rq worker, xero-python, the local Xero server over HTTP): a
429 storm completes without ever going above the tenant's limit, a revoked connection pauses its jobs
(pending, no attempt used, admins notified) until a reconnect resumes them, and a dispatcher sees the
integration card but cannot connect, retry or read tokens; no token in any job, log or response."""

from __future__ import annotations

import uuid

import pytest

from tests.realsite.conftest import TEST_PASSWORD, login, run_worker
from tests.realsite.xero_fixtures import DISPATCHER, _connect, xero  # noqa: F401 - the fixture
from tests.realsite.xero_fixtures import _customer, _invoice, _sync, connected  # noqa: F401 - the fixture

LIMIT, WINDOW = 2, 2.0  # calls per rolling window (seconds), set through site config for the storm


@pytest.fixture
def small_window(site):
	from frappe.installer import update_site_config

	update_site_config("atlas_xero_minute_limit", LIMIT)
	update_site_config("atlas_xero_rate_window", WINDOW)
	yield
	update_site_config("atlas_xero_minute_limit", "None")
	update_site_config("atlas_xero_rate_window", "None")


def _peak(times: list[float], window: float) -> int:
	"""Most requests in any ``window`` seconds."""
	times = sorted(times)
	return max((sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times)), default=0)


def test_429_storm_completes_and_never_exceeds_the_limit(site, connected, small_window):  # noqa: F811
	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	tag = uuid.uuid4().hex[:5]
	# 16 new customers: two contact look-ups, one create, one invoice batch; unthrottled they would all
	# go out within a second
	names = [_invoice(frappe, company, _customer(frappe, f"Xero Storm {tag} {i}")) for i in range(16)]
	frappe.db.commit()
	server.clear_requests()
	storm = {"Retry-After": "1", "X-Rate-Limit-Problem": "minute"}
	server.fail_next("Contacts", 429, headers=storm, count=2)
	server.fail_next("Invoices", 429, headers=storm, count=2)
	_sync(frappe)
	states = [frappe.db.get_value("Sales Invoice", n, "atlas_xero_status") for n in names]
	assert states == ["Xero Synced"] * 16, [frappe.db.get_value("Sales Invoice", n, "atlas_xero_error") for n in names]
	received = server.requests_received(tenant)
	assert len(received) >= 8  # two look-ups, create contacts, invoices, and the four 429s answered
	assert _peak([r["at"] for r in received], WINDOW) <= LIMIT
	# each invoice once, whatever was refused on the way
	numbers = [i["InvoiceNumber"] for i in server.invoices(tenant)]
	assert all(numbers.count(n) == 1 for n in names)
	jobs_ = frappe.get_all("Sync Job", filters={"reference_name": ["in", names]}, fields=["status", "attempts"])
	assert {(j.status, j.attempts) for j in jobs_} == {("succeeded", 1)}  # waiting used no attempt


def test_revoked_connection_pauses_jobs_until_reconnect(site, web, connected):  # noqa: F811
	from frappe.utils import now_datetime
	from frappe.utils.password import set_encrypted_password

	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	customer = _customer(frappe, f"Xero Paused {uuid.uuid4().hex[:6]}")
	first = _invoice(frappe, company, customer)
	frappe.db.commit()
	# the grant is refused by Xero at its next refresh (invalid_grant)
	grant = frappe.db.get_value("Xero Connection", company, "xero_grant")
	set_encrypted_password("Xero Grant", grant, "not-a-valid-refresh-token", "refresh_token")
	frappe.db.set_value("Xero Grant", grant, "access_token_expires_at", "2000-01-01 00:00:00")
	frappe.db.commit()
	started = now_datetime()
	run_worker()
	frappe.db.rollback()
	assert frappe.db.get_value("Xero Connection", company, "status") == "revoked"
	job = frappe.db.get_value("Sync Job", {"reference_name": first}, ["status", "attempts", "next_retry_at", "last_error"],
							  as_dict=True)
	assert job.status == "pending" and job.attempts == 0 and job.next_retry_at > started, job
	assert "paused" in job.last_error
	assert frappe.db.get_value("Sales Invoice", first, "atlas_xero_status") == "Xero Pending"
	bell = frappe.get_all("Notification Log", filters={"for_user": "Administrator", "document_type": "Xero Connection",
													   "document_name": company, "creation": [">=", started]},
						  pluck="subject")
	assert any("needs to be reconnected" in s for s in bell), bell
	# an invoice submitted meanwhile waits too
	second = _invoice(frappe, company, customer)
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", {"reference_name": second}, "status") == "pending"
	# reconnecting resumes both at once
	server.set_consent(tenants=[tenant])
	answer = _connect(web, login(web), company)
	assert answer.status_code in (302, 303), answer.text[:300]
	frappe.db.rollback()
	assert frappe.db.get_value("Xero Connection", company, "status") == "connected"
	_sync(frappe)
	assert [frappe.db.get_value("Sales Invoice", n, "atlas_xero_status") for n in (first, second)] == ["Xero Synced"] * 2


def test_dispatcher_sees_the_card_but_cannot_act_and_no_token_leaks(site, web, connected):  # noqa: F811
	from frappe.utils.password import get_decrypted_password

	frappe = site
	company = connected["company"]
	customer = _customer(frappe, f"Xero Bad Card {uuid.uuid4().hex[:6]}")
	frappe.db.set_value("Customer", customer, {"atlas_xero_contact_id": str(uuid.uuid4()),  # Xero refuses it
											   "atlas_xero_tenant_id": connected["tenant"]})
	bad = _invoice(frappe, company, customer)
	frappe.db.commit()
	_sync(frappe)
	job = frappe.db.get_value("Sync Job", {"reference_name": bad}, "name")
	assert frappe.db.get_value("Sync Job", job, "status") == "failed"
	api = f"{web}/api/method/atlas_integrations.api"
	dispatcher = login(web, DISPATCHER, TEST_PASSWORD)
	card = dispatcher.get(f"{api}.xero.summary", params={"company": company})
	assert card.status_code == 200, card.text[:300]
	body = card.json()["message"]
	assert body["status"] == "connected" and body["counts"]["failed"] >= 1
	assert any(j["name"] == job for j in body["recent_jobs"])
	form = dispatcher.get(f"{web}/api/resource/Xero Connection/{company}")
	assert form.status_code == 200 and form.json()["data"]["status"] == "connected"
	for method in ("xero.retry_failed", "xero.sync_now", "xero.load_from_xero", "xero.push_existing", "xero.connect"):
		r = dispatcher.post(f"{api}.{method}", data={"company": company})
		assert r.status_code == 403 and "Only admins can connect Xero" in r.text, (method, r.status_code, r.text[:200])
	r = dispatcher.post(f"{api}.jobs.retry", data={"sync_job": job})
	assert r.status_code == 403, r.text[:200]
	assert frappe.db.get_value("Sync Job", job, "status") == "failed"
	assert dispatcher.get(f"{web}/api/resource/Xero Grant").status_code == 403
	# an admin retries it (after fixing the customer): it goes through
	frappe.db.set_value("Customer", customer, "atlas_xero_contact_id", None)
	frappe.db.commit()
	admin = login(web)
	r = admin.post(f"{api}.xero.retry_failed", data={"company": company})
	assert r.status_code == 200 and r.json()["message"]["retried"] >= 1
	_sync(frappe)
	assert frappe.db.get_value("Sales Invoice", bad, "atlas_xero_status") == "Xero Synced"
	# no token anywhere a user or a log can see
	grant = frappe.db.get_value("Xero Connection", company, "xero_grant")
	secrets = [get_decrypted_password("Xero Grant", grant, f, raise_exception=False) for f in ("access_token", "refresh_token")]
	secrets = [s for s in secrets if s]
	assert secrets
	texts = [card.text, form.text, admin.get(f"{api}.xero.summary", params={"company": company}).text]
	for row in frappe.get_all("Sync Job", filters={"job_type": ["like", "Xero%"]},
							  fields=["payload", "last_error", "details", "result_ids"]):
		texts.extend(str(v) for v in row.values())
	texts.extend(frappe.get_all("Error Log", pluck="error"))
	assert not [s for s in secrets if any(s in t for t in texts)]
