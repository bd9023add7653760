"""Graph change notifications on the real site: subscriptions made by the sync (the local Graph server's
validation handshake reaches the site's own web server), a delivery that queues the mailbox's sync in well
under 3 s, forged / replayed / oversized deliveries, lifecycle events, renewal before half the lifetime."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.realsite.conftest import run_worker
from tests.realsite.outlook_fixtures import graph, outlook  # noqa: F401 - the fixtures

NOTIFY = "/api/method/atlas_integrations.api.outlook.notifications"
LIFECYCLE = "/api/method/atlas_integrations.api.outlook.lifecycle"


@pytest.fixture
def notifications_on(site, web, graph):
	site.db.set_single_value("Atlas Settings", "microsoft_change_notifications", 1)
	site.db.commit()
	yield web
	site.db.set_single_value("Atlas Settings", "microsoft_change_notifications", 0)
	site.db.commit()


def _jobs(frappe, account: str, trigger: str) -> list[str]:
	frappe.db.rollback()
	return frappe.get_all("Sync Job", filters={"reference_name": account, "trigger": trigger}, pluck="name")


def _wait(check, timeout: float = 10.0):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		value = check()
		if value:
			return value
		time.sleep(0.1)
	return check()


def _subscribed(site, outlook, folders=2) -> tuple[str, str, dict]:
	address = outlook.mailbox(load=2)
	account, _ = outlook.connect(address)
	job = outlook.sync(account)
	assert job.status == "succeeded", job.last_error
	assert "subscriptions inbox created, sentitems created" in job.details
	subs = json.loads(site.db.get_value("Outlook Account", account, "subscriptions"))
	assert len(subs) == folders
	return account, address, subs


def test_the_handshake_is_answered_as_text_at_once_and_nothing_else_is_echoed(notifications_on):
	web = notifications_on
	r = requests.post(f"{web}{NOTIFY}", params={"validationToken": "Validation: Testing client application"},
					  timeout=10)
	assert r.status_code == 200 and r.text == "Validation: Testing client application"
	assert r.headers["Content-Type"].startswith("text/plain") and r.headers["X-Content-Type-Options"] == "nosniff"
	r = requests.post(f"{web}{NOTIFY}", data=b"<script>alert(1)</script>", timeout=10)
	assert r.status_code == 400 and r.text == ""


def test_a_change_at_graph_queues_the_mailboxs_sync_in_well_under_3_seconds(site, outlook, notifications_on):
	frappe = site
	account, address, subs = _subscribed(site, outlook)
	server = outlook.server
	mine = [s for s in server.subscriptions.values() if s["_address"] == address]
	assert {s["notificationUrl"] for s in mine} == {notifications_on + NOTIFY}
	assert {s["lifecycleNotificationUrl"] for s in mine} == {notifications_on + LIFECYCLE}
	assert {s["changeType"] for s in mine} == {"created,updated,deleted"}
	before = len(server.deliveries)
	outlook.deliver(address, 1, start=60)
	queued = _wait(lambda: _jobs(frappe, account, "notification"))
	assert len(queued) == 1
	delivered = _wait(lambda: [d for d in server.deliveries[before:] if d["url"].endswith(NOTIFY)])
	assert delivered and all(d["status"] == 202 for d in delivered)
	proc = run_worker()
	assert proc.returncode == 0
	frappe.db.rollback()
	assert frappe.db.count("Communication", {"atlas_mailbox": account}) == 3


def test_forged_replayed_and_oversized_deliveries_queue_nothing(site, outlook, notifications_on):
	frappe = site
	web = notifications_on
	account, address, subs = _subscribed(site, outlook)
	sub_id = subs["inbox"]["id"]
	item = {"subscriptionId": sub_id, "changeType": "created", "clientState": "not-the-secret", "resource": "x"}
	r = requests.post(f"{web}{NOTIFY}", json={"value": [item]}, timeout=10)
	assert r.status_code == 202 and not _jobs(frappe, account, "notification")
	real = outlook.server.subscriptions[sub_id]["clientState"]
	body = json.dumps({"value": [dict(item, clientState=real)]}).encode()
	assert requests.post(f"{web}{NOTIFY}", data=body, headers={"Content-Type": "application/json"}, timeout=10).status_code == 202
	assert len(_jobs(frappe, account, "notification")) == 1
	frappe.db.delete("Sync Job", {"reference_name": account, "trigger": "notification"})
	frappe.db.commit()
	# the same delivery again (a replay) is accepted and does nothing
	assert requests.post(f"{web}{NOTIFY}", data=body, headers={"Content-Type": "application/json"}, timeout=10).status_code == 202
	assert not _jobs(frappe, account, "notification")
	big = json.dumps({"value": [dict(item, clientState=real, pad="x" * (1024 * 1024))]}).encode()
	r = requests.post(f"{web}{NOTIFY}", data=big, headers={"Content-Type": "application/json"}, timeout=30)
	assert r.status_code == 413 and not _jobs(frappe, account, "notification")


def test_lifecycle_events_renew_recreate_and_catch_up(site, outlook, notifications_on):
	frappe = site
	account, address, subs = _subscribed(site, outlook)
	server = outlook.server
	inbox = subs["inbox"]["id"]
	server.lifecycle(inbox, "missed")
	assert _wait(lambda: _jobs(frappe, account, "notification"))
	assert run_worker().returncode == 0
	server.lifecycle(inbox, "subscriptionRemoved")
	assert _wait(lambda: "inbox" not in json.loads(
		(frappe.db.rollback() or frappe.db.get_value("Outlook Account", account, "subscriptions")) or "{}"))
	assert run_worker().returncode == 0  # the queued run makes a new subscription
	frappe.db.rollback()
	now = json.loads(frappe.db.get_value("Outlook Account", account, "subscriptions"))
	assert now["inbox"]["id"] != inbox and now["inbox"]["id"] in server.subscriptions
	sent = now["sentitems"]["id"]
	old_expiry = server.subscriptions[sent]["expirationDateTime"]
	time.sleep(1.1)
	server.lifecycle(sent, "reauthorizationRequired")
	assert _wait(lambda: any(d["payload"]["value"][0].get("lifecycleEvent") == "reauthorizationRequired"
							 and d["status"] == 202 for d in list(server.deliveries)))
	assert run_worker().returncode == 0
	assert server.subscriptions[sent]["expirationDateTime"] != old_expiry


def test_subscriptions_are_renewed_once_half_their_lifetime_is_gone(site, outlook, notifications_on):
	from atlas_integrations.outlook import notify

	frappe = site
	account, address, subs = _subscribed(site, outlook)
	assert notify.renew_all().get(account) == "ok"
	assert json.loads(frappe.db.get_value("Outlook Account", account, "subscriptions")) == subs  # not due: kept
	soon = time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(time.time() + 3600))
	frappe.db.set_value("Outlook Account", account, "subscriptions",
						json.dumps({**subs, "inbox": {**subs["inbox"], "expires": soon}}))
	frappe.db.commit()
	assert notify.renew_all().get(account) == "ok"
	renewed = json.loads(frappe.db.get_value("Outlook Account", account, "subscriptions"))
	assert renewed["inbox"]["id"] == subs["inbox"]["id"] and renewed["inbox"]["expires"] > soon
	assert renewed["sentitems"] == subs["sentitems"]
	assert outlook.server.subscriptions[subs["inbox"]["id"]]["expirationDateTime"] == renewed["inbox"]["expires"]
