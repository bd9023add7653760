"""Initial sync of the real corpus into the real site, on real rq workers, against the local Gmail server."""

from __future__ import annotations

import base64
import email
import html
import email.policy
import json
import time

from atlas_integrations.inbox.mime import unsurrogate
from tests.realsite.conftest import race_two_runs, run_worker, sync_account


def _server_messages(server, mailbox):
	"""{gmail id: (threadId, raw bytes)} as the server holds them."""
	return {m["id"]: (m["threadId"], base64.urlsafe_b64decode(m["raw"] + "==="))
			for m in server.dump_messages(mailbox)}


from tests.pure.mime_expectations import expected_attachments  # noqa: E402

def _expected_attachments(raw: bytes) -> int:
	"""Attachments as the stdlib sees them: leaves that are attachments or carry a file name, plus
	message/rfc822 parts (kept whole). compat32 structure: it recovers multiparts whose boundary
	parameter the stricter policy.default parser gives up on."""
	msg = email.message_from_bytes(raw, policy=email.policy.compat32)

	def walk(part, top):
		ctype = part.get_content_type()
		if ctype == "message/rfc822" and not top:
			return 1
		if part.is_multipart() and ctype != "message/rfc822":
			return sum(walk(p, False) for p in part.get_payload())
		try:
			named = bool(part.get_filename())
		except Exception:
			named = True
		return 1 if ((part.get_content_disposition() or "") == "attachment" or named) else 0

	return walk(msg, True)


def _job(frappe, account):
	rows = frappe.get_all("Sync Job", filters={"reference_name": account}, fields=["*"], order_by="creation asc")
	return rows


def test_whole_corpus_synced_once_grouped_decoded_with_attachments(site, accounts):
	frappe = site
	account, mailbox = accounts.connect()
	server = accounts.server
	held = _server_messages(server, mailbox)
	assert len(held) == 276
	server.reset_stats(mailbox)  # connecting read the profile once

	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()

	[job] = _job(frappe, account)
	assert job.status == "succeeded", job.last_error
	assert (job.listed, job.created, job.already_present, job.failed) == (276, 276, 0, 0), job.details
	assert 276 <= job.api_calls <= 1.05 * 276
	assert server.stats(mailbox)["api_calls"] == job.api_calls

	comms = frappe.get_all(
		"Communication",
		filters={"atlas_mailbox": account},
		fields=["name", "subject", "sender", "sender_full_name", "atlas_provider_message_id", "atlas_provider_thread_id",
				"atlas_inbox_thread", "sent_or_received", "atlas_parse_error", "atlas_skipped_attachments",
				"reference_doctype", "reference_name"],
	)
	# one Communication per message
	assert len(comms) == 276
	assert {c.atlas_provider_message_id for c in comms} == set(held)

	# threads grouped as Gmail grouped them
	threads = frappe.get_all("Inbox Thread", filters={"mailbox": account},
							 fields=["name", "provider_thread_id", "message_count", "first_message_at", "last_message_at"])
	gmail_threads = {}
	for mid, (tid, _) in held.items():
		gmail_threads.setdefault(tid, set()).add(mid)
	assert {t.provider_thread_id for t in threads} == set(gmail_threads)
	assert len(gmail_threads) < 276  # the corpus really has threads
	by_thread = {t.provider_thread_id: t for t in threads}
	for c in comms:
		assert c.atlas_provider_thread_id == held[c.atlas_provider_message_id][0]
		thread = by_thread[c.atlas_provider_thread_id]
		assert (c.reference_doctype, c.reference_name, c.atlas_inbox_thread) == ("Inbox Thread", thread.name, thread.name)
	for t in threads:
		assert t.message_count == len(gmail_threads[t.provider_thread_id])
		assert t.first_message_at <= t.last_message_at

	# every subject and sender decoded as email.policy.default decodes them
	by_id = {c.atlas_provider_message_id: c for c in comms}
	checked = 0
	for mid, (_, raw) in held.items():
		ref = email.message_from_bytes(raw, policy=email.policy.default)
		c = by_id[mid]
		try:
			subject = ref["subject"]
			sender = ref["from"]
		except Exception:
			continue  # the reference parser itself gives up on this header
		expected_subject = unsurrogate(" ".join(str(subject).split())) if subject is not None else ""
		# Frappe's XSS filter stores markup-looking text HTML-escaped (as for its own inbound mail)
		assert html.unescape(c.subject) == (expected_subject or "(no subject)"), mid
		if sender is not None and sender.addresses:
			addr = sender.addresses[0]
			if frappe.utils.validate_email_address(unsurrogate(addr.addr_spec)):
				assert c.sender == unsurrogate(addr.addr_spec), mid
				if addr.display_name:
					assert html.unescape(c.sender_full_name) == unsurrogate(addr.display_name), mid
			else:  # Frappe's Email field refuses it: the address is kept as the sender's name
				assert c.sender is None, mid
				assert html.unescape(c.sender_full_name) == unsurrogate(addr.display_name or addr.addr_spec), mid
		checked += 1
	assert checked >= 270

	# attachments: stored as private Files on the Communication, or recorded as not stored
	expected_total = 0
	for mid, (_, raw) in held.items():
		expected = len(expected_attachments(raw))  # the stdlib oracle of tests/pure/test_mime_attachments.py
		expected_total += expected
		c = by_id[mid]
		files = frappe.get_all("File", filters={"attached_to_doctype": "Communication", "attached_to_name": c.name},
							   fields=["is_private"])
		skipped = json.loads(c.atlas_skipped_attachments or "[]")
		assert len(files) + len(skipped) == expected, mid
		assert all(f.is_private for f in files)
	assert expected_total >= 50

	# an impossible Date header (the corpus has one in the year 3609) falls back to Gmail's internalDate
	latest = frappe.db.sql("select max(communication_date) from `tabCommunication` where atlas_mailbox=%s", account)[0][0]
	assert latest <= frappe.utils.add_days(frappe.utils.now_datetime(), 1)

	# broken messages are stored with their error, not dropped
	assert sum(1 for c in comms if c.atlas_parse_error) >= 10

	doc = frappe.get_doc("Gmail Account", account)
	assert (doc.status, doc.health, doc.sync_stage) == ("ACTIVE", "healthy", "Incremental")
	assert doc.history_id == job.details.split("historyId ")[1].split(";")[0]
	assert int(doc.history_id) > 0
	assert doc.success_rate == 100

	# every stored message carries the processing label in Gmail
	label_id = doc.processing_label_id
	assert json.loads(doc.gmail_labels)[label_id] == "Atlas/Processed"
	assert all(label_id in m["labelIds"] for m in server.dump_messages(mailbox))
	assert {"INBOX", "SENT", "UNREAD", "CATEGORY_PROMOTIONS"} <= set(json.loads(doc.gmail_labels))  # all labels known


def test_sent_mail_is_synced_as_sent(site, accounts):
	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	received = b"From: Ann <ann@example.org>\r\nTo: %s\r\nSubject: Quote request\r\nMessage-ID: <q1@example.org>\r\nDate: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\nCan you quote 5 units?\r\n" % mailbox.encode()
	sent = b"From: Me <%s>\r\nTo: Ann <ann@example.org>\r\nSubject: Re: Quote request\r\nMessage-ID: <r1@atlas-test.example>\r\nIn-Reply-To: <q1@example.org>\r\nReferences: <q1@example.org>\r\nDate: Thu, 19 Nov 2026 11:00:00 +0000\r\n\r\nSure: 500 GBP.\r\n" % mailbox.encode()
	server.insert_message(mailbox, received, label_ids=["INBOX", "UNREAD"])
	server.insert_message(mailbox, sent, label_ids=["SENT"])
	run_worker()
	frappe.db.rollback()
	rows = frappe.get_all("Communication", filters={"atlas_mailbox": account},
						  fields=["name", "subject", "sent_or_received", "in_reply_to", "atlas_inbox_thread", "seen"],
						  order_by="communication_date asc")
	assert [(r.subject, r.sent_or_received, r.seen) for r in rows] == [
		("Quote request", "Received", 0), ("Re: Quote request", "Sent", 1)]
	assert rows[1].in_reply_to == rows[0].name
	assert rows[0].atlas_inbox_thread == rows[1].atlas_inbox_thread
	thread = frappe.get_doc("Inbox Thread", rows[0].atlas_inbox_thread)
	assert thread.message_count == 2 and thread.unread == 1
	assert "INBOX" in thread.labels and "SENT" in thread.labels
	assert "ann@example.org" in thread.participants


def _counts(job):
	return (job.listed, job.created, job.already_present, job.failed)


def test_rerun_creates_nothing_new(site, accounts):
	frappe = site
	account, mailbox = accounts.connect()
	run_worker()
	frappe.db.rollback()
	files = frappe.db.sql("select count(*) from `tabFile` f join `tabCommunication` c on f.attached_to_name=c.name "
						  "where c.atlas_mailbox=%s", account)[0][0]
	threads = frappe.db.count("Inbox Thread", {"mailbox": account})
	assert frappe.db.count("Communication", {"atlas_mailbox": account}) == 276

	idle = sync_account(frappe, account)  # nothing changed in Gmail: one history.list call, nothing written
	assert (idle.status, idle.sync_mode, _counts(idle), idle.api_calls) == ("succeeded", "incremental", (0, 0, 0, 0), 1)

	# a week later Gmail no longer has history from our cursor: 404 -> full resync
	frappe.db.set_value("Gmail Account", account, "history_id", "2")
	frappe.db.commit()
	accounts.server.expire_history(mailbox)
	resync = sync_account(frappe, account)
	assert (resync.status, resync.sync_mode) == ("succeeded", "full resync")
	assert "historyId expired" in resync.details
	assert _counts(resync) == (276, 0, 276, 0)
	# no body re-fetched: history, profile, labels, one list page, and each stored message's labelIds
	# (format=minimal, batched) to reconcile them
	assert resync.api_calls <= 5 + 276
	assert frappe.db.count("Communication", {"atlas_mailbox": account}) == 276
	assert frappe.db.count("Inbox Thread", {"mailbox": account}) == threads
	assert frappe.db.sql("select count(*) from `tabFile` f join `tabCommunication` c on f.attached_to_name=c.name "
						 "where c.atlas_mailbox=%s", account)[0][0] == files
	assert int(frappe.db.get_value("Gmail Account", account, "history_id")) > 2  # a fresh cursor


def test_incremental_adds_deletes_and_relabels(site, accounts):
	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	first = server.insert_message(mailbox, b"From: Ann <ann@example.org>\r\nTo: %s\r\nSubject: Order 1\r\nMessage-ID: <o1@example.org>\r\nDate: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n" % mailbox.encode())
	run_worker()
	frappe.db.rollback()
	cursor = frappe.db.get_value("Gmail Account", account, "history_id")

	reply = server.insert_message(mailbox, b"From: Ann <ann@example.org>\r\nTo: %s\r\nSubject: Re: Order 1\r\nMessage-ID: <o2@example.org>\r\nIn-Reply-To: <o1@example.org>\r\nDate: Thu, 19 Nov 2026 11:00:00 +0000\r\n\r\nMore\r\n" % mailbox.encode())
	other = server.insert_message(mailbox, b"From: Bob <bob@example.org>\r\nTo: %s\r\nSubject: Other\r\nDate: Thu, 19 Nov 2026 12:00:00 +0000\r\n\r\nx\r\n" % mailbox.encode())
	server.modify_message(mailbox, first, add_label_ids=["STARRED"], remove_label_ids=["UNREAD"])
	server.delete_message(mailbox, other)
	server.reset_stats(mailbox)
	job = sync_account(frappe, account)
	assert (job.status, job.sync_mode) == ("succeeded", "incremental"), job.last_error
	assert (job.created, job.failed) == (1, 0)
	assert job.api_calls <= 3  # history.list + one batch of new messages (+ labels when a new one appears)
	assert int(frappe.db.get_value("Gmail Account", account, "history_id")) > int(cursor)

	rows = {r.atlas_provider_message_id: r for r in frappe.get_all(
		"Communication", filters={"atlas_mailbox": account},
		fields=["atlas_provider_message_id", "atlas_tags", "seen", "atlas_deleted", "atlas_inbox_thread", "in_reply_to", "name"])}
	assert set(rows) == {first, reply}  # the message added and deleted between two runs never arrives
	assert "STARRED" in rows[first].atlas_tags and rows[first].seen == 1
	assert rows[reply].atlas_inbox_thread == rows[first].atlas_inbox_thread and rows[reply].in_reply_to == rows[first].name
	thread = frappe.get_doc("Inbox Thread", rows[first].atlas_inbox_thread)
	assert thread.message_count == 2 and thread.unread == 1 and "STARRED" in thread.tags

	server.delete_message(mailbox, reply)
	server.modify_message(mailbox, first, add_label_ids=["UNREAD"])
	job = sync_account(frappe, account)
	assert job.status == "succeeded"
	assert frappe.db.get_value("Communication", rows[reply].name, "atlas_deleted") == 1  # kept, hidden
	thread.reload()
	assert thread.message_count == 1 and thread.unread == 1


def test_account_filters_skip_what_they_should(site, accounts):
	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account = accounts.create(mailbox)
	frappe.db.set_value("Gmail Account", account, {"blocklist": "@spam.example", "skip_categories": 1,
													"skip_auto_generated": 1})
	frappe.db.commit()
	query = accounts.authorize(account, mailbox)
	from atlas_integrations.gmail import oauth

	oauth.complete(query["state"], code=query["code"])
	frappe.db.commit()
	def raw(sender, subject, extra=""):
		return (f"From: {sender}\r\nTo: {mailbox}\r\nSubject: {subject}\r\n{extra}Date: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\nx\r\n").encode()
	server.insert_message(mailbox, raw("ann@example.org", "keep"))
	server.insert_message(mailbox, raw("x@spam.example", "blocked"))
	server.insert_message(mailbox, raw("deals@shop.example", "promo"), label_ids=["INBOX", "CATEGORY_PROMOTIONS"])
	server.insert_message(mailbox, raw("robot@example.org", "auto", "Auto-Submitted: auto-replied\r\n"))
	run_worker()
	frappe.db.rollback()
	[job] = _job(frappe, account)
	assert job.status == "succeeded" and (job.created, job.skipped) == (1, 3)
	assert frappe.get_all("Communication", filters={"atlas_mailbox": account}, pluck="subject") == ["keep"]


def test_sync_now_is_deduplicated(site, accounts):
	from atlas_integrations.api.gmail import sync_now

	frappe = site
	account, _ = accounts.connect()  # connect queued one run already
	first = sync_now(account)
	second = sync_now(account)
	frappe.db.commit()
	assert first["created"] is False and second["created"] is False
	assert first["sync_job"] == second["sync_job"]
	assert frappe.db.count("Sync Job", {"reference_name": account}) == 1


def test_two_runs_started_together_create_no_duplicates(site, accounts):
	"""Two Sync Jobs of one account handed to two real workers at the same moment."""
	frappe = site
	account, mailbox = accounts.connect()
	frappe.db.delete("Sync Job", {"reference_name": account})  # drop the queued connect run
	names = race_two_runs(frappe, account)
	rows = frappe.get_all("Sync Job", filters={"name": ["in", names]}, fields=["status", "created", "already_present", "failed", "last_error"])
	assert [r.status for r in rows] == ["succeeded", "succeeded"], rows
	assert sum(r.created for r in rows) == 276
	assert sum(r.failed for r in rows) == 0
	assert frappe.db.count("Communication", {"atlas_mailbox": account}) == 276
	dupes = frappe.db.sql("""select atlas_provider_message_id, count(*) from `tabCommunication`
		where atlas_mailbox=%s group by atlas_provider_message_id having count(*) > 1""", account)
	assert dupes == ()


def test_rate_limited_then_success_completes(site, accounts):
	frappe = site
	account, mailbox = accounts.connect()
	server = accounts.server
	server.inject_fault(r"/messages/[0-9a-f]+$", 429, count=3, reason="rateLimitExceeded", email=mailbox)
	server.inject_fault(r"/messages$", 503, count=1, email=mailbox)
	started = time.monotonic()
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	[job] = _job(frappe, account)
	assert job.status == "succeeded", job.last_error
	assert (job.created, job.failed) == (276, 0)
	assert job.api_calls >= 276 + 3 + 1
	assert server.stats(mailbox)["faults_served"] == 4
	assert frappe.db.count("Communication", {"atlas_mailbox": account}) == 276
	assert time.monotonic() - started < 300


def test_invalid_grant_marks_one_account_unauthorized_while_another_syncs(site, accounts):
	frappe = site
	bad, bad_mailbox = accounts.connect()
	good, good_mailbox = accounts.connect()
	accounts.server.revoke_tokens(bad_mailbox)  # Google now answers invalid_grant for this mailbox
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	bad_doc = frappe.get_doc("Gmail Account", bad)
	assert (bad_doc.status, bad_doc.health) == ("UNAUTHORIZED", "unhealthy")
	assert "reconnect" in bad_doc.last_error
	[bad_job] = _job(frappe, bad)
	assert bad_job.status == "failed" and "invalid_grant" in bad_job.last_error
	assert frappe.db.count("Notification Log", {"document_type": "Gmail Account", "document_name": bad}) >= 1
	[good_job] = _job(frappe, good)
	assert good_job.status == "succeeded" and good_job.created == 276
	assert frappe.db.get_value("Gmail Account", good, "status") == "ACTIVE"
	# the scheduler no longer polls the unauthorized account
	from atlas_integrations.gmail.sync import enqueue_due_accounts

	frappe.db.set_value("Gmail Account", good, "last_processed_at", "2000-01-01 00:00:00")
	queued = enqueue_due_accounts()
	assert good in queued and bad not in queued


def test_snippet_only_mode_stores_no_body(site, accounts, snippet_only):
	frappe = site
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	body = "A long body that is not the snippet. " * 50
	raw = ("From: a@example.org\r\nTo: %s\r\nSubject: hello\r\nDate: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\n%s\r\n" % (mailbox, body)).encode()
	accounts.server.insert_message(mailbox, raw)
	run_worker()
	frappe.db.rollback()
	[c] = frappe.get_all("Communication", filters={"atlas_mailbox": account},
						 fields=["content", "text_content", "atlas_snippet", "atlas_body_stored"])
	assert c.atlas_body_stored == 0 and not c.text_content
	assert c.atlas_snippet and len(c.content) < 400


def test_processing_label_that_cannot_be_created_is_shown_on_the_account(site, accounts):
	frappe = site
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	accounts.server.insert_message(mailbox, b"From: a@example.org\r\nSubject: hi\r\n\r\nx\r\n")
	accounts.server.inject_fault(r"/labels$", 403, count=5, reason="insufficientPermissions", method="POST", email=mailbox)
	run_worker()
	frappe.db.rollback()
	[job] = _job(frappe, account)
	assert (job.status, job.created) == ("succeeded", 1)
	doc = frappe.get_doc("Gmail Account", account)
	assert doc.last_error == "Could not create the required processing label"
	assert not doc.processing_label_id


def test_poll_sweep_costs_one_call_per_idle_account_and_queues_only_changed_ones(site, accounts):
	from atlas_integrations.gmail.sync import enqueue_due_accounts, poll_accounts

	frappe = site
	server = accounts.server
	idle_box, busy_box = accounts.mailbox(load_corpus=False), accounts.mailbox(load_corpus=False)
	idle, _ = accounts.connect(idle_box)
	changed, _ = accounts.connect(busy_box)
	run_worker()  # initial syncs set both cursors
	frappe.db.rollback()
	before = {a: frappe.db.count("Sync Job", {"reference_name": a}) for a in (idle, changed)}
	server.insert_message(busy_box, b"From: a@example.org\r\nSubject: new one\r\n\r\nx\r\n")
	server.reset_stats(idle_box)
	frappe.db.set_value("Gmail Account", idle, "last_processed_at", "2000-01-01 00:00:00")
	frappe.db.set_value("Gmail Account", changed, "last_processed_at", "2000-01-01 00:00:00")
	frappe.db.commit()
	assert {idle, changed} <= set(enqueue_due_accounts())  # the cron hook hands them to a sweep job
	frappe.db.rollback()

	outcome = poll_accounts([idle, changed])  # what the sweep job runs
	frappe.db.commit()
	assert outcome == {idle: "idle", changed: "queued"}
	assert server.stats(idle_box)["api_calls"] == 1  # one history.list, no Sync Job
	assert frappe.db.count("Sync Job", {"reference_name": idle}) == before[idle]
	assert frappe.db.get_value("Gmail Account", idle, "last_processed_at") > frappe.utils.add_days(frappe.utils.now_datetime(), -1)
	assert frappe.db.count("Sync Job", {"reference_name": changed}) == before[changed] + 1
	run_worker()
	frappe.db.rollback()
	assert frappe.db.exists("Communication", {"atlas_mailbox": changed, "subject": "new one"})


def test_desk_label_and_read_changes_go_to_gmail_and_are_not_undone_by_history(site, accounts):
	from atlas_integrations.api.inbox import mark_read, set_labels

	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	mid = server.insert_message(mailbox, b"From: a@example.org\r\nSubject: to triage\r\n\r\nx\r\n")
	run_worker()
	frappe.db.rollback()
	thread = frappe.db.get_value("Communication", {"atlas_mailbox": account}, "atlas_inbox_thread")
	assert frappe.db.get_value("Inbox Thread", thread, "unread") == 1

	# Gmail history that predates the desk change: someone starred it in Gmail
	server.modify_message(mailbox, mid, add_label_ids=["STARRED"])
	result = mark_read(thread, read=1)
	set_labels(thread, add=["IMPORTANT"])
	frappe.db.commit()
	assert result["messages"] == 1 and result["sync_job"]
	assert frappe.db.get_value("Inbox Thread", thread, "unread") == 0  # shown at once in the desk

	from atlas_integrations.gmail.sync import enqueue_sync

	enqueue_sync(account)  # an incremental run sees the older history before the write-back ran
	frappe.db.commit()
	run_worker()
	frappe.db.rollback()
	labels = set(server.dump_messages(mailbox)[0]["labelIds"])
	assert "UNREAD" not in labels and {"IMPORTANT", "STARRED"} <= labels  # written to Gmail (batchModify)
	modify_jobs = frappe.get_all("Sync Job", filters={"reference_name": account, "job_type": "Gmail Modify"}, pluck="status")
	assert modify_jobs == ["succeeded", "succeeded"]
	row = frappe.db.get_value("Communication", {"atlas_provider_message_id": mid, "atlas_mailbox": account},
							  ["atlas_tags", "seen", "atlas_labels_pending"], as_dict=True)
	assert row.seen == 1 and row.atlas_labels_pending == 0 and "UNREAD" not in row.atlas_tags

	enqueue_sync(account)  # the history events of our own change change nothing
	frappe.db.commit()
	run_worker()
	frappe.db.rollback()
	assert frappe.db.get_value("Inbox Thread", thread, "unread") == 0
	assert {"IMPORTANT", "STARRED"} <= set(frappe.db.get_value("Inbox Thread", thread, "tags").split(","))


def test_snippet_only_bodies_are_hydrated_and_sanitized_when_the_thread_is_opened(site, accounts, snippet_only):
	from atlas_integrations.api.inbox import open_thread

	frappe = site
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	html_mail = (b"From: a@example.org\r\nTo: %s\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
				 b"Content-Type: text/html; charset=utf-8\r\n\r\n<p onclick=\"steal()\">Hello <b>there</b>"
				 b"<script>alert(1)</script><a href=\"javascript:x()\">x</a></p>\r\n" % mailbox.encode())
	accounts.server.insert_message(mailbox, html_mail)
	run_worker()
	frappe.db.rollback()
	[c] = frappe.get_all("Communication", filters={"atlas_mailbox": account},
						 fields=["name", "atlas_body_stored", "atlas_inbox_thread", "content"])
	assert c.atlas_body_stored == 0 and "<b>" not in c.content
	accounts.server.reset_stats(mailbox)
	opened = open_thread(c.atlas_inbox_thread)
	assert opened["hydrated"] == 1 and accounts.server.stats(mailbox)["api_calls"] == 1
	[m] = opened["messages"]
	assert "Hello <b>there</b>" in m.html
	for bad in ("<script", "onclick", "javascript:"):
		assert bad not in m.html
	assert frappe.db.get_value("Communication", c.name, "atlas_body_stored") == 1
	assert open_thread(c.atlas_inbox_thread)["hydrated"] == 0  # stored now: no second fetch


def test_processing_label_waits_for_a_batch_and_the_sweep_applies_it_at_the_lowest_quota_cost(site, accounts):
	from atlas_integrations.gmail.sync import enqueue_sync, poll_accounts

	frappe = site
	server = accounts.server
	assert frappe.get_single("Atlas Settings").processing_label_delay == 300  # the default
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	run_worker()  # initial sync of an empty mailbox: the cursor and the processing label exist
	frappe.db.rollback()
	label_id = frappe.db.get_value("Gmail Account", account, "processing_label_id")
	assert label_id

	def raw(n):
		return b"From: a%d@example.org\r\nSubject: small run %d\r\n\r\nx\r\n" % (n, n)

	def pending():
		frappe.db.rollback()
		return frappe.get_all("Communication", filters={"atlas_mailbox": account, "atlas_processed_pending": 1},
							  pluck="atlas_provider_message_id")

	def labelled():
		return {m["id"] for m in server.dump_messages(mailbox) if label_id in m["labelIds"]}

	def backdate():  # as if the waiting messages were stored 10 minutes ago
		frappe.db.sql("""update `tabCommunication` set creation = creation - interval 600 second
			where atlas_mailbox=%s and atlas_processed_pending=1""", account)
		frappe.db.commit()

	# an incremental run of 3 messages stores them and spends nothing on labelling yet
	small = [server.insert_message(mailbox, raw(n)) for n in range(3)]
	server.reset_stats(mailbox)
	enqueue_sync(account)
	frappe.db.commit()
	run_worker()
	assert sorted(pending()) == sorted(small)
	assert labelled() == set()
	assert set(server.stats(mailbox)["by_method"]) == {"history.list", "messages.get"}

	# a sweep within the delay: one history.list, nothing labelled
	server.reset_stats(mailbox)
	assert poll_accounts([account]) == {account: "idle"}
	assert server.stats(mailbox)["by_method"] == {"history.list": 1}
	assert len(pending()) == 3

	# once the oldest has waited the delay: fewer than 10 -> messages.modify each (5 units, not 50); one that
	# Gmail refuses for good (here 404, as for mail deleted since the last history.list) is not retried
	backdate()
	server.reset_stats(mailbox)
	server.inject_fault(f"/messages/{small[0]}/modify", 404, reason="notFound", email=mailbox)
	assert poll_accounts([account]) == {account: "labelled"}
	assert server.stats(mailbox)["by_method"] == {"history.list": 1, "messages.modify": 3}
	assert pending() == [] and labelled() == set(small[1:])
	server.modify_message(mailbox, small[0], add_label_ids=[label_id])  # as if it had been labelled

	# 12 more, one deleted in Gmail before it was labelled: one messages.batchModify for the 11 others
	more = [server.insert_message(mailbox, raw(n)) for n in range(10, 22)]
	enqueue_sync(account)
	frappe.db.commit()
	run_worker()  # the labelAdded history of the first batch comes in too: the desk shows the label
	assert len(pending()) == 12
	assert all(label_id in (frappe.db.get_value("Communication", {"atlas_mailbox": account, "atlas_provider_message_id": m},
												"atlas_tags") or "").split(",") for m in small)
	server.delete_message(mailbox, more[0])
	enqueue_sync(account)
	frappe.db.commit()
	run_worker()
	backdate()
	server.reset_stats(mailbox)
	assert poll_accounts([account]) == {account: "labelled"}
	assert server.stats(mailbox)["by_method"] == {"history.list": 1, "messages.batchModify": 1}
	assert server.stats(mailbox)["quota_units"] == 2 + 50
	assert pending() == [] and labelled() == set(small) | set(more[1:])
	assert frappe.get_all("Sync Job", filters={"reference_name": account, "status": ["!=", "succeeded"]}) == []
