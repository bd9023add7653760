"""Long work shows progress (atlas_integrations/progress.py): a real initial sync of a few hundred messages,
a mailbox erase, a matching index rebuild and Xero's "push existing invoices" each report "done of total",
the rate and the time left on their Sync Job, and as the realtime event ``atlas_progress`` (observed on
Redis pub/sub channel "events", where Frappe's realtime server reads it) sent only to the users who may
see it: a mailbox's readers for its sync, the admins for admin actions, one room per user."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from tests.realsite.conftest import TEST_PASSWORD, Accounts, ensure_user, login, run_worker, start_worker
from tests.realsite.xero_fixtures import xero  # noqa: F401 - the fixture (the local Xero server)
from tests.realsite.xero_fixtures import connected  # noqa: F401 - the fixture (a connected Company)

OWNER = "atlas-progress-owner@atlas-test.example"  # a dispatcher whose personal mailbox syncs
OTHER = "atlas-progress-other@atlas-test.example"  # another dispatcher: reads shared mailboxes, not OWNER's
EVENT = "atlas_progress"


class Events:
	"""Every ``atlas_progress`` event published on Redis channel "events" for this site while the block
	runs: ``items`` = ``[(seconds since start, room, message)]``."""

	def __init__(self, frappe, where=lambda m: True):
		import redis

		self.site = frappe.local.site
		self.where = where
		self.items: list[tuple[float, str, dict]] = []
		self.pubsub = redis.Redis.from_url(frappe.conf.redis_queue).pubsub()
		self.done = threading.Event()
		self.started = time.monotonic()

	def __enter__(self) -> Events:
		self.pubsub.subscribe("events")
		while self.pubsub.get_message(timeout=1):  # the subscription's confirmation
			pass
		self.thread = threading.Thread(target=self._listen, daemon=True)
		self.thread.start()
		return self

	def _listen(self) -> None:
		while not self.done.is_set():
			item = self.pubsub.get_message(timeout=0.2)
			if item and item.get("type") == "message":
				event = json.loads(item["data"])
				if event.get("event") == EVENT and event.get("namespace") == self.site and self.where(event["message"]):
					self.items.append((time.monotonic() - self.started, event["room"], event["message"]))

	def wait_for(self, predicate, timeout: float = 20) -> None:
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline and not any(predicate(m) for _, _, m in self.items):
			time.sleep(0.1)

	def __exit__(self, *exc) -> None:
		self.done.set()
		self.thread.join(timeout=5)
		self.pubsub.close()

	def rooms(self) -> set[str]:
		return {room for _, room, _ in self.items}

	def seen_by(self, user: str) -> list[tuple[float, dict]]:
		"""What one user's room got, in order."""
		return [(t, m) for t, room, m in self.items if room == f"user:{user}"]


@pytest.fixture
def fast_progress(site):
	"""Site config ``atlas_progress_interval`` = 1 ms for one test (every chunk's event goes out, however
	fast; the workers read it at start), back to the default (1.5 s) afterwards."""
	from frappe.installer import update_site_config

	update_site_config("atlas_progress_interval", 0.001)
	site.local.conf.atlas_progress_interval = 0.001
	yield
	update_site_config("atlas_progress_interval", "None")
	site.local.conf.pop("atlas_progress_interval", None)


def _admins(frappe) -> set[str]:
	from atlas_integrations.notify import admin_users

	return set(admin_users())


def _assert_climbs_to(seen: list[tuple[float, dict]], total: int) -> list[dict]:
	"""The events of one room: ``done`` never goes down and ends at ``total``, finished; the last one is
	the job's end. Returns the messages."""
	messages = [m for _, m in seen]
	assert messages, "no progress event"
	dones = [m["done"] for m in messages]
	assert dones == sorted(dones), dones
	last = messages[-1]
	assert (last["status"], last["done"], last["total"], last["eta_seconds"]) == ("succeeded", total, total, 0), last
	return messages


def _assert_rate_and_time_left(messages: list[dict]) -> None:
	"""Every running event with something done has a rate (per minute) and, with a total, the time left
	(seconds) at that rate."""
	for m in messages:
		if m["status"] == "processing" and m["done"] and m["total"]:
			assert m["rate_per_minute"] > 0, m
			left = (m["total"] - m["done"]) * 60 / m["rate_per_minute"]
			assert m["eta_seconds"] is not None and abs(m["eta_seconds"] - left) <= 1, m


def test_initial_sync_shows_its_progress_to_the_mailboxs_readers_only(site, google, web):
	"""A personal mailbox of 276 corpus messages, Gmail answering each message 40 ms late (a quota-bound
	sync, ~2 s a batch of 50): its owner and the admins get "done of total" after the batches (at most one
	event every 1.5 s, the default), another dispatcher gets nothing; the total is Gmail's estimate (the
	profile's messagesTotal, then the listing's resultSizeEstimate); while it runs the owner's form API
	gives the current figures and the other dispatcher's gives none; the Sync Job keeps the final counts."""
	frappe = site
	ensure_user(frappe, OWNER, ("Atlas Dispatcher",))
	ensure_user(frappe, OTHER, ("Atlas Dispatcher",))
	helper = Accounts(frappe, google)
	try:
		account, email = helper.connect(user=OWNER, account_type="Personal")
		messages_total = len(google.mailbox(email).messages)
		google.delay_response(r"/users/me/messages/[^/]+$", 0.04, count=10_000, method="GET")
		from atlas_integrations.permissions import mailbox_readers

		readers = set(mailbox_readers(("Gmail Account", account)))
		assert OWNER in readers and OTHER not in readers and _admins(frappe) <= readers
		owner_http, other_http = login(web, OWNER, TEST_PASSWORD), login(web, OTHER, TEST_PASSWORD)
		current = f"{web}/api/method/atlas_integrations.api.progress.current"
		mid_run, refused = None, []
		with Events(frappe, where=lambda m: m.get("reference_name") == account) as events:
			worker = start_worker()
			deadline = time.monotonic() + 120
			while worker.poll() is None and time.monotonic() < deadline:
				answer = owner_http.get(current, params={"doctype": "Gmail Account", "name": account}).json()["message"]
				refused.append(other_http.get(current, params={"doctype": "Gmail Account", "name": account}).json()["message"])
				running = [m for m in answer if m["status"] == "processing" and m["done"] and m["total"]]
				if running and mid_run is None:
					mid_run = running[0]
				time.sleep(0.5)
			out, _ = worker.communicate(timeout=300)
			assert worker.returncode == 0, out[-2000:]
			events.wait_for(lambda m: m["status"] != "processing")
		google.clear_faults()
		frappe.db.rollback()
		job = frappe.get_all("Sync Job", filters={"reference_name": account, "job_type": "Gmail Sync"},
							 fields=["name", "status", "listed", "created", "already_present", "skipped", "failed",
									 "progress_done", "progress_total", "rate_per_minute", "eta_seconds",
									 "progress_stage", "started_at", "finished_at"])
		assert len(job) == 1 and job[0].status == "succeeded", job
		job = job[0]
		listed = job.listed
		assert listed >= 250 and job.created + job.already_present + job.skipped + job.failed == listed
		# who: exactly the mailbox's readers, each in their own room
		assert events.rooms() == {f"user:{u}" for u in readers}, events.rooms()
		assert f"user:{OTHER}" not in events.rooms()
		seen = events.seen_by(OWNER)
		messages = _assert_climbs_to(seen, listed)
		assert all(m["sync_job"] == job.name and m["job_type"] == "Gmail Sync" for m in messages)
		assert all(m["total"] in (None, messages_total, listed) for m in messages), [m["total"] for m in messages]
		running = [m for m in messages if m["status"] == "processing" and m["done"]]
		assert len(running) >= 3, [(m["done"], m["total"]) for m in messages]  # it moved while it ran
		assert len({m["done"] for m in running}) == len(running)
		_assert_rate_and_time_left(messages)
		# at most one event every 1.5 s (the default), besides the final one (always sent)
		gaps = [b[0] - a[0] for a, b in zip(seen[:-2], seen[1:-1], strict=True)]
		assert gaps and min(gaps) >= 1.2, gaps
		# the Sync Job row holds the same figures
		assert (job.progress_done, job.progress_total, job.eta_seconds) == (listed, listed, 0)
		assert job.rate_per_minute > 0 and abs(job.rate_per_minute - messages[-1]["rate_per_minute"]) < 0.2
		# a form opened mid-run restores the figures; another dispatcher learns nothing of the mailbox
		assert mid_run and 0 < mid_run["done"] <= mid_run["total"] and mid_run["rate_per_minute"] > 0, mid_run
		assert refused and all(r == [] for r in refused), refused[:3]
		print(f"\nGmail initial sync: {len(seen)} events to {len(events.rooms())} readers, {listed} messages in "
			  f"{(job.finished_at - job.started_at).total_seconds():.1f} s, {job.rate_per_minute:.0f} a minute; "
			  f"mid-run: {mid_run['done']}/{mid_run['total']}, eta {mid_run['eta_seconds']} s; events (done, total, "
			  f"per minute, s left): {[(m['done'], m['total'], m['rate_per_minute'], m['eta_seconds']) for m in messages]}")
	finally:
		google.clear_faults()
		helper.cleanup()


def test_a_big_incremental_sync_shows_its_progress_a_small_one_records_it_quietly(site, google, fast_progress):
	"""After the initial sync, 120 new messages (more than two batches: minutes of fetching at real quota)
	make the incremental run announce its progress to the readers, climbing to the history's count; one new
	message is done in a moment: its figures are recorded on the Sync Job, no bar flashes for it."""
	from atlas_integrations.gmail import sync
	from atlas_integrations.permissions import mailbox_readers
	from tests.realsite.mail import make_mail

	frappe = site
	helper = Accounts(frappe, google)
	email = helper.mailbox(load_corpus=False)
	try:
		for n in range(3):
			google.insert_message(email, make_mail(f"first{n}@customer.example", email, f"First {n}", "Hello."))
		account, _ = helper.connect(email, account_type="Shared workspace mailbox")
		assert run_worker().returncode == 0
		tag = uuid.uuid4().hex[:6]
		for n in range(120):
			google.insert_message(email, make_mail(f"buyer{n}@customer.example", email, f"Order {tag} {n}", "Please ship."))

		def run_once() -> tuple[Events, dict]:
			with Events(frappe, where=lambda m: m.get("reference_name") == account) as events:
				sync.enqueue_sync(account, trigger="test")
				frappe.db.commit()
				assert run_worker().returncode == 0
				events.wait_for(lambda m: m["status"] != "processing", timeout=3)
			frappe.db.rollback()
			row = frappe.get_all("Sync Job", filters={"reference_name": account, "job_type": "Gmail Sync"},
								 fields=["name", "status", "sync_mode", "created", "progress_done", "progress_total",
										 "eta_seconds"], order_by="creation desc", limit=1)[0]
			assert (row.status, row.sync_mode) == ("succeeded", "incremental"), row
			return events, row

		events, row = run_once()
		assert row.created == 120 and (row.progress_done, row.progress_total, row.eta_seconds) == (120, 120, 0), row
		assert events.rooms() == {f"user:{u}" for u in mailbox_readers(("Gmail Account", account))}, events.rooms()
		got = _assert_climbs_to(events.seen_by("Administrator"), 120)
		assert [m["done"] for m in got if m["status"] == "processing"] == [0, 50, 100, 120], [m["done"] for m in got]
		assert all(m["stage"] == "Importing new messages" for m in got[:-1])
		_assert_rate_and_time_left(got)
		google.insert_message(email, make_mail("late@customer.example", email, f"Late {tag}", "One more."))
		quiet, row = run_once()
		assert row.created == 1 and (row.progress_done, row.progress_total) == (1, 1), row
		assert quiet.items == [], quiet.items
	finally:
		helper.cleanup()


def test_erase_shows_its_progress_to_the_admins_only(site, google, fast_progress):
	"""Erasing a shared mailbox (its readers include every dispatcher) reports rows deleted of the rows
	counted (messages, threads, sent mail), chunk by chunk, to the admins only: an admin action."""
	frappe = site
	ensure_user(frappe, OTHER, ("Atlas Dispatcher",))
	helper = Accounts(frappe, google)
	try:
		account, _ = helper.connect(account_type="Shared workspace mailbox")
		assert run_worker().returncode == 0
		frappe.db.rollback()
		messages = frappe.db.count("Communication", {"atlas_mailbox": account})
		threads = frappe.db.count("Inbox Thread", {"mailbox": account})
		assert messages >= 250 and threads
		from atlas_integrations.inbox import erase
		from atlas_integrations.permissions import mailbox_readers

		assert OTHER in mailbox_readers(("Gmail Account", account))  # a reader of the shared mailbox ...
		address = frappe.db.get_value("Gmail Account", account, "email_address")
		with Events(frappe, where=lambda m: m.get("job_type") == "Mailbox Erase" and m.get("reference_name") == account) as events:
			job = erase.request("Gmail Account", account, address, chunk=40)
			frappe.db.commit()
			assert run_worker().returncode == 0
			events.wait_for(lambda m: m["status"] != "processing")
		frappe.db.rollback()
		admins = _admins(frappe)
		assert events.rooms() == {f"user:{u}" for u in admins}, events.rooms()  # ... but not of the erase
		seen = events.seen_by("Administrator")
		got = _assert_climbs_to(seen, messages + threads)
		running = [m["done"] for m in got if m["status"] == "processing"]
		assert len(set(running)) >= 5, running  # 40 rows a chunk: the bar moved chunk by chunk
		row = frappe.db.get_value("Sync Job", job, ["status", "progress_done", "progress_total", "rate_per_minute",
													"eta_seconds", "listed"], as_dict=True)
		assert (row.status, row.progress_done, row.progress_total, row.eta_seconds, row.listed) == (
			"succeeded", messages + threads, messages + threads, 0, messages)
		assert row.rate_per_minute > 0
		assert not frappe.db.count("Communication", {"atlas_mailbox": account})
		print(f"\nErase: {len(seen)} events, {messages + threads} rows at {row.rate_per_minute:.0f} a minute")
	finally:
		helper.cleanup()


def test_matching_index_rebuild_shows_its_progress_to_the_admins_only(site, web, fast_progress):
	"""A queued rebuild of the matching index (over HTTP, admins only) writes the index in chunks and
	reports rows written of the rows read, to the admins; the index is complete afterwards."""
	frappe = site
	ensure_user(frappe, OTHER, ("Atlas Dispatcher",))
	from atlas_integrations.inbox import match

	# work earlier tests left queued runs first: a Contact it adds would land in the index during the rebuild
	assert run_worker().returncode == 0
	frappe.db.rollback()
	expected = len(match._rows_for())
	assert expected >= 10
	url = f"{web}/api/method/atlas_integrations.api.progress.rebuild_match_index"
	refused = login(web, OTHER, TEST_PASSWORD).post(url)
	assert refused.status_code == 403 and "Only admins can rebuild the matching index" in refused.text
	from atlas_integrations.inbox import jobs as inbox_jobs

	frappe.db.delete("Sync Job", {"job_type": inbox_jobs.MATCH_INDEX_REBUILD, "status": ["in", ["pending", "processing"]]})
	frappe.db.commit()
	chunk = max(1, expected // 6)
	with Events(frappe, where=lambda m: m.get("job_type") == inbox_jobs.MATCH_INDEX_REBUILD) as events:
		job = match.request_rebuild(chunk=chunk)
		frappe.db.commit()
		assert run_worker().returncode == 0
		events.wait_for(lambda m: m["status"] != "processing")
	frappe.db.rollback()
	try:
		assert events.rooms() == {f"user:{u}" for u in _admins(frappe)}, events.rooms()
		seen = events.seen_by("Administrator")
		got = _assert_climbs_to(seen, expected)
		running = [m["done"] for m in got if m["status"] == "processing" and m["done"]]
		assert len(set(running)) >= 5, running
		_assert_rate_and_time_left(got)
		assert got[0]["stage"] == "Reading records" and got[0]["total"] is None
		assert frappe.db.count("Inbox Address") == expected  # one generation: the old rows are gone
		row = frappe.db.get_value("Sync Job", job, ["status", "created", "progress_done", "progress_total"], as_dict=True)
		assert (row.status, row.created, row.progress_done, row.progress_total) == ("succeeded", expected, expected, expected)
		print(f"\nIndex rebuild: {len(seen)} events, {expected} rows in chunks of {chunk}")
	finally:
		frappe.db.delete("Sync Job", {"name": job})
		frappe.db.commit()


def test_push_existing_invoices_shows_its_progress_to_the_admins_only(site, web, connected, fast_progress):  # noqa: F811
	"""55 invoices submitted before "Push Invoices From" moved back: Push existing queues them as the parts
	of one "Xero Push Existing" job; each drain batch (50) reports invoices finished of those queued to the
	admins; the job finishes with the last part, with its counts."""
	from frappe.utils import add_days, today

	from tests.realsite.xero_fixtures import ITEM, _customer

	frappe = site
	ensure_user(frappe, OTHER, ("Atlas Dispatcher",))
	company = connected["company"]
	customer = _customer(frappe, f"Xero Progress {uuid.uuid4().hex[:6]}")
	frappe.db.set_value("Xero Connection", company, "sync_from", today())
	frappe.db.commit()
	names = []
	try:
		for n in range(55):
			si = frappe.get_doc({"doctype": "Sales Invoice", "company": company, "customer": customer,
								 "set_posting_time": 1, "posting_date": add_days(today(), -3),
								 "due_date": add_days(today(), 20), "items": [{"item_code": ITEM, "qty": 1, "rate": 10 + n}]})
			si.set_missing_values()
			si.insert(ignore_permissions=True)
			si.submit()
			names.append(si.name)
		frappe.db.commit()
		assert not frappe.get_all("Sync Job", filters={"reference_name": ["in", names]})  # before the start date
		frappe.db.set_value("Xero Connection", company, "sync_from", add_days(today(), -3))
		frappe.db.commit()
		url = f"{web}/api/method/atlas_integrations.api.xero.push_existing"
		refused = login(web, OTHER, TEST_PASSWORD).post(url, data={"company": company})
		assert refused.status_code == 403
		with Events(frappe, where=lambda m: m.get("job_type") == "Xero Push Existing") as events:
			answer = login(web).post(url, data={"company": company})
			assert answer.status_code == 200, answer.text[:300]
			started = answer.json()["message"]
			assert started["queued"] >= 55 and started["sync_job"]
			assert run_worker().returncode == 0
			events.wait_for(lambda m: m["status"] != "processing")
		frappe.db.rollback()
		queued = started["queued"]
		assert events.rooms() == {f"user:{u}" for u in _admins(frappe)}, events.rooms()
		seen = events.seen_by("Administrator")
		got = _assert_climbs_to(seen, queued)
		assert got[0]["done"] == 0 and got[0]["total"] == queued  # announced when the request committed
		assert any(m["status"] == "processing" and 0 < m["done"] < queued for m in got), [m["done"] for m in got]
		_assert_rate_and_time_left(got)
		assert all(m["reference_doctype"] == "Xero Connection" and m["reference_name"] == company for m in got)
		row = frappe.db.get_value("Sync Job", started["sync_job"], ["status", "listed", "created", "failed",
																	 "progress_done", "progress_total", "eta_seconds"], as_dict=True)
		# (an invoice of another test that Xero refused before is pushed again too, and may fail again)
		assert (row.status, row.listed, row.created + row.failed, row.progress_done, row.progress_total, row.eta_seconds) == (
			"succeeded", queued, queued, queued, queued, 0)
		assert row.created >= 55
		assert {frappe.db.get_value("Sales Invoice", n, "atlas_xero_status") for n in names} == {"Xero Synced"}
		print(f"\nXero push existing: {len(seen)} events, {queued} invoices, "
			  f"{got[-1]['rate_per_minute']:.0f} a minute")
	finally:
		frappe.db.rollback()
		frappe.db.set_value("Xero Connection", company, "sync_from", None)
		frappe.db.commit()
