"""Benchmark: freshness — a message inserted into the (local) Gmail mailbox -> its Communication, under
its Inbox Thread, visible in the site. p50/p95/max over N messages with push, and with polling only.
Targets (product issue): push p95 <= 10 s, poll p95 <= 60 s. Also prints Gmail quota units spent per
imported message in each phase, including the processing label, which is applied in batches after a delay
(Atlas Settings; the phase waits for it, which adds up to that delay to the run).

Everything is real except Google: the local Gmail-compatible server runs in this process, the site's own
web server (``frappe serve``) receives the Pub/Sub pushes over HTTP (OIDC bearer tokens verified against
the server's certs endpoint), ONE long-running rq worker does all the work, and the minute cron is
simulated by calling the real scheduler hook ``atlas_integrations.gmail.sync.enqueue_due_accounts()`` at
every wall-clock minute boundary (what Frappe's scheduler does for the ``* * * * *`` cron event; the real
scheduler would call it from an rq job, one queue hop later).

Push phase: an account connected with a Pub/Sub topic configured (so its initial sync starts a watch),
the server delivering pushes to the site; messages inserted one every 0.5-1 s. The minute cron keeps
running as in production (polling is the fallback behind push; ``--no-poll-fallback`` turns it off) and
each stored message is attributed to the Sync Job run that stored it (trigger push | scheduler).
Poll phase: a second account, connected first (before any topic is configured, so it has no watch), with
the topic cleared and the server's push switched off; once the cron has polled it at least once (steady
state: the minute after a connect is not due), messages are inserted at random times over
``--poll-minutes`` minutes. Per tick the report shows whether the account was due and what its run did.

    scripts/run-in-bench.sh bench/freshness.py                      # both phases, 100 messages each
    scripts/run-in-bench.sh bench/freshness.py --phase push --messages 50
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("ATLAS_CORPUS", ROOT.parent / "shared" / "corpus"))
CLIENT_ID, CLIENT_SECRET = "atlas-bench.apps.googleusercontent.com", "atlas-bench-secret"
PUSH_PATH = "/api/method/atlas_integrations.api.push.gmail"
TOPIC = "projects/atlas-bench/topics/gmail-freshness"
PUSH_SA = "gmail-push@atlas-bench.iam.gserviceaccount.com"
CONFIG_KEYS = ("atlas_gmail_api_url", "atlas_google_auth_url", "atlas_google_token_url", "atlas_google_revoke_url",
			   "atlas_google_certs_url", "host_name")
SETTINGS_FIELDS = ("google_client_id", "workspace_state", "poll_interval_minutes", "pubsub_topic", "push_auth_mode",
				   "push_audience", "push_service_account")
TARGETS = {"push": 10.0, "poll": 60.0}
_DROP_HEADERS = re.compile(rb"(?im)^(message-id|in-reply-to|references|subject|date):(?:.*\r?\n[ \t].*)*.*\r?\n")
_SUBJECT = re.compile(rb"(?im)^subject:((?:.*\r?\n[ \t].*)*.*)$")


# -- messages -----------------------------------------------------------------------------------------------
def make_messages(n: int, phase: str, mailbox: str, source: str, rng: random.Random) -> list[tuple[str, bytes]]:
	"""``n`` (subject tag, raw) pairs: corpus messages with a fresh Message-ID, a tagged Subject, Date now
	and no In-Reply-To/References (each its own thread); or small synthetic ones."""
	raws = [Path(p).read_bytes() for p in sorted(glob.glob(str(CORPUS / "**" / "*.eml"), recursive=True))]
	if source == "synthetic" or not raws:
		raws = []
	out = []
	for i in range(n):
		tag = f"[freshness {phase} {i:03d} {uuid.uuid4().hex[:6]}]"
		msgid = f"<freshness-{phase}-{i}-{uuid.uuid4().hex}@atlas-bench.example>"
		date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
		if raws:
			raw = rng.choice(raws)
			sep = re.search(rb"\r?\n\r?\n", raw)
			head, body = (raw[: sep.end()], raw[sep.end():]) if sep else (raw + b"\n\n", b"")
			eol = b"\r\n" if b"\r\n" in head[:200] else b"\n"
			m = _SUBJECT.search(head)
			old = b" ".join(m.group(1).split())[:120] if m else b""
			head = _DROP_HEADERS.sub(b"", head)
			new = eol.join([b"Message-ID: " + msgid.encode(), b"Date: " + date.encode(),
							b"Subject: " + tag.encode() + (b" " + old if old else b"")]) + eol
			out.append((tag, new + head + body))
		else:
			out.append((tag, (f"From: Carol Customer <carol@customer.example>\r\nTo: {mailbox}\r\nSubject: {tag} "
							  f"please call back\r\nMessage-ID: {msgid}\r\nDate: {date}\r\n"
							  "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease call me back.\r\n").encode()))
	return out


def percentile(values: list[float], q: float) -> float:
	"""Linear interpolation between closest ranks (numpy's default); inf values sort last."""
	xs = sorted(values)
	if not xs:
		return float("nan")
	pos = (len(xs) - 1) * q / 100.0
	lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
	if xs[hi] == float("inf"):
		return float("inf") if pos > lo or xs[lo] == float("inf") else xs[lo]
	return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def fmt_s(x: float) -> str:
	return "never" if x == float("inf") else f"{x:6.1f} s"


# -- the simulated minute cron --------------------------------------------------------------------------------
class MinuteCron(threading.Thread):
	"""Calls the real scheduler hook ``enqueue_due_accounts`` at every wall-clock minute boundary (own
	frappe context in this thread) and records, per tick, which of ``watched`` accounts were due and what
	their poll sweep (rq job) answered."""

	def __init__(self, site: str, watched: list[str]):
		super().__init__(name="minute-cron", daemon=True)
		self.site = site
		self.watched = watched
		self.stop_event = threading.Event()
		self.ticks: list[dict] = []
		self.errors: list[str] = []

	def stop(self):
		self.stop_event.set()
		if self.is_alive():
			self.join(timeout=60)

	def ticks_between(self, start: float, end: float) -> list[dict]:
		return [t for t in list(self.ticks) if start <= t["at"] <= end]

	def run(self):
		import frappe

		try:
			frappe.init(site=self.site, sites_path=".")
			frappe.connect()
			frappe.set_user("Administrator")
			from frappe.utils.background_jobs import get_job

			from atlas_integrations.gmail.sync import enqueue_due_accounts

			while True:
				now = time.time()
				if self.stop_event.wait((int(now // 60) + 1) * 60 - now + 0.01):
					break
				tick = {"at": time.time(), "due": [], "sweep": None, "outcome": {}, "error": None, "last_processed": {}}
				try:
					frappe.db.rollback()
					for name in list(self.watched):
						tick["last_processed"][name] = frappe.db.get_value("Gmail Account", name, "last_processed_at")
					tick["due"] = enqueue_due_accounts()
				except Exception as exc:  # noqa: BLE001 - recorded and reported
					tick["error"] = f"{type(exc).__name__}: {exc}"
					frappe.db.rollback()
				tick["hook_ms"] = (time.time() - tick["at"]) * 1000
				self.ticks.append(tick)
				ours = [a for a in tick["due"] if a in self.watched]
				if not ours:
					continue
				# the sweep of our chunk (up to 200 accounts per sweep; the chunk's first account names the job)
				first = tick["due"][(tick["due"].index(ours[0]) // 200) * 200]
				job_id = f"atlas::gmail-poll::{first}"  # get_job adds the site prefix
				deadline = time.time() + 40
				while time.time() < deadline and not self.stop_event.is_set():
					job = get_job(job_id)
					status = job.get_status() if job else None
					if status in ("finished", "failed", "stopped", "canceled"):
						tick["sweep"] = status
						result = job.return_value() if hasattr(job, "return_value") else job.result
						tick["outcome"] = {a: o for a, o in (result or {}).items() if a in self.watched}
						tick["sweep_done"] = time.time()
						break
					if job is None and time.time() - tick["at"] > 5:
						tick["sweep"] = "not queued"
						break
					time.sleep(0.1)
				else:
					tick["sweep"] = tick["sweep"] or "unfinished"
		except Exception as exc:  # noqa: BLE001
			self.errors.append(f"{type(exc).__name__}: {exc}")
		finally:
			try:
				frappe.destroy()
			except Exception:  # noqa: BLE001
				pass


# -- the benchmark ----------------------------------------------------------------------------------------------
class Bench:
	def __init__(self, args):
		import frappe

		self.frappe = frappe
		self.args = args
		self.rng = random.Random(args.seed)
		self.procs: list[subprocess.Popen] = []
		self.web = None
		self.worker = None
		self.notes: list[str] = []

	# processes
	def start_web(self):
		from atlas_integrations.testing.site_web import start_site_web

		log = open("../logs/atlas-freshness-web.log", "w")
		url, self.web = start_site_web(self.args.site, log=log)
		self.procs.append(self.web)
		return url

	def start_worker(self):
		log = open("../logs/atlas-freshness-worker.log", "w")
		self.worker = subprocess.Popen(
			[sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", self.args.site, "worker",
			 "--queue", "long,default,short"], stdout=log, stderr=subprocess.STDOUT)
		self.procs.append(self.worker)

	def stop_processes(self):
		for proc in reversed(self.procs):
			if proc.poll() is None:
				proc.terminate()
		for proc in reversed(self.procs):
			try:
				proc.wait(timeout=30)
			except subprocess.TimeoutExpired:
				proc.kill()
				proc.wait(timeout=10)
		self.procs.clear()

	# helpers
	def set_settings(self, **values):
		frappe = self.frappe
		frappe.db.rollback()
		settings = frappe.get_single("Atlas Settings")
		settings.update(values)
		settings.save(ignore_permissions=True)
		frappe.db.commit()

	def connect_account(self, helper, mailbox: str, want_watch: bool, timeout: float = 90) -> str:
		"""Real OAuth flow; wait until the initial sync (empty mailbox) succeeded and the account is ACTIVE
		with a cursor (and a watch when ``want_watch``)."""
		frappe = self.frappe
		from atlas_integrations.gmail import oauth

		account = helper.create(mailbox, account_type="Shared workspace mailbox")
		query = helper.authorize(account, mailbox)
		oauth.complete(query["state"], code=query["code"])  # enqueues the initial sync
		frappe.db.commit()
		deadline = time.monotonic() + timeout
		while True:
			frappe.db.rollback()
			row = frappe.db.get_value("Gmail Account", account, ["status", "history_id", "watch_expiration"], as_dict=True)
			jobs = frappe.get_all("Sync Job", filters={"reference_name": account}, fields=["status", "last_error"])
			if jobs and all(j.status == "succeeded" for j in jobs) and row.status == "ACTIVE" and row.history_id:
				break
			if any(j.status == "failed" for j in jobs):
				raise RuntimeError(f"initial sync of {mailbox} failed: {[j.last_error for j in jobs]}")
			if time.monotonic() > deadline:
				raise RuntimeError(f"initial sync of {mailbox} did not finish in {timeout:.0f} s: {row}, {jobs}")
			time.sleep(0.2)
		watch = self.server.watch_of(mailbox)
		if want_watch and not (row.watch_expiration and watch and watch["topicName"] == TOPIC):
			raise RuntimeError(f"no push watch after the initial sync: watch_expiration={row.watch_expiration}, "
							   f"server watch={watch}")
		if not want_watch and (row.watch_expiration or watch):
			raise RuntimeError(f"the polling-only account has a watch ({row.watch_expiration}, {watch})")
		return account

	def wait_quiet(self, account: str, timeout: float = 30) -> bool:
		"""Until no open Sync Job of the account and empty queues, stable for 2 s."""
		frappe = self.frappe
		from frappe.utils.background_jobs import get_queue

		deadline = time.monotonic() + timeout
		quiet_since = None
		while time.monotonic() < deadline:
			frappe.db.rollback()
			busy = frappe.db.count("Sync Job", {"reference_name": account, "status": ["in", ["pending", "processing"]]})
			queued = sum(len(get_queue(q)) for q in ("long", "default", "short"))
			if busy or queued:
				quiet_since = None
			elif quiet_since is None:
				quiet_since = time.monotonic()
			elif time.monotonic() - quiet_since >= 2:
				return True
			time.sleep(0.2)
		return False

	def wait_labelled(self, account: str, cron: MinuteCron | None) -> dict:
		"""Stored messages get Gmail's processing label in batches (Atlas Settings processing_label_delay):
		wait until the minute cron has applied it to all of the phase's messages, and until the run that
		the resulting labelAdded history causes is over, so the phase's quota includes both."""
		frappe = self.frappe
		from atlas_integrations.gmail.labels import processing_label_debt
		from atlas_integrations.settings import processing_label_delay

		def waiting() -> int:
			frappe.db.rollback()
			return processing_label_debt([account]).get(account, (0, None))[0]

		start, first = time.time(), waiting()
		out = {"waiting": first, "seconds": 0.0, "left": first}
		if not first or cron is None or not cron.is_alive():
			return out
		print(f"  [labels] {first} stored message(s) wait for the processing label (batch delay "
			  f"{processing_label_delay()} s); waiting for the cron to apply it", flush=True)
		deadline = start + processing_label_delay() + 150
		while time.time() < deadline and waiting():
			time.sleep(1)
		out["left"], done = waiting(), time.time()
		out["seconds"] = done - start
		if not out["left"]:  # the next tick sees our own labelAdded history and runs once
			while time.time() < done + 75 and not any(t["at"] > done and t.get("sweep_done") for t in cron.ticks):
				time.sleep(0.5)
			self.wait_quiet(account)
		return out

	# one phase
	def run_phase(self, phase: str, account: str, mailbox: str, schedule: list[float], tail: float,
				  cron: MinuteCron | None) -> dict:
		frappe = self.frappe
		server = self.server
		messages = make_messages(len(schedule), phase, mailbox, self.args.source, self.rng)
		inserted: dict[str, float] = {}  # Gmail message id -> wall time of the insert
		tags: dict[str, str] = {}
		lock = threading.Lock()
		done_inserting = threading.Event()
		insert_errors: list[str] = []

		def inserter():
			start = time.time()
			try:
				for offset, (tag, raw) in zip(schedule, messages):
					delay = start + offset - time.time()
					if delay > 0:
						time.sleep(delay)
					t = time.time()
					mid = server.insert_message(mailbox, raw)
					with lock:
						inserted[mid] = t
						tags[mid] = tag
			except Exception as exc:  # noqa: BLE001
				insert_errors.append(f"{type(exc).__name__}: {exc}")
			finally:
				done_inserting.set()

		server.reset_stats(mailbox)
		server.clear_push_deliveries()
		phase_start_dt = frappe.utils.now_datetime() - timedelta(seconds=1)
		started = time.time()
		thread = threading.Thread(target=inserter, name=f"inserter-{phase}", daemon=True)
		thread.start()
		seen: dict[str, dict] = {}
		last_report = time.time()
		deadline = None
		delivery_seen: list[float] = []  # when each finished push delivery was first observed
		while True:
			with lock:
				pending = [m for m in inserted if m not in seen]
			now = time.time()
			for _ in range(len(server.push_deliveries(mailbox)) - len(delivery_seen)):
				delivery_seen.append(now)
			if pending:
				frappe.db.rollback()
				rows = frappe.db.sql(
					"""select c.atlas_provider_message_id as mid, c.creation, c.atlas_inbox_thread as thread
					from `tabCommunication` c join `tabInbox Thread` t on t.name = c.atlas_inbox_thread
					where c.atlas_mailbox = %(account)s and c.atlas_provider_message_id in %(ids)s""",
					{"account": account, "ids": pending}, as_dict=True)
				seen_at = time.time()
				for r in rows:
					if r.mid not in seen:
						seen[r.mid] = {"at": seen_at, "creation": r.creation, "thread": r.thread}
			if done_inserting.is_set():
				if deadline is None:
					deadline = time.time() + tail
					print(f"  [{phase}] all {len(inserted)} inserted; waiting up to {tail:.0f} s for the rest", flush=True)
				with lock:
					all_seen = len(seen) == len(inserted)
				if all_seen or time.time() > deadline:
					break
			if now - last_report >= 15:
				last_report = now
				print(f"  [{phase}] {now - started:5.0f} s: {len(inserted)}/{len(schedule)} inserted, "
					  f"{len(seen)} visible", flush=True)
			time.sleep(0.2)
		visible_wall = time.time()
		quiet = self.wait_quiet(account)
		labelled = self.wait_labelled(account, cron)
		stats = server.stats(mailbox)
		deliveries = server.push_deliveries(mailbox)
		frappe.db.rollback()
		jobs = frappe.get_all("Sync Job", filters={"reference_name": account, "creation": [">=", phase_start_dt]},
							  fields=["name", "trigger", "status", "creation", "started_at", "finished_at", "created",
									  "listed", "api_calls", "last_error", "sync_mode", "details"], order_by="creation asc")
		# naive system-time-zone datetimes (Frappe) -> epoch seconds
		skew = time.time() - frappe.utils.now_datetime().timestamp()
		for j in jobs:
			for f in ("creation", "started_at", "finished_at"):
				j[f + "_ts"] = j[f].timestamp() + skew if j[f] else None
			m = re.search(r"historyId (\d+) -> (\d+)", j.details or "")
			j["cursor"] = (int(m.group(1)), int(m.group(2))) if m else None
		for i, d in enumerate(deliveries):
			d["seen_at"] = delivery_seen[i] if i < len(delivery_seen) else None
		added_hid = {}  # Gmail message id -> historyId of its messagesAdded record
		for rec in server.mailbox(mailbox).history:
			for item in rec.get("messagesAdded") or []:
				added_hid[item["message"]["id"]] = rec["id"]
		fresh = {m: (seen[m]["at"] - t if m in seen else float("inf")) for m, t in inserted.items()}
		# which run stored each message (one worker: runs do not overlap)
		stored_by: dict[str, int] = {}
		unattributed = 0
		for m, s in seen.items():
			job = next((j for j in jobs if j.started_at and j.started_at <= s["creation"]
						and (j.finished_at is None or s["creation"] <= j.finished_at)), None)
			if job:
				stored_by[job.trigger] = stored_by.get(job.trigger, 0) + 1
			else:
				unattributed += 1
		return {
			"phase": phase, "inserted": len(inserted), "planned": len(schedule), "seen": len(seen),
			"fresh": fresh, "stats": stats, "deliveries": deliveries, "jobs": jobs, "stored_by": stored_by,
			"unattributed": unattributed, "quiet": quiet, "insert_errors": insert_errors,
			"ticks": cron.ticks_between(started, visible_wall) if cron and cron.is_alive() else None,
			"cron_errors": list(cron.errors) if cron else [],
			"duration": visible_wall - started, "account": account, "tags": tags,
			"missing": sorted((m for m in inserted if m not in seen), key=lambda m: inserted[m]),
			"inserted_at": dict(inserted), "started": started, "seen_at": seen,
			"added_hid": added_hid, "skew": skew, "labelled": labelled,
		}

	def report(self, r: dict, cron_note: str) -> bool:
		phase = r["phase"]
		values = list(r["fresh"].values())
		p50, p95 = percentile(values, 50), percentile(values, 95)
		visible = [v for v in values if v != float("inf")]
		target = TARGETS[phase]
		ok = p95 <= target and r["inserted"] == r["planned"]
		units = r["stats"]["quota_units"]
		title = "push (Pub/Sub OIDC push -> web server -> worker)" if phase == "push" else "polling only (minute cron)"
		print()
		print(f"== {phase}: {title} ==")
		print(f"messages               {r['inserted']} inserted, {r['seen']} visible, "
			  f"{r['inserted'] - r['seen']} never appeared (waited until {r['duration']:.0f} s after the first insert)")
		print(f"freshness p50          {fmt_s(p50)}")
		print(f"freshness p95          {fmt_s(p95)}   target <= {target:.0f} s  ->  {'PASS' if ok else 'FAIL'}")
		print(f"freshness max          {fmt_s(max(values) if values else float('nan'))}"
			  + (f" (max of the visible ones {max(visible):.1f} s)" if visible and len(visible) < len(values) else ""))
		if visible:
			print(f"visible ones           min {min(visible):.1f} s, mean {sum(visible) / len(visible):.1f} s")
		print(f"Gmail quota units      {units} ({units / max(1, r['seen']):.1f} per imported message); "
			  f"API calls {r['stats']['api_calls']}; by method {dict(sorted(r['stats']['by_method'].items()))}")
		lab = r["labelled"]
		print(f"processing label       {lab['waiting']} message(s) waited for the batch after the phase; "
			  + (f"applied by the cron {lab['seconds']:.0f} s later (included above)" if lab["waiting"] and not lab["left"]
				 else f"{lab['left']} still unlabelled (their cost is NOT included above)" if lab["left"] else "none left"))
		triggers: dict[str, int] = {}
		for j in r["jobs"]:
			triggers[j.trigger] = triggers.get(j.trigger, 0) + 1
		statuses: dict[str, int] = {}
		for j in r["jobs"]:
			statuses[j.status] = statuses.get(j.status, 0) + 1
		storing = sum(1 for j in r["jobs"] if j.created)
		print(f"Sync Jobs              {len(r['jobs'])} by trigger {triggers}, by status {statuses}; "
			  f"{storing} of them stored mail")
		print(f"stored by runs of      {r['stored_by'] or '-'}"
			  + (f" (+{r['unattributed']} not inside any run's window)" if r["unattributed"] else ""))
		if phase == "push":
			d = r["deliveries"]
			bad = [x for x in d if x["status"] != 200 or x["attempts"] != 1]
			push_jobs = triggers.get("push", 0)
			print(f"push deliveries        {len(d)} to the site ({len(bad)} not acknowledged on the first attempt"
				  + (f": {[(x['statuses'], x['response'][:80]) for x in bad[:3]]}" if bad else "") + f"); "
				  f"{push_jobs} created a Sync Job, {len(d) - len(bad) - push_jobs} were absorbed by an open one")
		else:
			print(f"push deliveries        {len(r['deliveries'])} (push is off in this phase)")
		if r["ticks"] is not None:
			ticks = r["ticks"]
			ours = [t for t in ticks if r["account"] in t["due"]]
			outcomes: dict[str, int] = {}
			for t in ours:
				o = t["outcome"].get(r["account"]) or t["sweep"] or "?"
				outcomes[o] = outcomes.get(o, 0) + 1
			not_due = len(ticks) - len(ours)
			sweep_s = [t["sweep_done"] - t["at"] for t in ours if t.get("sweep_done")]
			print(f"minute cron            {cron_note}: {len(ticks)} ticks, account due in {len(ours)} "
				  f"(not due {not_due}); sweep outcomes {outcomes or '-'}"
				  + (f"; tick -> sweep finished {min(sweep_s):.1f}-{max(sweep_s):.1f} s" if sweep_s else "")
				  + (f"; hook errors {[t['error'] for t in ticks if t['error']]}" if any(t["error"] for t in ticks) else "")
				  + (f"; cron thread errors {r['cron_errors']}" if r["cron_errors"] else ""))
		else:
			print("minute cron            off in this phase (--no-poll-fallback)")
		failed = [j for j in r["jobs"] if j.status == "failed"]
		if failed:
			print(f"failed Sync Jobs       {[(j.name, j.trigger, (j.last_error or '')[:120]) for j in failed[:3]]}")
		if r["missing"]:
			print(f"never appeared         {[r['tags'][m] for m in r['missing'][:5]]}"
				  f"{' ...' if len(r['missing']) > 5 else ''}")
		if phase == "push":
			late = sorted((m for m, v in r["fresh"].items() if v > target), key=lambda m: r["inserted_at"][m])
			if late:
				print(f"late or missing ({len(late)}), why:")
				for mid in late[:5]:
					print("  " + self.explain_push(r, mid))
		elif r["ticks"]:
			print("cron ticks of the phase:")
			for t in r["ticks"]:
				print("  " + self.explain_tick(r, t))
		if not r["quiet"]:
			print("note                   the account still had open Sync Jobs / queued rq jobs 30 s after the phase")
		if r["insert_errors"]:
			print(f"insert errors          {r['insert_errors']}")
		return ok

	@staticmethod
	def explain_push(r: dict, mid: str) -> str:
		"""Where a late (or never seen) push-phase message waited: the pushes that carried its historyId,
		the run in progress when they arrived, and the run that finally stored it."""
		inf = float("inf")
		st = r["started"]
		hid = r["added_hid"].get(mid)
		out = f"{r['tags'][mid]} inserted +{r['inserted_at'][mid] - st:.1f} s (historyId {hid})"
		carrying = sorted((d for d in r["deliveries"] if hid and d["historyId"] >= hid and d.get("seen_at")),
						  key=lambda d: d["seen_at"])
		if not carrying:
			out += "; no push delivery carried it"
		else:
			first = carrying[0]
			at = first["seen_at"]
			out += (f"; {len(carrying)} pushes carried it, the first answered by ~+{at - st:.1f} s "
					f"(HTTP {first['status']}: {first['response'][:60]})")
			running = [j for j in r["jobs"] if j["started_at_ts"] and j["started_at_ts"] - 0.2 <= at
					   <= (j["finished_at_ts"] or inf) + 0.2]
			for j in running:
				cur = j["cursor"]
				out += (f"; then Sync Job {j.name} ({j.trigger}) was processing (+{j['started_at_ts'] - st:.1f}.."
						f"+{(j['finished_at_ts'] or inf) - st:.1f} s, cursor {cur[0] if cur else '?'} -> "
						f"{cur[1] if cur else '?'}{', i.e. before the message' if cur and cur[1] < hid else ''})")
			later = [j for j in r["jobs"] if j["creation_ts"] > at - 0.2 and j not in running]
			if later:
				j = later[0]
				out += f"; next Sync Job created +{j['creation_ts'] - st:.1f} s by {j.trigger}"
			else:
				out += "; no Sync Job was created after it"
		seen = r["seen_at"].get(mid)
		out += f"; visible +{seen['at'] - st:.1f} s" if seen else "; never visible in the phase"
		return out

	@staticmethod
	def explain_tick(r: dict, t: dict) -> str:
		"""One minute-cron tick of the poll phase: due or not (and why), the sweep, the run it queued."""
		st, acc = r["started"], r["account"]
		lp = t["last_processed"].get(acc)
		since = t["at"] - (lp.timestamp() + r["skew"]) if lp else None
		out = f"+{t['at'] - st:5.1f} s: "
		if acc in t["due"]:
			out += f"due (last processed {since:.1f} s before)" if since is not None else "due"
			out += f", sweep {t['outcome'].get(acc) or t['sweep']}"
			if t.get("sweep_done"):
				out += f" {t['sweep_done'] - t['at']:.1f} s after the tick"
			runs = [j for j in r["jobs"] if j.trigger == "scheduler" and t["at"] <= j["creation_ts"] < t["at"] + 60]
			for j in runs:
				out += (f"; its run stored {j.created} message(s), finished "
						f"{(j['finished_at_ts'] or float('nan')) - t['at']:.1f} s after the tick")
		else:
			out += (f"NOT due (last processed only {since:.1f} s before; due_accounts wants >= 55 s for a 1-minute "
					"interval)" if since is not None else "NOT due")
		return out

	# the whole run
	def run(self) -> int:
		args = self.args
		frappe = self.frappe
		from frappe.installer import update_site_config
		from frappe.utils.password import get_decrypted_password

		sys.path.insert(0, str(ROOT))
		from atlas_integrations.testing.gmail_server import GmailTestServer
		from tests.realsite.conftest import Accounts

		t0 = time.monotonic()
		frappe.init(site=args.site, sites_path=".")
		frappe.connect()
		frappe.set_user("Administrator")
		self.server = server = GmailTestServer().start()
		server.register_client(CLIENT_ID, CLIENT_SECRET)
		previous = {k: frappe.conf.get(k) for k in CONFIG_KEYS}
		settings = frappe.get_single("Atlas Settings")
		saved_settings = {f: settings.get(f) for f in SETTINGS_FIELDS}
		saved_secret = get_decrypted_password("Atlas Settings", "Atlas Settings", "google_client_secret",
											  raise_exception=False)
		# only the benchmark's accounts may be polled (others would hit the local server with unknown tokens)
		others = frappe.get_all("Gmail Account", filters={"enabled": 1, "status": ["in", ["ACTIVE", "SYNCING"]]},
								pluck="name")
		helper = Accounts(frappe, server)
		cron: MinuteCron | None = None
		results = []
		try:
			urls = {"atlas_gmail_api_url": server.url, "atlas_google_auth_url": server.url + "o/oauth2/auth",
					"atlas_google_token_url": server.url + "token", "atlas_google_revoke_url": server.url + "revoke",
					"atlas_google_certs_url": server.url + "oauth2/v1/certs"}
			for key, value in urls.items():
				update_site_config(key, value)
			frappe.local.conf.update(urls)
			if others:
				frappe.db.set_value("Gmail Account", {"name": ["in", others]}, "enabled", 0, update_modified=False)
				frappe.db.commit()
			web = self.start_web()
			endpoint = web + PUSH_PATH
			self.set_settings(google_client_id=CLIENT_ID, google_client_secret=CLIENT_SECRET, workspace_state="Active",
							  poll_interval_minutes=1, pubsub_topic="")
			self.start_worker()
			print(f"local Google server {server.url}; site web server {web} (pid {self.web.pid}); one rq worker "
				  f"(pid {self.worker.pid}, queues long,default,short); minute cron simulated in this process "
				  f"(real hook enqueue_due_accounts at each minute boundary; scheduler process not used)", flush=True)

			cron = MinuteCron(args.site, [])
			poll_account = poll_mailbox = None
			if args.phase in ("poll", "both"):
				# connected first (no topic yet: no watch), so the minute cron has it in its rhythm by the time
				# the poll phase starts
				poll_mailbox = f"fresh-poll-{uuid.uuid4().hex[:8]}@atlas-bench.example"
				server.add_mailbox(poll_mailbox)
				poll_account = self.connect_account(helper, poll_mailbox, want_watch=False)
				poll_connected = time.time()
				cron.watched.append(poll_account)

			if args.phase in ("push", "both"):
				self.set_settings(pubsub_topic=TOPIC, push_auth_mode="OIDC token", push_audience=endpoint,
								  push_service_account=PUSH_SA)
				mailbox = f"fresh-push-{uuid.uuid4().hex[:8]}@atlas-bench.example"
				server.add_mailbox(mailbox)
				account = self.connect_account(helper, mailbox, want_watch=True)
				server.configure_push(endpoint, mode="oidc", audience=endpoint, service_account=PUSH_SA)
				lo, hi = args.push_interval
				schedule, t = [], 0.0
				for _ in range(args.messages):
					schedule.append(t)
					t += self.rng.uniform(lo, hi)
				if not args.no_poll_fallback:
					cron.watched.append(account)
					cron.start()
				print(f"push: account {account} ({mailbox}) ACTIVE with a watch; inserting {args.messages} messages "
					  f"one every {lo}-{hi} s (~{schedule[-1]:.0f} s)", flush=True)
				results.append(("push", self.run_phase("push", account, mailbox, schedule, args.push_tail, cron),
								"on, as in production (polling is push's fallback)"))
				server.configure_push(None)
				self.set_settings(pubsub_topic="")
				frappe.db.set_value("Gmail Account", account, "enabled", 0, update_modified=False)  # not polled later
				frappe.db.commit()
				if account in cron.watched:
					cron.watched.remove(account)

			if args.phase in ("poll", "both"):
				server.configure_push(None)
				self.set_settings(pubsub_topic="")
				frappe.db.rollback()
				row = frappe.db.get_value("Gmail Account", poll_account, ["status", "watch_expiration"], as_dict=True)
				if row.status != "ACTIVE" or row.watch_expiration or server.watch_of(poll_mailbox):
					raise RuntimeError(f"polling-only account not ACTIVE without a watch: {row}, "
									   f"{server.watch_of(poll_mailbox)}")
				if cron.ident is None:  # not started in the push phase (--no-poll-fallback, or --phase poll)
					cron.start()
				# steady state: wait for a tick that polled the account (the first minute after the connect is
				# not due: the initial sync counts as processed)
				waited = time.time()
				while not any(poll_account in t["due"] and t.get("sweep_done") for t in cron.ticks
							  if t["at"] > poll_connected):
					if time.time() - waited > 150 or not cron.is_alive():
						raise RuntimeError(f"the minute cron never polled {poll_account}: ticks {cron.ticks}, "
										   f"errors {cron.errors}")
					time.sleep(0.5)
				span = args.poll_minutes * 60
				schedule = sorted(self.rng.uniform(0, span) for _ in range(args.messages))
				print(f"poll: account {poll_account} ({poll_mailbox}) ACTIVE, no topic, server push off, polled by the "
					  f"cron (waited {time.time() - waited:.0f} s for that); inserting {args.messages} messages at "
					  f"random times over {args.poll_minutes:g} min", flush=True)
				results.append(("poll", self.run_phase("poll", poll_account, poll_mailbox, schedule, args.poll_tail,
													   cron), "simulated (real hook at each minute boundary)"))
			cron.stop()

			summary = []
			all_ok = True
			for phase, r, note in results:
				ok = self.report(r, note)
				all_ok &= ok
				values = list(r["fresh"].values())
				summary.append(f"{phase} p95 {fmt_s(percentile(values, 95)).strip()} (target {TARGETS[phase]:.0f} s) "
							   f"{'PASS' if ok else 'FAIL'}, {r['stats']['quota_units'] / max(1, r['seen']):.1f} units/msg")
			print()
			print(f"SUMMARY: {'; '.join(summary)}; total run {time.monotonic() - t0:.0f} s")
			return 0 if all_ok else 1
		finally:
			if cron is not None:
				cron.stop()
			server.configure_push(None)
			if self.worker is not None and self.worker.poll() is None and helper.names:
				# let queued work of the accounts drain before the worker goes
				for name in helper.names:
					self.wait_quiet(name, timeout=20)
			self.stop_processes()
			if not args.keep:
				helper.cleanup()
			frappe.db.rollback()
			if others:
				frappe.db.set_value("Gmail Account", {"name": ["in", others]}, "enabled", 1, update_modified=False)
				frappe.db.commit()
			for key, value in previous.items():
				update_site_config(key, value or "None")
				frappe.local.conf[key] = value
			settings = frappe.get_single("Atlas Settings")
			settings.update(saved_settings)
			settings.google_client_secret = saved_secret or ""
			settings.save(ignore_permissions=True)
			frappe.db.commit()
			server.stop()


def main() -> int:
	parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
	parser.add_argument("--phase", choices=("push", "poll", "both"), default="both")
	parser.add_argument("--messages", type=int, default=100, help="messages per phase")
	parser.add_argument("--poll-minutes", type=float, default=4.0, help="spread of the poll phase's inserts")
	parser.add_argument("--push-interval", type=lambda s: tuple(float(x) for x in s.split(",")), default=(0.5, 1.0),
						help="seconds between push-phase inserts, 'min,max' (uniform)")
	parser.add_argument("--push-tail", type=float, default=130.0,
						help="seconds to wait after the last push-phase insert (covers the poll fallback: an account "
							 "processed < 55 s before a tick is not due until the tick after)")
	parser.add_argument("--poll-tail", type=float, default=150.0, help="seconds to wait after the last poll-phase insert")
	parser.add_argument("--no-poll-fallback", action="store_true", help="no minute cron during the push phase")
	parser.add_argument("--source", choices=("corpus", "synthetic"), default="corpus")
	parser.add_argument("--seed", type=int, default=7)
	parser.add_argument("--site", default=os.environ.get("ATLAS_SITE", "atlas.localhost"))
	parser.add_argument("--keep", action="store_true", help="keep the accounts' data in the site")
	args = parser.parse_args()
	return Bench(args).run()


if __name__ == "__main__":
	sys.exit(main())
