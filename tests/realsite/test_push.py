"""Gmail push notifications end to end: users.watch against the local Gmail server, Pub/Sub pushes over
real HTTP into the site's own web server, a Sync Job queued for the account, and a real rq worker storing
the new mail. Negative cases go over real HTTP too."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest
import requests

from tests.realsite.conftest import login, run_worker

PATH = "/api/method/atlas_integrations.api.push.gmail"
TOPIC = "projects/atlas-test/topics/gmail-push"
PUSH_SA = "gmail-push@atlas-test.iam.gserviceaccount.com"
SHARED_SECRET = "atlas-push-shared-token-do-not-leak-7f3a"
SETTINGS_FIELDS = ("pubsub_topic", "push_auth_mode", "push_audience", "push_service_account")


def raw_mail(mailbox: str, subject: str) -> bytes:
	return (
		f"From: Carol Customer <carol@customer.example>\r\nTo: {mailbox}\r\nSubject: {subject}\r\n"
		f"Message-ID: <push-{time.time_ns()}@customer.example>\r\n"
		f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease call me back.\r\n"
	).encode()


@pytest.fixture
def push_site(site, google, web):
	"""Atlas Settings push configuration (OIDC, audience = the endpoint URL) and the certs URL pointing at
	the local server; everything restored afterwards, and the server's push switched off."""
	import frappe
	from frappe.installer import update_site_config
	from frappe.utils.password import get_decrypted_password

	settings = frappe.get_single("Atlas Settings")
	saved = {f: settings.get(f) for f in SETTINGS_FIELDS}
	saved_token = get_decrypted_password("Atlas Settings", "Atlas Settings", "push_shared_token", raise_exception=False)
	previous_certs = frappe.conf.get("atlas_google_certs_url")
	endpoint = web + PATH
	settings.update({"pubsub_topic": TOPIC, "push_auth_mode": "OIDC token", "push_audience": endpoint,
					 "push_service_account": PUSH_SA, "push_shared_token": SHARED_SECRET})
	settings.save(ignore_permissions=True)
	frappe.db.commit()
	certs = google.url + "oauth2/v1/certs"
	update_site_config("atlas_google_certs_url", certs)
	frappe.local.conf["atlas_google_certs_url"] = certs
	try:
		yield endpoint
	finally:
		google.configure_push(None)
		google.clear_push_deliveries()
		frappe.db.rollback()
		settings = frappe.get_single("Atlas Settings")
		settings.update(saved)
		settings.push_shared_token = saved_token or ""
		settings.save(ignore_permissions=True)
		frappe.db.commit()
		update_site_config("atlas_google_certs_url", previous_certs or "None")
		frappe.local.conf["atlas_google_certs_url"] = previous_certs


def set_push_settings(**values):
	import frappe

	settings = frappe.get_single("Atlas Settings")
	settings.update(values)
	settings.save(ignore_permissions=True)
	frappe.db.commit()


def connected_and_synced(accounts, subject="before push"):
	"""A connected account whose initial sync ran on a real worker; returns (account, mailbox)."""
	mailbox = accounts.mailbox(load_corpus=False)
	accounts.server.insert_message(mailbox, raw_mail(mailbox, subject))
	account, _ = accounts.connect(mailbox)
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	return account, mailbox


def sync_jobs(frappe, account) -> list:
	frappe.db.rollback()
	return frappe.get_all("Sync Job", filters={"reference_doctype": "Gmail Account", "reference_name": account},
						  fields=["*"], order_by="creation asc")


def watch(frappe, account):
	from atlas_integrations.gmail import push

	assert push.ensure_watch(account, force=True)
	frappe.db.commit()


def wait_for_push_job(frappe, account, timeout=15):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		jobs = [j for j in sync_jobs(frappe, account) if j.trigger == "push"]
		if jobs:
			return jobs
		time.sleep(0.2)
	return []


def b64json(value) -> str:
	return base64.b64encode(json.dumps(value).encode()).decode()


def post(endpoint, body, token=None, query=None, content_type="application/json"):
	headers = {"Content-Type": content_type}
	if token:
		headers["Authorization"] = f"Bearer {token}"
	data = body if isinstance(body, (bytes, str)) else json.dumps(body)
	return requests.post(endpoint, data=data, headers=headers, params=query, timeout=30)


# -- the happy path ---------------------------------------------------------------------------------------
def test_watch_then_push_queues_a_push_sync_that_stores_the_new_mail(site, accounts, push_site):
	frappe = site
	from frappe.utils import get_datetime, now_datetime

	from atlas_integrations.gmail import push

	server = accounts.server
	account, mailbox = connected_and_synced(accounts)
	assert frappe.db.get_value("Gmail Account", account, "status") == "ACTIVE"
	# the successful sync already started the watch (a topic is configured)
	assert server.watch_of(mailbox)["topicName"] == TOPIC
	assert frappe.db.get_value("Gmail Account", account, "watch_expiration")
	server.reset_stats(mailbox)

	answer = push.ensure_watch(account, force=True)
	frappe.db.commit()
	assert set(answer) == {"historyId", "expiration"}
	recorded = server.watch_of(mailbox)
	assert recorded["topicName"] == TOPIC and recorded["labelIds"] == []  # every change notifies
	expires = get_datetime(frappe.db.get_value("Gmail Account", account, "watch_expiration"))
	assert abs((expires - (now_datetime() + timedelta(days=7))).total_seconds()) < 120
	assert push.expiration_to_datetime(answer["expiration"]).replace(microsecond=0) == expires.replace(microsecond=0)
	assert push.ensure_watch(account) is None  # still fresh: no second users.watch
	assert server.stats(mailbox)["by_method"] == {"users.watch": 1}

	before = sync_jobs(frappe, account)
	assert [j.status for j in before] == ["succeeded"]
	server.configure_push(push_site, mode="oidc", audience=push_site, service_account=PUSH_SA)
	new_id = server.insert_message(mailbox, raw_mail(mailbox, "Arrived by push"))
	[delivery] = server.wait_for_pushes(1, timeout=20, email=mailbox)
	assert (delivery["status"], delivery["attempts"]) == (200, 1), delivery
	assert delivery["historyId"] == server.mailbox(mailbox).history_id
	assert json.loads(delivery["response"]) == {"message": {"ok": True, "queued": 1}}

	[job] = wait_for_push_job(frappe, account)
	assert job.status == "pending" and job.trigger == "push"

	# a second notification while the job is still pending is absorbed by it
	assert server.notify(mailbox)
	assert len(server.wait_for_pushes(2, timeout=20, email=mailbox)) == 2
	assert len([j for j in sync_jobs(frappe, account) if j.status == "pending"]) == 1

	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	push_jobs = [j for j in sync_jobs(frappe, account) if j.trigger == "push"]
	assert all(j.status == "succeeded" for j in push_jobs), [j.last_error for j in push_jobs]
	# the first stored the mail; the second notification's follow-up (drained by the same worker), if it
	# ran at all, found nothing new (the processing label waits for a batch, so it caused no push)
	assert [j.created for j in push_jobs][:1] == [1] and sum(j.created for j in push_jobs) == 1
	assert len(push_jobs) <= 2
	stored = frappe.get_all("Communication", filters={"atlas_mailbox": account, "atlas_provider_message_id": new_id},
							fields=["subject", "sent_or_received"])
	assert [(c.subject, c.sent_or_received) for c in stored] == [("Arrived by push", "Received")]

	# a late or redelivered push whose historyId the cursor already covers is acknowledged and runs nothing
	cursor = int(frappe.db.get_value("Gmail Account", account, "history_id"))
	jobs_before = len(sync_jobs(frappe, account))
	for history_id in (cursor - 1, cursor):
		r = post(push_site, server.pubsub_envelope(mailbox, history_id), token=server.oidc_token(push_site, PUSH_SA))
		assert (r.status_code, r.json()) == (200, {"message": {"ok": True, "queued": 0}})
	assert len(sync_jobs(frappe, account)) == jobs_before


# -- refusals over real HTTP ------------------------------------------------------------------------------
def test_unauthenticated_forged_and_malformed_pushes_are_refused_and_queue_nothing(site, accounts, push_site):
	frappe = site
	server = accounts.server
	account, mailbox = connected_and_synced(accounts)
	before = len(sync_jobs(frappe, account))
	envelope = server.pubsub_envelope(mailbox, server.mailbox(mailbox).history_id + 1)
	good = server.oidc_token(push_site, PUSH_SA)

	cases = {
		"no Authorization": (post(push_site, envelope), 401),
		"not a JWT": (post(push_site, envelope, token="not-a-jwt"), 401),
		"signed with another key": (post(push_site, envelope, token=server.oidc_token(push_site, PUSH_SA, wrong_key=True)), 401),
		"wrong audience": (post(push_site, envelope, token=server.oidc_token("https://other.example/push", PUSH_SA)), 401),
		"expired": (post(push_site, envelope, token=server.oidc_token(push_site, PUSH_SA, iat=int(time.time()) - 7200, lifetime=-3600)), 401),
		"other service account": (post(push_site, envelope, token=server.oidc_token(push_site, "intruder@evil.example")), 403),
		"email not verified": (post(push_site, envelope, token=server.oidc_token(push_site, PUSH_SA, email_verified=False)), 403),
		"other issuer": (post(push_site, envelope, token=server.oidc_token(push_site, PUSH_SA, issuer="https://evil.example")), 403),
		"envelope without data": (post(push_site, {"message": {"messageId": "1"}}, token=good), 400),
		"data not base64 JSON": (post(push_site, {"message": {"data": "%%%"}, "subscription": "s"}, token=good), 400),
		"body not JSON": (post(push_site, "hello", token=good, content_type="text/plain"), 400),
		"notification without historyId": (post(push_site, {"message": {"data": b64json({"emailAddress": mailbox})}}, token=good), 400),
	}
	for name, (response, status) in cases.items():
		assert response.status_code == status, (name, response.status_code, response.text)
	# a GET is not a push
	assert requests.get(push_site, timeout=30).status_code in (403, 405)
	# Frappe's own authentication is untouched elsewhere: a foreign bearer token is refused as before
	web = push_site[: -len(PATH)]
	assert requests.get(web + "/api/method/ping", headers={"Authorization": f"Bearer {good}"}, timeout=30).status_code == 401

	# the same refusals reach Pub/Sub (here: the server's delivery) as non-2xx, so nothing is acknowledged
	server.configure_push(push_site, audience=push_site, service_account=PUSH_SA, sign_with_wrong_key=True,
						  max_attempts=2, retry_delay=0.05)
	watch(frappe, account)
	server.insert_message(mailbox, raw_mail(mailbox, "forged push"))
	[delivery] = server.wait_for_pushes(1, timeout=20, email=mailbox)
	assert (delivery["statuses"], delivery["attempts"]) == ([401, 401], 2)
	assert len(sync_jobs(frappe, account)) == before
	assert not [j for j in sync_jobs(frappe, account) if j.trigger == "push"]

	# an address Atlas does not sync is acknowledged and ignored (Pub/Sub would redeliver it for days)
	stranger = server.pubsub_envelope("nobody-synced-here@atlas-test.example", 12345)
	r = post(push_site, stranger, token=good)
	assert (r.status_code, r.json()) == (200, {"message": {"ok": True, "queued": 0}})
	assert len(sync_jobs(frappe, account)) == before


def test_google_certificates_unreachable_answers_503_for_a_retry(site, accounts, push_site):
	from frappe.installer import update_site_config

	server = accounts.server
	token = server.oidc_token(push_site, PUSH_SA)
	update_site_config("atlas_google_certs_url", "http://127.0.0.1:9/oauth2/v1/certs")
	try:
		r = post(push_site, server.pubsub_envelope("nobody@atlas-test.example", 1), token=token)
	finally:
		update_site_config("atlas_google_certs_url", server.url + "oauth2/v1/certs")
	assert r.status_code == 503 and r.json()["message"] == {"ok": False, "retry": True}
	assert token not in r.text


def test_shared_token_mode_accepts_the_right_token_only_and_never_shows_it(site, accounts, push_site, web):
	frappe = site
	server = accounts.server
	started = frappe.utils.now_datetime() - timedelta(seconds=2)
	account, mailbox = connected_and_synced(accounts)
	set_push_settings(push_auth_mode="Shared token")
	history_id = server.mailbox(mailbox).history_id
	envelope = server.pubsub_envelope(mailbox, history_id)

	responses = {
		"no token": (post(push_site, envelope), 401),
		"wrong token": (post(push_site, envelope, query={"token": SHARED_SECRET + "x"}), 403),
		"prefix of the token": (post(push_site, envelope, query={"token": SHARED_SECRET[:-1]}), 403),
		"a bearer JWT is not the token": (post(push_site, envelope, token=server.oidc_token(push_site, PUSH_SA)), 401),
	}
	for name, (response, status) in responses.items():
		assert response.status_code == status, (name, response.status_code, response.text)
	assert not [j for j in sync_jobs(frappe, account) if j.trigger == "push"]

	# the subscription configured with the token: the server appends ?token=... as Pub/Sub would be told to
	server.configure_push(push_site, mode="token", token=SHARED_SECRET)
	watch(frappe, account)
	server.insert_message(mailbox, raw_mail(mailbox, "token push"))
	[delivery] = server.wait_for_pushes(1, timeout=20, email=mailbox)
	assert delivery["status"] == 200, delivery
	[job] = wait_for_push_job(frappe, account)
	assert job.status == "pending"

	# the secret is nowhere a user or an admin can read it
	texts = [r.text for r, _ in responses.values()] + [delivery["response"]]
	texts += [json.dumps(j, default=str) for j in sync_jobs(frappe, account)]
	texts += [json.dumps(e, default=str) for e in frappe.get_all("Error Log", filters={"creation": [">=", started]},
																 fields=["*"])]
	http = login(web)
	texts.append(http.get(f"{web}/api/resource/Atlas Settings/Atlas Settings", timeout=30).text)
	assert "push_auth_mode" in texts[-1]
	for text in texts:
		assert SHARED_SECRET not in text
	run_worker()  # drain the queued push sync so no rq job outlives the test's data


# -- renewal ----------------------------------------------------------------------------------------------
def test_renew_watches_renews_only_what_expires_soon_and_survives_failures(site, accounts, push_site):
	frappe = site
	from frappe.utils import get_datetime, now_datetime

	from atlas_integrations.gmail import push

	server = accounts.server
	names = {}
	for label in ("due", "fresh", "missing", "revoked", "refused", "disabled"):
		mailbox = accounts.mailbox(load_corpus=False)
		account, _ = accounts.connect(mailbox)
		names[label] = (account, mailbox)
	assert run_worker().returncode == 0  # initial syncs: all ACTIVE
	now = now_datetime()
	expiries = {"due": now + timedelta(hours=12), "fresh": now + timedelta(days=6), "revoked": now + timedelta(hours=1),
				"refused": now + timedelta(hours=1), "disabled": now + timedelta(hours=1)}
	for label, when in expiries.items():
		frappe.db.set_value("Gmail Account", names[label][0], "watch_expiration", when, update_modified=False)
	frappe.db.set_value("Gmail Account", names["disabled"][0], "enabled", 0)
	# the initial sync started a watch for every account; "missing" has none (e.g. the topic was set later)
	frappe.db.set_value("Gmail Account", names["missing"][0], "watch_expiration", None, update_modified=False)
	frappe.db.commit()
	server.revoke_tokens(names["revoked"][1])
	server.inject_fault(r"/watch$", 403, count=1, reason="forbidden", email=names["refused"][1])
	for _, mailbox in names.values():
		server.reset_stats(mailbox)

	renewed = push.renew_watches(only=[account for account, _ in names.values()])

	assert sorted(renewed) == sorted([names["due"][0], names["missing"][0]])
	watch_calls = {label: server.stats(mailbox)["by_method"].get("users.watch", 0) for label, (_, mailbox) in names.items()}
	assert watch_calls == {"due": 1, "fresh": 0, "missing": 1, "revoked": 1, "refused": 1, "disabled": 0}
	frappe.db.rollback()
	for label in ("due", "missing"):
		expires = get_datetime(frappe.db.get_value("Gmail Account", names[label][0], "watch_expiration"))
		assert expires > now + timedelta(days=6, hours=23)
	assert get_datetime(frappe.db.get_value("Gmail Account", names["fresh"][0], "watch_expiration")) < now + timedelta(days=6, seconds=1)
	assert frappe.db.get_value("Gmail Account", names["revoked"][0], "status") == "UNAUTHORIZED"
	assert frappe.db.get_value("Gmail Account", names["refused"][0], "status") == "ACTIVE"
	[log] = frappe.get_all("Error Log", filters={"reference_name": names["refused"][0]}, fields=["method", "error"])
	assert "403" in log.error and "forbidden" in log.error
	secrets = server.issued_refresh_tokens(names["refused"][1]) + server.issued_access_tokens(names["refused"][1])
	for secret in secrets:
		assert secret not in log.error
	frappe.db.delete("Error Log", {"reference_name": names["refused"][0]})
	frappe.db.commit()

	# no topic: push is off, nothing is watched
	set_push_settings(pubsub_topic="")
	assert push.renew_watches(only=[names["due"][0]]) == []
	assert push.ensure_watch(names["fresh"][0], force=True) is None
