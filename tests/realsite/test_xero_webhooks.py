"""Xero's webhooks against the site's real web server, delivered by the local Xero server with Xero's
signature: intent to receive (401 for a bad signature, 200 with an empty body for a good one, within
5 s), each event recorded once however often it is replayed, its invoice pulled and its payment posted
once, and events of an unknown tenant acknowledged and ignored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
import requests

from tests.realsite.xero_fixtures import xero  # noqa: F401 - the fixture
from tests.realsite.xero_fixtures import _customer, _invoice, _sync, connected  # noqa: F401 - the fixture
from tests.realsite.xero_fixtures import BANK_CODE, _entries, posting  # noqa: F401 - the fixture

ENDPOINT = "/api/method/atlas_integrations.api.xero_webhook.receive"


@pytest.fixture(scope="module")
def hooked(site, web, posting):  # noqa: F811
	"""The app's webhook key in Atlas Settings, and the local Xero server delivering to the site."""
	frappe = site
	key = base64.b64encode(uuid.uuid4().bytes * 2).decode()
	settings = frappe.get_single("Atlas Settings")
	settings.xero_webhook_key = key
	settings.flags.ignore_permissions = True
	settings.save()
	frappe.db.commit()
	posting["server"].configure_webhook(f"{web}{ENDPOINT}", key)
	posting["server"].deliver_webhooks()  # whatever earlier tests changed in Xero is delivered and ignored here
	yield {**posting, "key": key, "url": f"{web}{ENDPOINT}"}
	frappe.db.rollback()
	settings = frappe.get_single("Atlas Settings")
	settings.xero_webhook_key = None
	settings.flags.ignore_permissions = True
	settings.save()
	frappe.db.commit()


def _sign(key: str, body: bytes) -> str:
	return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def test_intent_to_receive_and_signatures(site, hooked):
	outcome = hooked["server"].intent_to_receive()
	assert outcome["ok"], outcome
	assert outcome["good"]["status"] == 200 and outcome["good"]["body"] in (b"", "")
	assert outcome["bad"]["status"] == 401 and outcome["good"]["seconds"] < 5 and outcome["bad"]["seconds"] < 5
	body = json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "x"}).encode()
	started = time.monotonic()
	missing = requests.post(hooked["url"], data=body, headers={"Content-Type": "application/json"}, timeout=10)
	assert missing.status_code == 401 and missing.content == b""
	good = requests.post(hooked["url"], data=body, timeout=10,
						 headers={"Content-Type": "application/json", "x-xero-signature": _sign(hooked["key"], body)})
	assert good.status_code == 200 and good.content == b"" and time.monotonic() - started < 5
	# a signature over other bytes (the same JSON re-serialised) is refused: the raw body is what is signed
	other = json.dumps(json.loads(body), indent=2).encode()
	assert requests.post(hooked["url"], data=other, timeout=10,
						 headers={"x-xero-signature": _sign(hooked["key"], body)}).status_code == 401


def test_an_event_replayed_is_recorded_once_and_its_payment_posted_once(site, hooked):
	frappe = site
	company, server, tenant = hooked["company"], hooked["server"], hooked["tenant"]
	name = _invoice(frappe, company, _customer(frappe, f"Xero Hooked {uuid.uuid4().hex[:6]}"))
	frappe.db.commit()
	_sync(frappe)
	xero_id = frappe.db.get_value("Sales Invoice", name, "atlas_xero_invoice_id")
	server.deliver_webhooks()  # the CREATE event of the push
	frappe.db.set_value("Xero Connection", company, "last_pull_at", frappe.utils.now_datetime())  # no scheduled pull
	frappe.db.commit()
	server.pay_invoice(tenant, xero_id, account_code=BANK_CODE)
	events = [e for e in server.pending_events() if e["resourceId"].lower() == xero_id.lower()]
	assert events and events[0]["eventCategory"] == "INVOICE"
	body = json.dumps({"events": events, "firstEventSequence": 1, "lastEventSequence": len(events),
					   "entropy": uuid.uuid4().hex[:20].upper()}).encode()
	before = frappe.db.count("Xero Webhook Event")
	for _ in range(4):  # Xero's delivery and three replays
		assert server.post_webhook(body)["status"] == 200
	frappe.db.rollback()
	assert frappe.db.count("Xero Webhook Event") == before + len(events)
	recorded = frappe.get_all("Xero Webhook Event", filters={"resource_id": events[0]["resourceId"],
															  "event_type": events[0]["eventType"]},
							  fields=["name", "status", "sync_job", "company"])
	assert len(recorded) == 1 and recorded[0].status == "Queued" and recorded[0].company == company
	pulls = frappe.get_all("Sync Job", filters={"job_type": "Xero Pull", "reference_name": company, "status": "pending"},
						   fields=["name", "payload", "trigger"])
	assert len(pulls) == 1 and xero_id.lower() in pulls[0].payload and pulls[0].trigger == "webhook"
	_sync(frappe)
	assert frappe.db.get_value("Sales Invoice", name, "atlas_xero_invoice_status") == "PAID"
	assert len(_entries(frappe, name)) == 1
	assert server.post_webhook(body)["status"] == 200  # replayed after the work was done: nothing new
	_sync(frappe)
	assert len(_entries(frappe, name)) == 1


def test_events_of_an_unknown_tenant_are_acknowledged_and_ignored(site, hooked):
	frappe = site
	stranger = str(uuid.uuid4())
	event = {"resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{uuid.uuid4()}", "resourceId": str(uuid.uuid4()),
			 "eventDateUtc": "2026-12-02T10:00:00.000", "eventType": "UPDATE", "eventCategory": "INVOICE",
			 "tenantId": stranger, "tenantType": "ORGANISATION"}
	body = json.dumps({"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "A" * 20}).encode()
	answer = requests.post(hooked["url"], data=body, timeout=10,
						   headers={"Content-Type": "application/json", "x-xero-signature": _sign(hooked["key"], body)})
	assert answer.status_code == 200 and answer.content == b""
	frappe.db.rollback()
	assert not frappe.db.exists("Xero Webhook Event", {"tenant_id": stranger})


def test_a_signed_body_without_events_is_acknowledged_and_records_nothing(site, hooked):
	"""Xero would redeliver a refused body forever: a correctly signed one without a usable events list gets
	200 with an empty body, and nothing is recorded or queued. (A body that is not JSON at all never reaches
	the app: Frappe parses ``application/json`` bodies before any app code or ``before_request`` hook runs and
	answers such a request itself; only Xero holds the key, and Xero sends JSON.)"""
	frappe = site
	before = frappe.db.count("Xero Webhook Event")
	pulls = frappe.db.count("Sync Job", {"job_type": "Xero Pull", "status": "pending"})
	for body in (b'{"events": "nope"}', b'{"events": [1, "x", null]}', b"[]", b"{}"):
		answer = requests.post(hooked["url"], data=body, timeout=10,
							   headers={"Content-Type": "application/json", "x-xero-signature": _sign(hooked["key"], body)})
		assert (answer.status_code, answer.content) == (200, b""), body
	frappe.db.rollback()
	assert frappe.db.count("Xero Webhook Event") == before
	assert frappe.db.count("Sync Job", {"job_type": "Xero Pull", "status": "pending"}) == pulls


def test_webhook_events_are_admins_only_and_nobody_writes_them_over_http(site, web, hooked):
	"""Xero Webhook Event over REST as second users: a dispatcher cannot list, read or change one; an
	Atlas Admin reads them but cannot create, edit (not even the Company it belongs to) or delete one."""
	from tests.realsite.conftest import ensure_user, login, TEST_PASSWORD

	frappe = site
	# an event of this Company, signed and delivered as Xero does (the test makes what it needs)
	resource = str(uuid.uuid4())
	body = json.dumps({"events": [{"resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{resource}",
								   "resourceId": resource, "eventDateUtc": "2026-12-06T05:00:00.000",
								   "eventType": "UPDATE", "eventCategory": "CONTACT", "tenantId": hooked["tenant"],
								   "tenantType": "ORGANISATION"}],
					   "firstEventSequence": 1, "lastEventSequence": 1, "entropy": uuid.uuid4().hex[:20].upper()}).encode()
	posted = requests.post(hooked["url"], data=body, timeout=10,
						   headers={"Content-Type": "application/json", "x-xero-signature": _sign(hooked["key"], body)})
	assert posted.status_code == 200, posted.text[:300]
	frappe.db.rollback()
	name = frappe.db.get_value("Xero Webhook Event", {"company": hooked["company"], "resource_id": resource}, "name")
	assert name
	dispatcher_user, admin_user = "atlas-hook-dispatcher@atlas-test.example", "atlas-hook-admin@atlas-test.example"
	ensure_user(frappe, dispatcher_user, ("Atlas Dispatcher",))
	ensure_user(frappe, admin_user, ("Atlas Admin",))
	frappe.db.commit()
	resource = f"{web}/api/resource/Xero Webhook Event"
	dispatcher = login(web, dispatcher_user, TEST_PASSWORD)
	assert dispatcher.get(resource, timeout=30).status_code == 403
	assert dispatcher.get(f"{resource}/{name}", timeout=30).status_code == 403
	assert dispatcher.put(f"{resource}/{name}", json={"status": "Ignored"}, timeout=30).status_code == 403
	admin = login(web, admin_user, TEST_PASSWORD)
	listed = admin.get(resource, params={"fields": '["name"]', "limit_page_length": 0}, timeout=30)
	assert listed.status_code == 200 and name in [r["name"] for r in listed.json()["data"]]
	assert admin.put(f"{resource}/{name}", json={"company": "Some Other Company", "status": "Ignored"},
					 timeout=30).status_code == 403
	assert admin.post(resource, json={"event_type": "UPDATE"}, timeout=30).status_code == 403
	assert admin.delete(f"{resource}/{name}", timeout=30).status_code == 403
	frappe.db.rollback()
	row = frappe.db.get_value("Xero Webhook Event", name, ["company", "status"], as_dict=True)
	assert row.company == hooked["company"] and row.status != "Ignored"
