"""Nothing is lost, duplicated or invented silently: messages that cannot be fetched stay pending and are
retried, drafts are not imported, "already present" is decided by the unique key, and a full resync
reconciles what is stored."""

from __future__ import annotations

import base64
import re
import json
import time

from tests.realsite.conftest import run_worker, sync_account


def _raw(mailbox: str, n: str, sender: str = "ann@example.org") -> bytes:
	return (f"From: Ann <{sender}>\r\nTo: {mailbox}\r\nSubject: {n}\r\nMessage-ID: <{n}@example.org>\r\n"
			f"Date: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\nbody {n}\r\n").encode()


def _stored(frappe, account):
	return {r.atlas_provider_message_id: r for r in frappe.get_all(
		"Communication", filters={"atlas_mailbox": account},
		fields=["name", "atlas_provider_message_id", "sent_or_received", "seen", "atlas_tags", "atlas_deleted",
				"subject"])}


def test_message_that_keeps_failing_stays_pending_until_it_is_stored(site, accounts):
	from atlas_integrations.gmail.sync import poll_accounts

	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	run_worker()  # initial sync of the empty mailbox sets the cursor
	frappe.db.rollback()
	ids = [server.insert_message(mailbox, _raw(mailbox, f"m{n}")) for n in range(3)]
	bad = ids[1]

	# run 1: Gmail keeps answering 500 for that one message (every retry of the batch part)
	server.inject_fault(rf"/messages/{bad}$", 500, count=1000, email=mailbox)
	job = sync_account(frappe, account)
	assert job.status == "failed" and job.failed == 1 and job.created == 2, (job.status, job.details)
	assert bad in job.details and bad in job.last_error
	assert set(_stored(frappe, account)) == {ids[0], ids[2]}
	doc = frappe.get_doc("Gmail Account", account)
	assert doc.pending_messages == 1 and json.loads(doc.pending_message_ids) == [bad]
	assert bad in (doc.last_error or "")
	server.clear_faults()

	# run 2: nothing new in history, the pending id is retried first; now a non-retryable error
	server.inject_fault(rf"/messages/{bad}$", 400, count=1000, email=mailbox)
	job = sync_account(frappe, account)
	assert job.status == "failed" and job.failed == 1 and job.created == 0, (job.status, job.details)
	assert set(_stored(frappe, account)) == {ids[0], ids[2]}
	assert frappe.db.get_value("Gmail Account", account, "pending_messages") == 1
	server.clear_faults()

	# an idle poll does not pass over an account with pending messages: it queues a run, which stores it
	frappe.db.set_value("Gmail Account", account, "throttle_until", None)
	frappe.db.commit()
	assert poll_accounts([account]) == {account: "queued"}
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	last = frappe.get_all("Sync Job", filters={"reference_name": account}, fields=["status", "created", "failed"],
						  order_by="creation desc", limit=1)[0]
	assert (last.status, last.created, last.failed) == ("succeeded", 1, 0)
	assert set(_stored(frappe, account)) == set(ids)
	doc = frappe.get_doc("Gmail Account", account)
	assert doc.pending_messages == 0 and not doc.pending_message_ids
	assert doc.health == "healthy" and not doc.last_error


def test_message_deleted_before_it_is_fetched_is_not_a_failure(site, accounts):
	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	run_worker()
	frappe.db.rollback()
	ids = [server.insert_message(mailbox, _raw(mailbox, f"g{n}")) for n in range(2)]
	server.inject_fault(rf"/messages/{ids[0]}$", 404, count=1000, email=mailbox)
	job = sync_account(frappe, account)
	server.clear_faults()
	assert (job.status, job.created, job.failed) == ("succeeded", 1, 0), job.details
	assert frappe.db.get_value("Gmail Account", account, "pending_messages") == 0


def test_drafts_are_not_imported_and_a_sent_draft_arrives_once_as_sent(site, accounts):
	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	mine = f"From: Me <{mailbox}>\r\nTo: Ann <ann@example.org>\r\nSubject: Offer\r\nMessage-ID: <offer@x>\r\n\r\n"
	early = server.insert_message(mailbox, (mine + "first draft\r\n").encode(), label_ids=["DRAFT"])
	job = sync_account(frappe, account)  # initial sync: the listing leaves drafts out
	assert job.status == "succeeded" and job.created == 0, job.details
	assert _stored(frappe, account) == {}

	server.delete_message(mailbox, early)  # the draft is edited: Gmail replaces it by a new one
	draft = server.insert_message(mailbox, (mine + "second draft\r\n").encode(), label_ids=["DRAFT"])
	job = sync_account(frappe, account)  # incremental: the history add of a draft is skipped
	assert (job.status, job.sync_mode, job.created, job.failed) == ("succeeded", "incremental", 0, 0), job.details
	assert _stored(frappe, account) == {}

	server.delete_message(mailbox, draft)  # sent: the draft goes, the sent message has a new id
	sent = server.insert_message(mailbox, (mine + "second draft\r\n").encode(), label_ids=["SENT"])
	job = sync_account(frappe, account)
	assert (job.status, job.created) == ("succeeded", 1), job.details
	rows = _stored(frappe, account)
	assert list(rows) == [sent] and rows[sent].sent_or_received == "Sent"
	job = sync_account(frappe, account)
	assert job.created == 0 and len(_stored(frappe, account)) == 1


def test_a_row_insert_ignore_dropped_is_a_failure_not_already_present(site, accounts, monkeypatch):
	from atlas_integrations.gmail import store

	frappe = site
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)

	def gm(mid):
		return {"id": mid, "threadId": "t-same", "labelIds": ["INBOX"], "internalDate": str(int(time.time() * 1000)),
				"raw": base64.urlsafe_b64encode(_raw(mailbox, mid)).decode()}

	ctx = store.StoreContext(account=account)
	try:
		first = store.write_batch(ctx, [gm("k1")])
		assert first.created == ["k1"] and not first.failed
		again = store.write_batch(ctx, [gm("k1")])  # a replay: its key exists
		assert again.already_present == ["k1"] and not again.created and not again.failed
		taken = frappe.db.get_value("Communication", {"atlas_mailbox_key": store.message_key(account, "k1")}, "name")
		monkeypatch.setattr(frappe, "generate_hash", lambda *a, **k: taken)  # the new row's name collides
		dropped = store.write_batch(ctx, [gm("k2")])
		assert not dropped.created and not dropped.already_present
		assert list(dropped.failed) == ["k2"]
		assert store.write_batch(ctx, [dict(gm("k3"), labelIds=["DRAFT"])]).skipped == {"k3": "draft"}
	finally:
		frappe.db.rollback()


def test_full_resync_reconciles_stored_messages_and_covers_an_outage(site, accounts):
	from frappe.utils import add_days, now_datetime

	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	ids = [server.insert_message(mailbox, _raw(mailbox, f"r{n}"), label_ids=["INBOX", "UNREAD"]) for n in range(3)]
	job = sync_account(frappe, account)
	assert job.created == 3
	# a long outage: the cursor expired; meanwhile one was read and archived, one deleted, one got a new
	# user label and a star, and mail arrived that is older than the 30-day window but newer than the
	# last successful sync
	server.modify_message(mailbox, ids[0], remove_label_ids=["UNREAD", "INBOX"])
	server.delete_message(mailbox, ids[1])
	label = server.add_label(mailbox, "Clients/Acme")
	server.modify_message(mailbox, ids[2], add_label_ids=[label, "STARRED"])
	old = server.insert_message(mailbox, _raw(mailbox, "during-outage"),
								internal_date_ms=int((time.time() - 45 * 86400) * 1000))
	frappe.db.set_value("Gmail Account", account, {"history_id": "2", "last_success_at": add_days(now_datetime(), -60)})
	frappe.db.commit()
	server.expire_history(mailbox)
	job = sync_account(frappe, account)
	assert (job.status, job.sync_mode) == ("succeeded", "full resync"), job.last_error
	rows = _stored(frappe, account)
	assert set(rows) == set(ids) | {old}
	processed = frappe.db.get_value("Gmail Account", account, "processing_label_id")  # Atlas' own label
	assert processed
	assert rows[ids[0]].seen == 1 and set(rows[ids[0]].atlas_tags.split(",")) == {processed}
	assert rows[ids[1]].atlas_deleted == 1
	assert rows[ids[2]].seen == 0 and rows[ids[2]].atlas_deleted == 0
	assert set(rows[ids[2]].atlas_tags.split(",")) == {"INBOX", "UNREAD", "STARRED", label,
																	  processed}
	# (the message stored during this run may also be counted: Atlas' processing label reached it in Gmail)
	assert re.search(r"1 flagged deleted, [23] label sets updated \(1 read states\)", job.details), job.details
	# the threads show it too: the label's name, the archived thread out of INBOX
	threads = {t.provider_thread_id: t for t in frappe.get_all(
		"Inbox Thread", filters={"mailbox": account}, fields=["provider_thread_id", "labels", "tags", "unread"])}
	thread_of = dict(frappe.get_all("Communication", filters={"atlas_mailbox": account},
									fields=["atlas_provider_message_id", "atlas_provider_thread_id"], as_list=True))
	archived, labelled = threads[thread_of[ids[0]]], threads[thread_of[ids[2]]]
	assert "INBOX" not in (archived.tags or "") and archived.unread == 0
	assert "Clients/Acme" in labelled.labels and labelled.unread == 1


def test_idle_poll_keeps_a_quiet_mailboxs_cursor_fresh(site, accounts):
	from atlas_integrations.gmail.sync import poll_accounts

	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	run_worker()
	frappe.db.rollback()
	current = int(frappe.db.get_value("Gmail Account", account, "history_id"))
	newer = server.advance_history_id(mailbox, 3)  # Gmail's historyId moves on, nothing to replay
	assert poll_accounts([account]) == {account: "idle"}
	frappe.db.rollback()
	assert frappe.db.get_value("Gmail Account", account, "history_id") == newer and int(newer) > current
	job = sync_account(frappe, account)  # the fresh cursor is valid: an incremental run, nothing to do
	assert (job.status, job.sync_mode, job.created) == ("succeeded", "incremental", 0)


def test_a_kept_page_token_gmail_refuses_starts_the_listing_over_and_counts_it_once(site, accounts):
	"""An initial sync resumes its listing from the page token kept in its Sync Job's payload; when Gmail
	no longer accepts that token (400 "Invalid pageToken"), the listing starts over from the first page:
	every message is stored once and ``listed_so_far`` counts the new listing only."""
	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	ids = [server.insert_message(mailbox, _raw(mailbox, f"tok{n}"), label_ids=["INBOX"]) for n in range(5)]
	account, _ = accounts.connect(mailbox)  # the initial sync is queued, not run yet
	job = frappe.get_all("Sync Job", filters={"job_type": "Gmail Sync", "reference_name": account}, pluck="name")[0]
	after = int(time.time()) - 30 * 86400
	# what a run handed over after its first pages keeps (its window, its place), with a token Gmail refuses
	frappe.db.set_value("Sync Job", job, "payload", json.dumps({
		"after": after, "list_query": f"after:{after} -in:drafts", "page_token": "refused-token-0",
		"listed_so_far": 40}, sort_keys=True), update_modified=False)
	frappe.db.commit()
	server.reset_stats()
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	row = frappe.db.get_value("Sync Job", job, ["status", "created", "failed", "payload", "last_error"], as_dict=True)
	assert (row.status, row.created, row.failed) == ("succeeded", 5, 0), row
	payload = json.loads(row.payload)
	assert (payload["page_token"], payload["listed_so_far"]) == (None, 5), payload
	assert sorted(_stored(frappe, account)) == sorted(ids)
	assert server.stats(mailbox)["by_method"].get("messages.list", 0) == 2  # refused once, then from the start
