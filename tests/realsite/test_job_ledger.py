"""The shared job ledger on the real site: job types come from the ``atlas_job_types`` hook, runs execute as
the account's owner, run locks live by heartbeat, the reaper caps attempts, and Gmail Modify jobs of one
account are written in order, one at a time, without freezing labels when they fail."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.realsite.conftest import run_worker, start_worker

OWNER = "atlas-job-owner@atlas-test.example"  # an Atlas Dispatcher who owns a personal mailbox
TRIGGER = "atlas-job-trigger@atlas-test.example"  # another user, who only triggers work
DAY = 24 * 60 * 60


@pytest.fixture(scope="module")
def users(site):
	frappe = site
	for email in (OWNER, TRIGGER):
		if not frappe.db.exists("User", email):
			frappe.get_doc({"doctype": "User", "email": email, "first_name": email.split("@")[0],
							"send_welcome_email": 0, "roles": [{"role": "Atlas Dispatcher"}]}).insert(ignore_permissions=True)
		frappe.db.set_value("User", email, "enabled", 1)
	frappe.db.commit()
	return OWNER, TRIGGER


def _raw(mailbox: str, subject: str) -> bytes:
	return (f"From: Ann <ann@example.org>\r\nTo: {mailbox}\r\nSubject: {subject}\r\n"
			f"Date: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\nbody of {subject}\r\n").encode()


def _synced(accounts, user="Administrator", subject="hello"):
	"""A connected account of a one-message mailbox after its initial sync; (account, mailbox, message id)."""
	mailbox = accounts.mailbox(load_corpus=False)
	mid = accounts.server.insert_message(mailbox, _raw(mailbox, subject), label_ids=["INBOX", "UNREAD"])
	account, _ = accounts.connect(mailbox, user=user)
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	accounts.frappe.db.rollback()
	return account, mailbox, mid


def _backdate_processing(frappe, name, attempts, days=10):
	"""As if a worker had claimed the job ``attempts`` times and died ``days`` ago."""
	frappe.db.sql("""update `tabSync Job` set status='processing', attempts=%s, started_at=now() - interval %s day,
		modified=now() - interval %s day where name=%s""", (attempts, days, days, name))


# -- the registry ----------------------------------------------------------------------------------------
def test_registry_comes_from_the_hook_and_an_unknown_type_is_a_clear_error(site, accounts):
	from atlas_integrations import jobs

	frappe = site
	assert "atlas_integrations.gmail.jobs.JOB_TYPES" in frappe.get_hooks("atlas_job_types")
	registry = jobs.job_types()
	assert {"Gmail Sync", "Gmail Modify"} <= set(registry)
	assert registry["Gmail Sync"].method == "atlas_integrations.gmail.sync.run_sync_job"
	assert registry["Gmail Modify"].release == "atlas_integrations.gmail.labels.release_modify_lock"

	account = accounts.create(accounts.mailbox(load_corpus=False))
	for call in (lambda: jobs.create("Xero Teleport", "Gmail Account", account),
				 lambda: jobs.dispatch("Xero Teleport", "no-such-job", account),
				 lambda: jobs.get_job_type("Xero Teleport")):
		with pytest.raises(jobs.UnknownJobType) as info:
			call()
		message = str(info.value)
		assert "Unknown Sync Job type 'Xero Teleport'" in message and "atlas_job_types" in message
		assert "Gmail Sync" in message  # says what is registered
	frappe.db.rollback()
	assert not frappe.db.exists("Sync Job", {"job_type": "Xero Teleport"})


def test_a_second_registration_of_a_name_is_refused(site, monkeypatch):
	from atlas_integrations import jobs

	frappe = site
	real = frappe.get_hooks

	def hooks(hook=None, *args, **kwargs):
		value = real(hook, *args, **kwargs)
		if hook == jobs.HOOK:
			return [*value, "atlas_integrations.gmail.jobs.JOB_TYPES"]  # the same list registered twice
		return value

	monkeypatch.setattr(frappe, "get_hooks", hooks)
	with pytest.raises(jobs.InvalidJobType, match="registered twice"):
		jobs.job_types()


def test_registered_types_dispatch_to_their_queue_and_run(site, accounts, users):
	"""Gmail Sync and Gmail Modify go through the registry to rq (queue, timeout, one rq job per
	account) and a real worker runs them."""
	from frappe.utils.background_jobs import get_job

	from atlas_integrations import jobs

	frappe = site
	account, mailbox, mid = _synced(accounts)
	job = jobs.create("Gmail Modify", "Gmail Account", account, trigger="test",
					  payload={"account": account, "message_ids": [mid], "addLabelIds": ["STARRED"], "removeLabelIds": []})
	jobs.dispatch("Gmail Modify", job.name, account)
	frappe.db.commit()
	rq_id = jobs.rq_job_id("Gmail Modify", account)
	assert frappe.db.get_value("Sync Job", job.name, "rq_job_id") == rq_id
	queued = get_job(rq_id)
	if queued is not None:  # (a worker of a concurrent test may have run it already)
		assert queued.origin.endswith("short") and queued.timeout == 300
		assert queued.kwargs["kwargs"] == {"sync_job": job.name}
		assert queued.kwargs["method"] == "atlas_integrations.gmail.labels.run_modify_job"
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	done = frappe.get_doc("Sync Job", job.name)
	assert (done.status, done.attempts, done.max_attempts) == ("succeeded", 1, 3), done.last_error
	assert "STARRED" in accounts.server.dump_messages(mailbox)[0]["labelIds"]


# -- who a run is -----------------------------------------------------------------------------------------
def test_worker_runs_execute_as_the_account_owner_never_the_trigger_or_guest(site, users, accounts):
	from atlas_integrations import jobs
	from atlas_integrations.gmail import labels, sync

	frappe = site
	owner, trigger = users
	account, mailbox, mid = _synced(accounts, user=owner)  # queued by Administrator (the OAuth callback)
	[initial] = frappe.get_all("Sync Job", filters={"reference_name": account}, fields=["status", "run_as", "owner"])
	assert (initial.status, initial.run_as, initial.owner) == ("succeeded", owner, "Administrator")
	assert set(frappe.get_all("Communication", filters={"atlas_mailbox": account}, pluck="owner")) == {owner}

	# a label write-back and a sync, both queued by another user
	accounts.server.insert_message(mailbox, _raw(mailbox, "second"))
	frappe.set_user(trigger)
	try:
		change = jobs.create(labels.JOB_TYPE, "Gmail Account", account, trigger="desk", payload={
			"account": account, "message_ids": [mid], "addLabelIds": ["STARRED"], "removeLabelIds": []})
		jobs.dispatch(labels.JOB_TYPE, change.name, account)
		sync.enqueue_sync(account, trigger="manual")
	finally:
		frappe.set_user("Administrator")
	frappe.db.commit()
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	rows = frappe.get_all("Sync Job", filters={"reference_name": account}, fields=["job_type", "status", "run_as", "owner"],
						  order_by="creation asc")
	assert [(r.job_type, r.status, r.run_as) for r in rows[1:]] == [("Gmail Modify", "succeeded", owner),
																	  ("Gmail Sync", "succeeded", owner)]
	assert {r.owner for r in rows[1:]} == {trigger}  # queued by the trigger user, run as the owner

	# the poll sweep polls each account as its owner and gives the caller its session back
	accounts.server.insert_message(mailbox, _raw(mailbox, "third"))
	frappe.db.set_value("Gmail Account", account, "last_processed_at", "2000-01-01 00:00:00")
	frappe.db.commit()
	frappe.set_user(trigger)
	try:
		assert sync.poll_accounts([account]) == {account: "queued"}
		assert frappe.session.user == trigger
	finally:
		frappe.set_user("Administrator")
	frappe.db.commit()
	queued = frappe.get_all("Sync Job", filters={"reference_name": account, "trigger": "scheduler"},
							fields=["name", "owner"])
	assert [q.owner for q in queued] == [owner]  # enqueued inside the sweep, as the owner
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	assert tuple(frappe.db.get_value("Sync Job", queued[0].name, ["status", "run_as"])) == ("succeeded", owner)

	# an account without a user (or with a disabled one) runs as Administrator, never as Guest
	frappe.db.set_value("Gmail Account", account, "user", None)
	accounts.server.insert_message(mailbox, _raw(mailbox, "fourth"))
	frappe.set_user(trigger)
	try:
		last = sync.enqueue_sync(account, trigger="manual")["sync_job"]
	finally:
		frappe.set_user("Administrator")
	frappe.db.commit()
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	assert tuple(frappe.db.get_value("Sync Job", last, ["status", "run_as"])) == ("succeeded", "Administrator")
	assert jobs.resolve_run_as("Guest") == jobs.resolve_run_as(None) == jobs.resolve_run_as("nobody@x.invalid") == "Administrator"
	frappe.db.set_value("User", trigger, "enabled", 0)
	assert jobs.resolve_run_as(trigger) == "Administrator"
	frappe.db.rollback()
	assert jobs.resolve_run_as(owner) == owner


def test_watch_renewal_and_reaper_run_as_defined_users(site, users, accounts, monkeypatch):
	from atlas_integrations import jobs
	from atlas_integrations.gmail import push, sync

	frappe = site
	owner, trigger = users
	mine = accounts.create(accounts.mailbox(load_corpus=False), user=owner)
	admins = accounts.create(accounts.mailbox(load_corpus=False))
	frappe.db.set_value("Gmail Account", admins, "user", None)
	for name in (mine, admins):
		frappe.db.set_value("Gmail Account", name, {"enabled": 1, "status": "ACTIVE"})
	frappe.db.commit()

	seen = {}

	def fake_watch(account, client=None, force=False):
		seen[account] = frappe.session.user
		return {"historyId": "1", "expiration": "0"}

	monkeypatch.setattr(push, "pubsub_topic", lambda: "projects/atlas-test/topics/never-used")
	monkeypatch.setattr(push, "ensure_watch", fake_watch)
	frappe.set_user(trigger)
	try:
		assert push.renew_watches(only=[mine, admins]) == sorted([mine, admins])
		assert frappe.session.user == trigger
	finally:
		frappe.set_user("Administrator")
	assert seen == {mine: owner, admins: "Administrator"}

	# the reaper runs as Administrator, whoever calls it
	job = jobs.create("Gmail Sync", "Gmail Account", mine, payload={"account": mine})
	_backdate_processing(frappe, job.name, attempts=3)
	frappe.db.commit()
	released = []
	real_release = sync.release_lock
	monkeypatch.setattr(sync, "release_lock", lambda account: released.append(frappe.session.user) or real_release(account))
	frappe.set_user(trigger)
	try:
		assert job.name in jobs.reap_stale_jobs(stale_after=5 * DAY)
		assert frappe.session.user == trigger
	finally:
		frappe.set_user("Administrator")
	assert released and set(released) == {"Administrator"}


# -- run locks --------------------------------------------------------------------------------------------
def test_run_lock_lives_by_heartbeat_and_is_taken_only_from_a_dead_run(site, accounts):
	from atlas_integrations import jobs
	from atlas_integrations.gmail import labels, sync

	frappe = site
	assert sync.LOCK_TTL <= 30 and labels.MODIFY_LOCK_TTL <= 30  # was 120 s: a dead run's lock frees soon
	account = accounts.create(accounts.mailbox(load_corpus=False))
	holder = jobs.create("Gmail Sync", "Gmail Account", account, payload={"account": account})
	frappe.db.set_value("Sync Job", holder.name, "status", "processing")  # not committed: nobody else sees it
	key = sync.lock_name(account)
	frappe.cache.delete(key)

	live = jobs.RunLock(key, owner=holder.name, ttl=3)
	assert live.acquire(wait=1)
	try:
		time.sleep(4.5)  # past the TTL: the heartbeat kept it
		assert jobs.lock_holder(key) == holder.name and frappe.cache.pttl(key) > 0
		other = jobs.RunLock(key, owner="someone-else", ttl=3)
		assert not other.acquire(wait=1)  # a live holder keeps it
		assert sync.release_lock(account) is False and frappe.cache.get(key)  # the reaper leaves a live run alone

		live._stop.set()  # the holder dies: no more heartbeat, no release
		live._thread.join()
		started = time.monotonic()
		assert other.acquire(wait=6)  # it expires by itself within the TTL
		assert time.monotonic() - started <= 3.5
		assert jobs.lock_holder(key) == "someone-else"
		other.release()
		assert frappe.cache.get(key) is None

		dead = jobs.RunLock(key, owner=holder.name, ttl=30)
		assert dead.acquire(wait=1)
		dead._stop.set()
		frappe.db.set_value("Sync Job", holder.name, "status", "pending")  # what the reaper does first
		assert sync.release_lock(account) is True and frappe.cache.get(key) is None
	finally:
		live.release()
		frappe.cache.delete(key)
		frappe.db.rollback()


# -- the reaper caps attempts -----------------------------------------------------------------------------
def test_reaper_requeues_below_the_cap_and_fails_at_the_cap(site, accounts):
	from atlas_integrations import jobs
	from atlas_integrations.gmail import labels, store, sync

	frappe = site
	account, _mailbox, mid = _synced(accounts)
	unconnected = accounts.create(accounts.mailbox(load_corpus=False))

	below = jobs.create("Gmail Sync", "Gmail Account", account, payload={"account": account})
	at_cap = jobs.create("Gmail Sync", "Gmail Account", unconnected, payload={"account": unconnected})
	modify = jobs.create("Gmail Modify", "Gmail Account", account, payload={
		"account": account, "message_ids": [mid], "addLabelIds": ["STARRED"], "removeLabelIds": []})
	retired = frappe.get_doc({"doctype": "Sync Job", "job_type": "Retired Type", "reference_doctype": "Gmail Account",
							  "reference_name": unconnected, "status": "pending", "payload": "{}"}).insert(ignore_permissions=True)
	_backdate_processing(frappe, below.name, attempts=1)
	_backdate_processing(frappe, at_cap.name, attempts=3)
	_backdate_processing(frappe, modify.name, attempts=3)
	_backdate_processing(frappe, retired.name, attempts=1)
	frappe.db.set_value("Communication", {"atlas_mailbox_key": store.message_key(account, mid)}, "atlas_labels_pending", 1)
	frappe.db.commit()
	# the dead runs' locks (heartbeat gone, TTL not yet run out)
	for key, owner in ((sync.lock_name(account), below.name), (sync.lock_name(unconnected), at_cap.name),
					   (labels.modify_lock_name(account), modify.name)):
		lock = jobs.RunLock(key, owner=owner, ttl=60)
		assert lock.acquire(wait=1)
		lock._stop.set()

	reaped = jobs.reap_stale_jobs(stale_after=5 * DAY)
	assert {below.name, at_cap.name, modify.name, retired.name} <= set(reaped)
	frappe.db.rollback()

	capped = frappe.get_doc("Sync Job", at_cap.name)
	assert (capped.status, capped.last_error) == ("failed", "worker lost 3 times; not retried automatically")
	assert capped.details == capped.last_error and capped.finished_at
	assert frappe.db.get_value("Gmail Account", unconnected, "last_error") == capped.last_error  # on_give_up
	gave_up = frappe.get_doc("Sync Job", modify.name)
	assert (gave_up.status, gave_up.last_error) == ("failed", "worker lost 3 times; not retried automatically")
	assert frappe.db.get_value("Communication", {"atlas_mailbox_key": store.message_key(account, mid)},
							   "atlas_labels_pending") == 0  # its messages follow Gmail history again
	unknown = frappe.get_doc("Sync Job", retired.name)
	from atlas_integrations.inbox.text import plain

	# last_error is kept as HTML text (provider messages are hostile input): read back its exact text
	assert unknown.status == "failed" and "'Retired Type' is not registered" in plain(unknown.last_error)
	requeued = frappe.get_doc("Sync Job", below.name)
	assert requeued.details == "worker lost; requeued" or requeued.status != "processing"
	assert requeued.rq_job_id == jobs.rq_job_id("Gmail Sync", account)
	for key in (sync.lock_name(account), sync.lock_name(unconnected), labels.modify_lock_name(account)):
		assert frappe.cache.get(key) is None  # what the dead runs held is free

	proc = run_worker()  # the requeued job runs again
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	requeued.reload()
	assert (requeued.status, requeued.attempts) == ("succeeded", 2), requeued.last_error

	# a failed job retried by hand gets a fresh allowance
	jobs.retry(at_cap.name)
	assert frappe.db.get_value("Sync Job", at_cap.name, ["status", "max_attempts"]) == ("pending", 3 + 3)
	frappe.db.rollback()  # (not run: the account is not connected)


# -- Gmail Modify: in order, one at a time, never freezing labels -------------------------------------------
def test_modify_jobs_of_an_account_run_in_order_one_at_a_time(site, accounts):
	from atlas_integrations import jobs
	from atlas_integrations.gmail import labels

	frappe = site
	account, mailbox, _mid = _synced(accounts)
	thread = frappe.db.get_value("Communication", {"atlas_mailbox": account}, "atlas_inbox_thread")
	lock = jobs.RunLock(labels.modify_lock_name(account), owner="test-holder", ttl=30)
	assert lock.acquire(wait=5)  # a write-back of this account is running
	workers = []
	try:
		first = labels.mark_read(thread, read=True)["sync_job"]  # remove UNREAD
		second = labels.modify_thread(thread, add=["STARRED"])["sync_job"]
		third = labels.mark_read(thread, read=False)["sync_job"]  # add UNREAD: the last word
		frappe.db.commit()
		names = [first, second, third]
		rq_ids = {frappe.db.get_value("Sync Job", n, "rq_job_id") for n in names}
		assert rq_ids == {jobs.rq_job_id("Gmail Modify", account)}  # one rq job per account
		# a second rq job for the newest change, bypassing the dedupe: two workers race for the account
		frappe.enqueue("atlas_integrations.gmail.labels.run_modify_job", queue="short", job_id=f"race-{third}",
					   enqueue_after_commit=True, sync_job=third)
		frappe.db.commit()
		workers = [start_worker(), start_worker()]
		time.sleep(4)
		frappe.db.rollback()
		assert [frappe.db.get_value("Sync Job", n, "status") for n in names] == ["pending"] * 3  # waiting
	finally:
		lock.release()
	for worker in workers:
		out, _ = worker.communicate(timeout=300)
		assert worker.returncode == 0, out
	frappe.db.rollback()
	rows = [frappe.get_doc("Sync Job", n) for n in names]
	assert [r.status for r in rows] == ["succeeded"] * 3, [r.last_error for r in rows]
	for earlier, later in itertools.pairwise(rows):
		assert earlier.finished_at <= later.started_at  # one at a time, oldest first
	gmail = set(accounts.server.dump_messages(mailbox)[0]["labelIds"])
	assert {"UNREAD", "STARRED"} <= gmail  # applied in the desk's order
	row = frappe.db.get_value("Communication", {"atlas_mailbox": account},
							  ["atlas_labels_pending", "seen"], as_dict=True)
	assert (row.atlas_labels_pending, row.seen) == (0, 0)


def test_failed_modify_job_does_not_freeze_its_messages_labels(site, accounts):
	from atlas_integrations import jobs
	from atlas_integrations.gmail import labels, store
	from atlas_integrations.gmail.sync import enqueue_sync, poll_accounts

	frappe = site
	server = accounts.server
	account, mailbox, mid = _synced(accounts)
	key = store.message_key(account, mid)
	thread = frappe.db.get_value("Communication", {"atlas_mailbox_key": key}, "atlas_inbox_thread")

	def message():
		frappe.db.rollback()
		return frappe.db.get_value("Communication", {"atlas_mailbox_key": key},
								   ["atlas_labels_pending", "atlas_tags"], as_dict=True)

	# Gmail refuses the write for good
	server.inject_fault(r"batchModify", 400, count=1, reason="invalidArgument", method="POST", email=mailbox)
	failed = labels.modify_thread(thread, add=["STARRED"])["sync_job"]
	frappe.db.commit()
	assert message().atlas_labels_pending == 1
	run_worker()
	frappe.db.rollback()
	job = frappe.get_doc("Sync Job", failed)
	assert job.status == "failed" and "Permanent" in job.last_error
	assert message().atlas_labels_pending == 0  # not frozen

	# later Gmail history updates the message again
	server.modify_message(mailbox, mid, add_label_ids=["IMPORTANT"])
	enqueue_sync(account)
	frappe.db.commit()
	run_worker()
	labels_now = set(message().atlas_tags.split(","))
	assert "IMPORTANT" in labels_now and "STARRED" not in labels_now  # Gmail's truth

	# or the change is retried, and then written
	jobs.retry(failed)
	frappe.db.commit()
	run_worker()
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", failed, "status") == "succeeded"
	assert "STARRED" in server.dump_messages(mailbox)[0]["labelIds"]

	# a failed job leaves the flag of a message another open job still has to write
	frappe.db.set_value("Communication", {"atlas_mailbox_key": key}, "atlas_labels_pending", 1)
	other = jobs.create("Gmail Modify", "Gmail Account", account,
						payload={"account": account, "message_ids": [mid], "addLabelIds": ["STARRED"]})
	assert labels.release_pending_labels(failed) == 0
	assert frappe.db.get_value("Communication", {"atlas_mailbox_key": key}, "atlas_labels_pending") == 1
	frappe.db.set_value("Sync Job", other.name, "status", "failed")
	assert labels.release_pending_labels(failed) == 1
	assert frappe.db.get_value("Communication", {"atlas_mailbox_key": key}, "atlas_labels_pending") == 0
	frappe.db.rollback()

	# a pending write-back whose rq job was lost is handed to a worker by the next poll sweep
	stranded = jobs.create("Gmail Modify", "Gmail Account", account, trigger="desk", payload={
		"account": account, "message_ids": [mid], "addLabelIds": [], "removeLabelIds": ["STARRED"]})
	frappe.db.set_value("Gmail Account", account, "last_processed_at", "2000-01-01 00:00:00")
	frappe.db.commit()
	assert account in poll_accounts([account])  # ("queued": the retried write is new Gmail history)
	frappe.db.commit()
	assert frappe.db.get_value("Sync Job", stranded.name, "rq_job_id") == jobs.rq_job_id("Gmail Modify", account)
	run_worker()
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", stranded.name, "status") == "succeeded"
	assert "STARRED" not in server.dump_messages(mailbox)[0]["labelIds"]


def test_defer_backs_off_exponentially_gives_back_unused_attempts_and_fails_at_the_cap(site):
	from frappe.utils import now_datetime

	from atlas_integrations import jobs

	frappe = site
	assert [jobs.backoff_seconds(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
	assert jobs.backoff_seconds(20) == jobs.BACKOFF_CAP
	job = jobs.create("Xero Invoice", "Company", frappe.defaults.get_global_default("company"),
					  payload={"company": "nowhere", "action": "push"}).name
	frappe.db.set_value("Sync Job", job, "max_attempts", 3)
	frappe.db.commit()
	seen = []
	for attempt in (1, 2):
		assert jobs.claim(job)
		before = now_datetime()
		assert jobs.defer(job, f"timeout {attempt}") == jobs.PENDING
		row = frappe.db.get_value("Sync Job", job, ["attempts", "next_retry_at", "last_error"], as_dict=True)
		seen.append(round((row.next_retry_at - before).total_seconds()))
		assert row.attempts == attempt and f"timeout {attempt}" in row.last_error
	assert seen[0] in (29, 30, 31) and seen[1] in (59, 60, 61)
	# waiting for a rate limit uses no attempt
	assert jobs.claim(job)
	assert jobs.defer(job, "rate limited", retry_after=7, count_attempt=False) == jobs.PENDING
	assert frappe.db.get_value("Sync Job", job, "attempts") == 2
	# the third real failure reaches the cap: failed for good, payload kept, Retry possible
	assert jobs.claim(job)
	assert jobs.defer(job, "timeout 3") == jobs.FAILED
	row = frappe.db.get_value("Sync Job", job, ["status", "next_retry_at", "last_error", "payload"], as_dict=True)
	assert row.status == "failed" and row.next_retry_at is None and "gave up after 3 attempts" in row.last_error
	assert '"action": "push"' in row.payload
	frappe.delete_doc("Sync Job", job, ignore_permissions=True, force=True)
	frappe.db.commit()


def test_a_jobs_company_is_an_indexed_field_filled_from_the_payload_and_by_the_patch(site):
	"""Xero's queue per Company reads Sync Jobs by an indexed ``company`` (not ``payload like``); jobs made
	before the field existed get it from their payload (patch ``fill_sync_job_company``)."""
	from atlas_integrations import jobs
	from atlas_integrations.patches import fill_sync_job_company

	frappe = site
	company = frappe.get_all("Company", pluck="name", order_by="creation asc", limit=1)[0]
	try:
		new = jobs.create("Xero Pull", "Company", company, payload={"company": company, "action": "pull"},
						  trigger="test")
		assert new.company == company
		old = jobs.create("Xero Pull", "Company", company, payload={"company": company, "action": "pull"},
						  trigger="test")
		odd = jobs.create("Xero Pull", "Company", company, payload={"company": ["not", "a", "name"]},
						  trigger="test")
		plain = jobs.create("Match Index Rebuild", "DocType", "Inbox Address", payload={}, trigger="test")
		assert not plain.company
		frappe.db.sql("update `tabSync Job` set company=null where name in %s", ((old.name, odd.name),))
		fill_sync_job_company.execute()
		fill_sync_job_company.execute()  # idempotent
		got = dict(frappe.db.sql("select name, company from `tabSync Job` where name in %s",
								 ((new.name, old.name, odd.name, plain.name),)))
		assert got == {new.name: company, old.name: company, odd.name: None, plain.name: None}
		assert frappe.db.sql("show index from `tabSync Job` where Column_name = 'company'")
		plan = frappe.db.sql("explain select name from `tabSync Job` where company = %s and status = 'pending'",
							 company, as_dict=True)
		assert any("company" in (row.get("possible_keys") or "") for row in plan), plan
	finally:
		frappe.db.rollback()
