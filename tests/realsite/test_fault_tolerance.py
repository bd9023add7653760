"""Fault tolerance on real workers: a worker killed mid-run, concurrent incremental runs, rate-limit storms."""

from __future__ import annotations

import signal
import subprocess
import time

from tests.realsite.conftest import BENCH, SITE, SITES_PATH, race_two_runs, run_worker


def test_worker_killed_mid_run_loses_and_duplicates_nothing(site, accounts):
	from atlas_integrations.jobs import reap_stale_jobs

	frappe = site
	account, mailbox = accounts.connect()
	[job] = frappe.get_all("Sync Job", filters={"reference_name": account}, pluck="name")
	worker = subprocess.Popen(
		[str(BENCH / "env" / "bin" / "python"), "-m", "frappe.utils.bench_helper", "frappe", "--site", SITE,
		 "worker", "--queue", "long"],
		cwd=str(SITES_PATH), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
	)
	stored = 0
	deadline = time.monotonic() + 120
	while time.monotonic() < deadline:  # wait until the run has committed part of the mailbox
		frappe.db.rollback()
		stored = frappe.db.count("Communication", {"atlas_mailbox": account})
		if stored >= 50:
			break
		time.sleep(0.05)
	import psutil

	# the worker and the work horse it forked for the job (rq gives the horse its own session), mid-run
	for proc in [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]:
		proc.send_signal(signal.SIGKILL)
	worker.wait()
	frappe.db.rollback()
	assert 50 <= stored < 276, stored
	assert frappe.db.get_value("Sync Job", job, "status") == "processing"  # left behind by the dead worker

	assert job in reap_stale_jobs(stale_after=0)  # the hourly reaper, with no grace period (other runs may be reaped too)
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", job, "status") == "pending"
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	final = frappe.get_doc("Sync Job", job)
	assert final.status == "succeeded", final.last_error
	assert final.attempts == 2
	assert frappe.db.count("Communication", {"atlas_mailbox": account}) == 276
	assert frappe.db.sql("""select count(*) from (select atlas_provider_message_id from `tabCommunication`
		where atlas_mailbox=%s group by atlas_provider_message_id having count(*) > 1) d""", account)[0][0] == 0


def test_concurrent_incremental_runs_create_no_duplicates(site, accounts):
	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	run_worker()  # initial sync of the empty mailbox sets the cursor
	frappe.db.rollback()
	for n in range(120):
		server.insert_message(mailbox, (f"From: c{n}@example.org\r\nTo: {mailbox}\r\nSubject: n{n}\r\n"
										f"Date: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\nbody {n}\r\n").encode())
	names = race_two_runs(frappe, account)
	rows = frappe.get_all("Sync Job", filters={"name": ["in", names]}, fields=["status", "sync_mode", "created", "failed"])
	assert [(r.status, r.sync_mode) for r in rows] == [("succeeded", "incremental")] * 2
	assert sum(r.created for r in rows) == 120 and sum(r.failed for r in rows) == 0
	assert frappe.db.count("Communication", {"atlas_mailbox": account}) == 120


def test_rate_limit_storm_passes_and_persistent_storm_throttles_only_that_account(site, accounts):
	from atlas_integrations.gmail.sync import enqueue_due_accounts

	frappe = site
	server = accounts.server
	account, mailbox = accounts.connect()
	# a storm that passes: 429 with Retry-After and 403 userRateLimitExceeded, then success
	server.inject_fault(r"/messages/[0-9a-f]+$", 429, count=4, reason="rateLimitExceeded", retry_after=1, email=mailbox)
	server.inject_fault(r"/messages/[0-9a-f]+$", 403, count=4, reason="userRateLimitExceeded", email=mailbox)
	run_worker()
	frappe.db.rollback()
	[job] = frappe.get_all("Sync Job", filters={"reference_name": account}, fields=["status", "created", "last_error"])
	assert (job.status, job.created) == ("succeeded", 276), job.last_error

	# a storm that does not pass: the run fails, the account is throttled, others keep syncing
	other, _ = accounts.connect()
	frappe.db.set_value("Gmail Account", account, "history_id", "2")
	frappe.db.commit()
	server.expire_history(mailbox)
	server.inject_fault(r"/history$", 500, count=1, email=mailbox)
	server.inject_fault(r"/profile$", 503, count=100, email=mailbox)
	from atlas_integrations.gmail.sync import enqueue_sync

	enqueue_sync(account)
	frappe.db.commit()
	started = time.monotonic()
	run_worker()
	server.clear_faults()
	frappe.db.rollback()
	failed = frappe.get_all("Sync Job", filters={"reference_name": account, "status": "failed"}, fields=["last_error"])
	assert len(failed) == 1 and "Temporary" in failed[0].last_error
	throttle_until = frappe.db.get_value("Gmail Account", account, "throttle_until")
	assert throttle_until and throttle_until > frappe.utils.now_datetime()
	assert frappe.db.get_value("Sync Job", {"reference_name": other}, "status") == "succeeded"
	assert time.monotonic() - started < 300
	for name in (account, other):
		frappe.db.set_value("Gmail Account", name, "last_processed_at", "2000-01-01 00:00:00")
	queued = enqueue_due_accounts()
	assert other in queued and account not in queued  # throttled: not polled until throttle_until


def test_health_unhealthy_after_three_failed_runs_and_success_rate_over_last_twenty(site, accounts):
	from frappe.utils import add_to_date, now_datetime

	from atlas_integrations import jobs
	from atlas_integrations.gmail.accounts import record_run

	frappe = site
	account, _ = accounts.connect()
	frappe.db.delete("Sync Job", {"reference_name": account})
	base = add_to_date(now_datetime(), hours=-2)

	def ledger(statuses):
		for i, status in enumerate(statuses):
			job = jobs.create("Gmail Sync", "Gmail Account", account, payload={"account": account})
			frappe.db.set_value("Sync Job", job.name, {"status": status,
														"finished_at": add_to_date(base, minutes=len(ledger.seen) + i)})
		ledger.seen.extend(statuses)
	ledger.seen = []

	# 25 runs: 5 old failures (outside the window of 20), then 18 successes, then 2 failures
	ledger(["failed"] * 5 + ["succeeded"] * 18 + ["failed"] * 2)
	record_run(account, succeeded=False, error="x")
	doc = frappe.get_doc("Gmail Account", account)
	assert (doc.health, doc.consecutive_failures) == ("healthy", 2)
	assert doc.success_rate == 90  # 18 of the last 20

	ledger(["failed"])  # a third failure in a row
	record_run(account, succeeded=False, error="boom")
	doc.reload()
	assert (doc.health, doc.consecutive_failures, doc.last_error) == ("unhealthy", 3, "boom")
	assert doc.success_rate == 85

	ledger(["succeeded"])  # one good run heals it
	record_run(account, succeeded=True)
	doc.reload()
	assert (doc.health, doc.consecutive_failures, doc.last_error) == ("healthy", 0, None)
	frappe.db.rollback()
