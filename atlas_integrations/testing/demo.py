"""The main job, end to end on real parts: sync a real mailbox into the demo's own site and leave a live desk.

Run by ``make demo`` (``scripts/demo.sh``) with the bench's Python from ``sites/``, once the demo's processes
run under honcho (``scripts/demo.Procfile``: the site's web server, Frappe's realtime server behind the
desk's front door, an rq worker and the scheduler of the demo site alone, the local Gmail- and
Xero-compatible servers)::

    python -m atlas_integrations.testing.demo --site demo.localhost --corpus ../shared/corpus \
        --desk-url http://127.0.0.1:8000 --gmail-url http://127.0.0.1:8765 --xero-url http://127.0.0.1:8766

It loads the corpus into the local Gmail server (over its control endpoints), configures Atlas Settings,
the endpoint keys and Gmail push, connects the shared workspace mailbox through the real OAuth redirect
flow over HTTP (login, connect, Google consent, callback), lets the resident worker run the initial sync
and prints a summary; then the Smart Inbox, Xero and the rest (see README). Everything stays connected and
running for the desk. ``--mail`` delivers one more corpus message to the mailbox (``make demo-mail``): Gmail
pushes it to the site, the worker syncs it, and the open Smart Inbox page shows it without a reload.
"""

from __future__ import annotations

import argparse
import collections
import email
import email.policy
import glob
import json
import os
import sys
import time
from pathlib import Path

CLIENT_ID = "atlas-demo.apps.googleusercontent.com"
CLIENT_SECRET = "atlas-demo-secret"
PUSH_TOPIC = "projects/atlas-demo/topics/gmail"
PUSH_TOKEN = "atlas-demo-push-token"
PUSH_PATH = "/api/method/atlas_integrations.api.push.gmail"
IDLE_TIMEOUT = 1800  # seconds the demo waits for the resident worker to finish a step


def _mailbox_owner(corpus: str) -> str:
	"""The corpus's most frequent sender: the demo mailbox belongs to them, so their mail is 'sent'."""
	counts = collections.Counter()
	for path in glob.glob(os.path.join(corpus, "**", "*.eml"), recursive=True):
		with open(path, "rb") as f:
			try:
				msg = email.message_from_binary_file(f, policy=email.policy.compat32)
				counts[email.utils.parseaddr(str(msg.get("From", "")))[1].lower()] += 1
			except Exception:
				continue
	counts.pop("", None)
	return counts.most_common(1)[0][0]


def wait_idle(frappe, timeout: float = IDLE_TIMEOUT, quiet: float = 1.0) -> float:
	"""Wait until the demo site's resident worker has nothing left: its rq queues empty and no job running,
	and no Sync Job due (pending with no later retry time, or processing), for ``quiet`` seconds.

	Returns:
		Seconds waited.

	Raises:
		SystemExit: still busy after ``timeout`` seconds (the worker is not running?).
	"""
	from frappe.utils import now_datetime
	from frappe.utils.background_jobs import get_queue_list, get_redis_conn
	from rq import Queue
	from rq.registry import StartedJobRegistry

	started = time.monotonic()
	connection = get_redis_conn()
	names = get_queue_list(build_queue_name=True)
	calm_since = None
	while True:
		frappe.db.rollback()
		busy = any(Queue(n, connection=connection).count or StartedJobRegistry(n, connection=connection).count
				   for n in names)
		busy = busy or bool(frappe.db.sql("""select 1 from `tabSync Job` where status='processing' or
			(status='pending' and (next_retry_at is null or next_retry_at <= %s)) limit 1""", now_datetime()))
		now = time.monotonic()
		if busy:
			calm_since = None
		elif calm_since is None:
			calm_since = now
		elif now - calm_since >= quiet:
			return now - started
		if now - started > timeout:
			raise SystemExit(f"the demo's worker is still busy after {timeout:.0f} s: is `make demo` running it "
							 f"(see .atlas/demo/honcho.log)?")
		time.sleep(0.25)


def _state_file(state_dir: str) -> Path:
	return Path(state_dir) / "state.json"


def main(argv: list[str] | None = None) -> int:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--site", default=os.environ.get("ATLAS_DEMO_SITE", "demo.localhost"))
	parser.add_argument("--corpus", required=True)
	parser.add_argument("--desk-url", required=True, help="the desk's front door (web server + realtime)")
	parser.add_argument("--gmail-url", required=True, help="the local Gmail-compatible server")
	parser.add_argument("--xero-url", required=True, help="the local Xero-compatible server")
	parser.add_argument("--graph-state", help="the local Graph server's JSON line (its --state file)")
	parser.add_argument("--state", default=str(Path(__file__).resolve().parents[2] / ".atlas" / "demo"))
	parser.add_argument("--days", type=int, default=30, help="backfill window (days)")
	parser.add_argument("--mail", action="store_true", help="deliver one more corpus message (make demo-mail)")
	args = parser.parse_args(argv)

	import frappe
	import requests
	from frappe.installer import update_site_config

	from atlas_integrations.testing.remote import RemoteGmail

	corpus = str(Path(args.corpus).resolve())
	gmail = RemoteGmail(args.gmail_url)
	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	if args.mail:
		return deliver_one(frappe, gmail, corpus, args)
	owner = _mailbox_owner(corpus)
	gmail.register_client(CLIENT_ID, CLIENT_SECRET)
	gmail.add_mailbox(owner)
	loaded = gmail.load_eml_dir(owner, corpus, spread_days=min(25, args.days - 1), sent_from=[owner])
	print(f"Local Gmail server {gmail.url}: mailbox {owner} with {len(loaded)} messages from {corpus}")
	site_url = args.desk_url.rstrip("/")
	for key, value in {
		"atlas_gmail_api_url": gmail.url,
		"atlas_google_auth_url": gmail.url + "o/oauth2/auth",
		"atlas_google_token_url": gmail.url + "token",
		"atlas_google_revoke_url": gmail.url + "revoke",
	}.items():
		update_site_config(key, value)
	settings = frappe.get_single("Atlas Settings")
	settings.update({"google_client_id": CLIENT_ID, "google_client_secret": CLIENT_SECRET,
					 "workspace_state": "Active", "default_backfill_days": args.days,
					 # Gmail push through Pub/Sub (the local server delivers it) with the shared-token check
					 "pubsub_topic": PUSH_TOPIC, "push_auth_mode": "Shared token", "push_shared_token": PUSH_TOKEN})
	settings.save(ignore_permissions=True)
	gmail.configure_push(endpoint_url=site_url + PUSH_PATH, mode="token", token=PUSH_TOKEN)
	name = frappe.db.get_value("Gmail Account", {"account_name": "Demo workspace mailbox"})
	if name:  # a previous demo: start from a clean mailbox (the app's own Mailbox Erase)
		from frappe.utils.password import remove_encrypted_password

		from atlas_integrations.inbox import erase

		erase.erase("Gmail Account", name)
		frappe.db.delete("Sync Job", {"reference_name": name})
		remove_encrypted_password("Gmail Account", name, "refresh_token")
		frappe.db.set_value("Gmail Account", name, {"history_id": None, "status": "NOT CONNECTED",
													 "email_address": None, "sync_stage": "Not started"})
	else:
		name = frappe.get_doc({"doctype": "Gmail Account", "account_name": "Demo workspace mailbox",
							   "account_type": "Shared workspace mailbox", "user": "Administrator"}).insert(
			ignore_permissions=True).name
	demo_parties = _seed_parties(frappe, corpus, owner, name)
	frappe.db.commit()
	state = {"owner": owner, "account": name, "corpus": corpus, "desk_url": site_url, "delivered": 0}
	Path(args.state).mkdir(parents=True, exist_ok=True)
	_state_file(args.state).write_text(json.dumps(state, indent=1))

	http = requests.Session()
	admin_password = frappe.conf.get("admin_password") or "admin"
	r = http.post(site_url + "/api/method/login", data={"usr": "Administrator", "pwd": admin_password}, timeout=30)
	r.raise_for_status()
	r = http.post(site_url + "/api/method/atlas_integrations.api.gmail.connect", data={"account": name}, timeout=30)
	r.raise_for_status()
	auth_url = r.json()["message"]["authorization_url"]
	print(f"Consent URL from the site: {auth_url.split('?')[0]}?… (offline access, PKCE)")
	started = time.monotonic()
	r = http.get(auth_url, timeout=60, allow_redirects=True)  # Google consent -> site callback -> desk
	hops = " -> ".join(h.headers.get("Location", "")[:70] for h in r.history)
	print(f"OAuth redirect flow: {hops}")
	frappe.db.rollback()
	account = frappe.get_doc("Gmail Account", name)
	if account.status not in ("SYNCING", "ACTIVE"):
		raise SystemExit(f"connect failed: account status {account.status}; {r.status_code} {r.text[:300]}")
	print(f"Connected {account.email_address}; the initial sync runs on the demo's resident rq worker…")
	wait_idle(frappe)
	elapsed = time.monotonic() - started
	code = _summary(frappe, name, site_url, elapsed, gmail.stats(owner))
	code = _smart_inbox(frappe, gmail, owner, name, site_url, demo_parties) or code
	if args.graph_state:
		code = _outlook(frappe, site_url, args.graph_state) or code
	return _xero(frappe, site_url, args.xero_url) or code


def _outlook(frappe, site_url: str, graph_state: str) -> int:
	"""An Outlook mailbox of the local Graph server (a second slice of the corpus) connected through MSAL's
	real sign-in over HTTP (the site's connect, Microsoft's /authorize, the site's callback, the desk),
	synced by the resident worker; prints its figures. Returns a non-zero code when it did not sync."""
	from frappe.installer import update_site_config

	from atlas_integrations.inbox import erase

	state = json.loads(Path(graph_state).read_text())
	(client_id, secret), = state["clients"].items()
	(address, loaded), = state["mailboxes"].items()
	for key, value in {"atlas_microsoft_login_url": state["authority_host"], "atlas_graph_api_url": state["graph_url"],
					   "atlas_microsoft_ca_bundle": state["ca_path"]}.items():
		update_site_config(key, value)
		frappe.local.conf[key] = value
	settings = frappe.get_single("Atlas Settings")
	settings.update({"microsoft_client_id": client_id, "microsoft_client_secret": secret, "microsoft_tenant": "common"})
	settings.save(ignore_permissions=True)
	name = frappe.db.get_value("Outlook Account", {"account_name": "Demo Outlook mailbox"})
	if name:  # a previous demo: start from a clean mailbox (the app's own Mailbox Erase)
		from atlas_integrations.outlook import accounts

		erase.erase("Outlook Account", name)
		frappe.db.delete("Sync Job", {"reference_name": name})
		accounts.forget_cache(name)
		frappe.db.set_value("Outlook Account", name, {"folder_state": None, "status": "NOT CONNECTED",
													   "email_address": None, "sync_stage": "Not started"})
	else:
		name = frappe.get_doc({"doctype": "Outlook Account", "account_name": "Demo Outlook mailbox",
							   "account_type": "Personal", "user": "Administrator"}).insert(ignore_permissions=True).name
	frappe.db.commit()
	# a session of its own: the Gmail step's desk page gave the first one a CSRF token its POSTs would need
	import requests

	http = requests.Session()
	r = http.post(site_url + "/api/method/login", data={"usr": "Administrator",
														"pwd": frappe.conf.get("admin_password") or "admin"}, timeout=30)
	r.raise_for_status()
	r = http.post(site_url + "/api/method/atlas_integrations.api.outlook.connect", data={"account": name}, timeout=30)
	if r.status_code != 200:
		print(f"Outlook connect refused: HTTP {r.status_code}")
		return 1
	auth_url = r.json()["message"]["authorization_url"]
	print(f"\nOutlook sign-in URL from the site (MSAL): {auth_url.split('?')[0]}?… (authorization code, PKCE)")
	started = time.monotonic()
	# Microsoft's /authorize (HTTPS, the local server's certificate) -> the site's callback -> the desk
	r = http.get(auth_url, timeout=60, allow_redirects=True, verify=state["ca_path"])
	print("Outlook redirect flow: " + " -> ".join(h.headers.get("Location", "")[:70] for h in r.history))
	frappe.db.rollback()
	account = frappe.get_doc("Outlook Account", name)
	if account.status not in ("SYNCING", "ACTIVE"):
		print(f"Outlook connect failed: status {account.status}; {r.status_code}")
		return 1
	wait_idle(frappe)
	elapsed = time.monotonic() - started
	frappe.db.rollback()
	jobs = frappe.get_all("Sync Job", filters={"reference_name": name, "job_type": "Outlook Sync"}, fields=["*"],
						  order_by="creation asc")
	stored = frappe.db.count("Communication", {"atlas_mailbox_type": "Outlook Account", "atlas_mailbox": name})
	threads = frappe.db.count("Inbox Thread", {"mailbox_type": "Outlook Account", "mailbox": name})
	account = frappe.get_doc("Outlook Account", name)
	job = jobs[0] if jobs else None
	print(f"Outlook Account {account.account_name} <{account.email_address}>: {account.status}, health {account.health}; "
		  f"{account.connection}")
	if job:
		print(f"Outlook initial sync  Sync Job {job.name} {job.status}: {stored} of {loaded} messages in {threads} "
			  f"threads, {elapsed:.1f} s; Graph requests {job.api_calls} ({job.api_calls / max(1, stored):.2f} per "
			  f"message, $batch of 20 $value); failed {job.failed}")
	print(f"Smart Inbox           Outlook and Gmail mailboxes side by side: {site_url}/app/smart-inbox")
	replied = _outlook_reply(frappe, name) if job and job.status == "succeeded" else False
	return 0 if job and job.status == "succeeded" and stored == loaded and replied else 1


def _outlook_reply(frappe, account: str) -> bool:
	"""Answer the Outlook mailbox's newest received thread from the Smart Inbox, exactly once: a createReply
	draft committed, then sent; the same request again (a double submit) sends nothing. Proven by asking
	Graph which messages carry the request key."""
	import uuid

	from atlas_integrations.inbox import outbox
	from atlas_integrations.outlook import accounts, send

	thread = frappe.get_all("Inbox Thread", filters={"mailbox_type": "Outlook Account", "mailbox": account},
							fields=["name", "subject", "provider_thread_id"], order_by="last_message_at desc", limit=1)
	if not thread:
		print("Outlook reply: no thread to answer")
		return False
	thread = thread[0]
	key = str(uuid.uuid4())
	body = "<p>Thanks for writing: we have your message and will answer in full by Friday.</p>"
	first = send.reply(thread.name, ["customer@demo-outlook.example"], body, key)
	again = send.reply(thread.name, ["customer@demo-outlook.example"], body, key)  # a double submit
	held = accounts.client_for(account).find_by_property(send.REQUEST_KEY_PROPERTY,
														 outbox.reply_key(frappe.session.user, key))
	sent = [m for m in held if not m.get("isDraft")]
	draft = frappe.db.get_value("Outgoing Mail", first.name, "provider_draft_id")
	ok = first.status == "Sent" and again.name == first.name and len(held) == 1 and len(sent) == 1
	print(f"Reply through Outlook  Outgoing Mail {first.name} {first.status}: createReply draft {(draft or '')[:16]}… "
		  f"committed, then /send; the same request again -> {again.name} (not sent twice); Graph holds "
		  f"{len(sent)} sent message with that request key, in conversation {str(first.provider_thread_id)[:16]}…")
	return ok


def deliver_one(frappe, gmail, corpus: str, args) -> int:
	"""``make demo-mail``: one more corpus message (the next one, with a fresh Message-ID and today's Date)
	into the demo mailbox at the local Gmail server, which pushes the change to the site; prints when the
	site has it (the open Smart Inbox page shows it without a reload). Returns 0 when it arrived."""
	import uuid
	from email.utils import formatdate

	state_file = _state_file(args.state)
	if not state_file.exists():
		raise SystemExit("no demo state: run `make demo` first")
	state = json.loads(state_file.read_text())
	files = sorted(Path(corpus).rglob("*.eml"))
	path = files[state.get("delivered", 0) % len(files)]
	msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
	del msg["Message-ID"], msg["Date"]
	msg["Message-ID"] = f"<demo-mail-{uuid.uuid4().hex}@atlas-demo.example>"
	msg["Date"] = formatdate(localtime=False)
	gmail.insert_message(state["owner"], msg.as_bytes(), label_ids=["INBOX", "UNREAD"])
	state["delivered"] = state.get("delivered", 0) + 1
	state_file.write_text(json.dumps(state, indent=1))
	subject = str(msg.get("Subject") or "(no subject)")
	print(f"Delivered {path.name} ({subject[:60]!r}) to {state['owner']} at the local Gmail server; Gmail pushes it "
		  f"to the site…")
	deadline = time.monotonic() + 120
	key = msg["Message-ID"].strip("<>").lower()
	while time.monotonic() < deadline:
		frappe.db.rollback()
		thread = frappe.db.get_value("Communication", {"atlas_mailbox": state["account"], "message_id": ["like", f"%{key}%"]},
									 "atlas_inbox_thread")
		if thread:
			print(f"Stored in the site as thread {thread}: the Smart Inbox page shows it now, without a reload: "
				  f"{state['desk_url']}/app/smart-inbox?view=shared")
			return 0
		time.sleep(0.5)
	print("Not stored within 120 s: is the demo running (`make demo`)? See .atlas/demo/honcho.log")
	return 1


DEMO_CUSTOMER, DEMO_RULE, DEMO_ROUTE = "Demo Pallets Co", "Demo: quote requests become Tasks", "Demo inbound route"
DEMO_ROUTE_KEY = "demo-route-signing-key"
SENT_ONLY = "(sent only)"  # a thread with no inbound message has no match or category


def _seed_parties(frappe, corpus: str, owner: str, account: str) -> dict:
	"""ERPNext records the Smart Inbox matches the demo mail against: the corpus's most frequent external
	sender as a Contact of a Customer, an Inbox Rule turning quote requests into Tasks, and an Inbound
	Route (idempotent: a re-run reuses them)."""
	from collections import Counter
	from email.utils import parseaddr

	senders = Counter()
	for path in sorted(Path(corpus).rglob("*.eml")):
		head = path.read_bytes().split(b"\n\n", 1)[0].decode("utf-8", "replace")
		for line in head.splitlines():
			if line.lower().startswith("from:"):
				addr = parseaddr(line[5:])[1].lower()
				if "@" in addr and addr != owner:
					senders[addr] += 1
				break
	sender = senders.most_common(1)[0][0]
	if not frappe.db.exists("Customer", DEMO_CUSTOMER):
		frappe.get_doc({"doctype": "Customer", "customer_name": DEMO_CUSTOMER}).insert(ignore_permissions=True)
	contact = frappe.db.get_value("Contact Email", {"email_id": sender, "parenttype": "Contact"}, "parent")
	if not contact:
		contact = frappe.get_doc({"doctype": "Contact", "first_name": "Demo", "last_name": "Buyer",
								  "email_ids": [{"email_id": sender, "is_primary": 1}],
								  "links": [{"link_doctype": "Customer", "link_name": DEMO_CUSTOMER}]}).insert(
			ignore_permissions=True).name
	if not frappe.db.exists("Inbox Rule", DEMO_RULE):  # for the demo mailbox only
		frappe.get_doc({"doctype": "Inbox Rule", "rule_name": DEMO_RULE, "category_is": "Quote request",
						"create_document": "Task", "sequence": 10, "mailbox": account}).insert(ignore_permissions=True)
	else:
		frappe.db.set_value("Inbox Rule", DEMO_RULE, "mailbox", account)
	if not frappe.db.exists("Inbound Route", DEMO_ROUTE):
		frappe.get_doc({"doctype": "Inbound Route", "route_name": DEMO_ROUTE, "inbound_address": "inbound@atlas-demo.example",
						"signing_key": DEMO_ROUTE_KEY, "require_known_sender": 0}).insert(ignore_permissions=True)
	else:
		from atlas_integrations.inbox import erase

		erase.erase("Inbound Route", DEMO_ROUTE)
	return {"sender": sender, "contact": contact}


def _new_mail(to: str, sender: str, subject: str, body: str, headers: dict | None = None) -> bytes:
	import uuid
	from email.message import EmailMessage

	msg = EmailMessage()
	msg["From"], msg["To"], msg["Subject"] = sender, to, subject
	msg["Message-ID"] = f"<demo-{uuid.uuid4().hex}@atlas-demo.example>"
	msg["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
	for k, v in (headers or {}).items():
		msg[k] = v
	msg.set_content(body)
	return msg.as_bytes()


def _smart_inbox(frappe, gmail, owner: str, account: str, site_url: str, parties: dict) -> int:
	"""New mail after the backfill, through the pipeline: a quote request from the known Contact (a rule
	creates a Task), a newsletter, a stranger; and one message through the signed Inbound Route."""
	import requests

	from atlas_integrations.gmail.sync import enqueue_sync
	from atlas_integrations.inbox.inbound import endpoint_url, sign

	outcomes = dict(frappe.db.sql("""select atlas_outcome, count(*) from `tabCommunication`
		where atlas_mailbox=%s and sent_or_received='Received' group by atlas_outcome""", account))
	states = dict(frappe.db.sql("""select match_state, count(*) from `tabInbox Thread` where mailbox=%s
		group by match_state""", account))
	categories = frappe.db.sql("""select category, count(*) n from `tabInbox Thread` where mailbox=%s
		group by category order by n desc""", account)
	linked = frappe.db.sql("""select count(distinct l.parent) from `tabCommunication Link` l join `tabCommunication` c
		on c.name = l.parent where c.atlas_mailbox=%s and l.link_doctype='Customer'""", account)[0][0]
	print("Smart Inbox on the backfill (matched and triaged, no work created):")
	print(f"  outcomes   {', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))}")
	print(f"  matching   {', '.join(f'{k or SENT_ONLY} {v}' for k, v in sorted(states.items(), key=str))}; "
		  f"{linked} messages on Customer {DEMO_CUSTOMER}'s timeline (Contact {parties['contact']})")
	print(f"  categories {', '.join(f'{c or SENT_ONLY} {n}' for c, n in categories)}")
	for raw in (
		_new_mail(owner, f"Demo Buyer <{parties['sender']}>", "Quote for 40 pallets of tiles",
				  "Hello,\n\nCould you send us a quote for 40 pallets of blue tiles by Friday?\n\nThanks"),
		_new_mail(owner, "Shop <news@promo.example>", "Winter sale", "Everything 50% off.",
				  {"List-Unsubscribe": "<mailto:unsubscribe@promo.example>"}),
		_new_mail(owner, "Someone <someone@unknown.example>", "Hello", "Do you repair boilers?"),
	):
		gmail.insert_message(owner, raw, label_ids=["INBOX", "UNREAD"])
	enqueue_sync(account, trigger="manual")  # Gmail also pushes the change; one open sync per mailbox
	frappe.db.commit()
	wait_idle(frappe)
	print("New mail after the backfill, through the pipeline:")
	for t in frappe.get_all("Inbox Thread", filters={"mailbox": account}, order_by="last_message_at desc",
							fields=["subject", "outcome", "outcome_reason", "category", "priority", "party",
									"reference_doctype", "reference_name"], limit=3):
		from atlas_integrations.inbox.text import plain

		work = f" -> {t.reference_doctype} {t.reference_name}" if t.reference_name else ""
		print(f"  {plain(t.subject)[:40]:40}  {t.outcome:15} {t.category} / {t.priority}"
			  f"{' / party ' + t.party if t.party else ''}{work}")
		print(f"  {'':40}  why: {plain(t.outcome_reason)[:90]}")
	body = _new_mail("inbound@atlas-demo.example", "Walk-in <walkin@customer.example>", "Order: 3 boxes of grout",
					 "Please send 3 boxes of grout to our site.")
	url = endpoint_url(DEMO_ROUTE).replace(frappe.utils.get_url(), site_url)
	r = requests.post(url, data=body, headers={"X-Atlas-Signature": sign(DEMO_ROUTE_KEY, body)}, timeout=30)
	bad = requests.post(url, data=body, headers={"X-Atlas-Signature": sign("wrong-key", body)}, timeout=30)
	wait_idle(frappe)
	route_thread = frappe.get_all("Inbox Thread", filters={"mailbox": DEMO_ROUTE},
								  fields=["outcome", "category", "outcome_reason"], limit=1)
	print(f"Inbound Route '{DEMO_ROUTE}': signed POST -> {r.status_code} {r.json().get('message', {}).get('status')}; "
		  f"forged signature -> {bad.status_code}; outcome "
		  f"{route_thread[0].outcome if route_thread else '?'} ({route_thread[0].category if route_thread else ''})")
	print(f"Review queue: {site_url}/app/inbox-thread?outcome=pending_review")
	replied = _reply(frappe, gmail, owner, account, site_url)
	print("-" * 72)
	return 0 if (r.status_code == 200 and bad.status_code == 401 and route_thread and route_thread[0].outcome
				 and replied) else 1


def _reply(frappe, gmail, owner: str, account: str, site_url: str) -> bool:
	"""Answer the quote request from the Smart Inbox through Gmail, exactly once: the same request twice
	(a double submit) leaves one message in the Gmail thread, threaded by In-Reply-To / References."""
	import base64
	import email
	import email.policy
	import uuid

	from atlas_integrations.gmail import send

	thread = frappe.db.get_value("Inbox Thread", {"mailbox": account, "subject": ["like", "Quote for 40 pallets%"]},
								 ["name", "provider_thread_id"], as_dict=True)
	if not thread:
		print("Reply: no quote-request thread to answer")
		return False
	key = str(uuid.uuid4())
	body = "<p>Thanks for asking: 40 pallets of blue tiles are 12.50 a pallet, delivered Friday.</p>"
	first = send.reply(thread.name, ["buyer@demo-pallets.example"], body, key)
	again = send.reply(thread.name, ["buyer@demo-pallets.example"], body, key)  # a double submit
	in_gmail = []
	for m in gmail.dump_messages(owner):
		if m["threadId"] == thread.provider_thread_id:
			raw = base64.urlsafe_b64decode(m["raw"] + "=" * (-len(m["raw"]) % 4))
			msg = email.message_from_bytes(raw, policy=email.policy.default)
			if msg["Message-ID"] == first.message_id:
				in_gmail.append(msg)
	ok = first.status == "Sent" and again.name == first.name and len(in_gmail) == 1
	print(f"Reply from the Smart Inbox through Gmail: Outgoing Mail {first.name} {first.status}; the same request again "
		  f"-> {again.name} (not sent twice); Gmail holds {len(in_gmail)} message with that Message-ID in threadId "
		  f"{thread.provider_thread_id}, In-Reply-To {in_gmail[0]['In-Reply-To'] if in_gmail else '-'}")
	print(f"Smart Inbox page: {site_url}/app/smart-inbox?view=shared&thread={thread.name}  (workspace: {site_url}/app/atlas-inbox)")
	return ok


XERO_CLIENT_ID, XERO_CLIENT_SECRET = "atlas-demo-xero", "atlas-demo-xero-secret"
XERO_ITEM = "ATLAS-DEMO-SERVICE"


def _xero(frappe, site_url: str, xero_url: str) -> int:
	"""Connect the demo Company's Xero organisation (the local Xero-compatible server) through the real
	OAuth redirect flow, submit three Sales Invoices and let the queue send them; print their Xero states.
	The site stays pointed at the local server afterwards (the desk keeps working)."""
	from atlas_integrations.testing import xero_site
	from atlas_integrations.testing.remote import RemoteXero

	company = frappe.defaults.get_global_default("company")
	server = RemoteXero(xero_url)
	tenant = server.add_tenant("Atlas Demo (Xero)", short_code="!AtDmo", base_currency="GBP")
	server.set_consent(tenants=[tenant])
	xero_site.point_site_at(frappe, server, XERO_CLIENT_ID, XERO_CLIENT_SECRET, site_url)
	if frappe.db.exists("Xero Connection", company):  # a previous demo's connection: connect afresh
		frappe.delete_doc("Xero Connection", company, ignore_permissions=True, force=True)
	if not frappe.db.exists("Item", XERO_ITEM):
		frappe.get_doc({"doctype": "Item", "item_code": XERO_ITEM, "item_name": "Tiling service", "is_stock_item": 0,
						"item_group": "All Item Groups", "stock_uom": "Nos"}).insert(ignore_permissions=True)
	frappe.db.commit()
	status = xero_site.connect(frappe, site_url, company)
	conn = frappe.get_doc("Xero Connection", company)
	print(f"Xero: {company} -> {conn.tenant_name} ({conn.short_code}, {conn.base_currency}): {conn.status} "
		  f"(OAuth with PKCE, callback {status})")
	print(f"  defaults read from the organisation: sales account {conn.default_account_code}, adjustments "
		  f"{conn.adjustment_account_code}, untaxed lines {conn.untaxed_tax_type}")
	tax_account = frappe.db.get_value("Account", {"company": company, "account_type": "Tax", "is_group": 0}, "name")
	rate = next(r for r in server.tax_rates(tenant)
				if r.get("EffectiveRate") and r.get("CanApplyToRevenue", True))
	if tax_account:
		conn.set("tax_map", [{"erpnext_account": tax_account, "xero_tax_type": rate["TaxType"]}])
		conn.save(ignore_permissions=True)
		print(f"  tax mapping: {tax_account} -> Xero TaxType {rate['TaxType']} ({rate['EffectiveRate']:g} %)")
	names = []
	for qty, rate_, discount, taxed in ((2, 120.0, 0, False), (5, 33.33, 10, False), (1, 999.99, 0, True)):
		doc = {"doctype": "Sales Invoice", "company": company, "customer": DEMO_CUSTOMER,
			   "items": [{"item_code": XERO_ITEM, "qty": qty, "rate": rate_}], "discount_amount": discount}
		if taxed and tax_account:
			doc["taxes"] = [{"charge_type": "On Net Total", "account_head": tax_account, "description": "GST",
							 "rate": float(rate["EffectiveRate"])}]
		si = frappe.get_doc(doc)
		si.set_missing_values()
		si.insert(ignore_permissions=True)
		si.submit()
		names.append(si.name)
	from erpnext.accounts.doctype.sales_invoice.sales_invoice import make_sales_return

	ret = make_sales_return(names[0])
	ret.items[0].qty = -1
	ret.update_outstanding_for_self = 0  # ERPNext applies the credit to the invoice, as Xero's allocation does
	ret.insert(ignore_permissions=True)
	ret.submit()
	names.append(ret.name)
	frappe.db.commit()
	# Xero answers the first invoice batch with a 429: the queue waits Retry-After and goes on
	server.fail_next("Invoices", 429, headers={"Retry-After": "1", "X-Rate-Limit-Problem": "minute"}, method="POST")
	wait_idle(frappe)
	in_xero = {i["InvoiceNumber"]: i for i in server.invoices(tenant)}
	in_xero.update({c["CreditNoteNumber"]: c for c in server.credit_notes(tenant)})
	ok = True
	for name in names:
		si = frappe.db.get_value("Sales Invoice", name, ["grand_total", "rounded_total", "atlas_xero_status",
														  "atlas_xero_invoice_id", "is_return"], as_dict=True)
		x = in_xero.get(name, {})
		ok = ok and si.atlas_xero_status == "Xero Synced"
		kind = "credit note" if si.is_return else x.get("LineAmountTypes", "-")
		extra = (f" due {x.get('AmountDue')} (credited {x.get('AmountCredited')})" if x.get("AmountCredited") else "")
		print(f"  {name}  ERPNext grand {si.grand_total:>8.2f} billed {si.rounded_total or si.grand_total:>8.2f}  "
			  f"{si.atlas_xero_status or '-':12}  Xero {x.get('Type', '-')} {x.get('Status', '-')} {kind} "
			  f"total {x.get('Total', '-')}{extra}")
	ok = _xero_quote_and_payments(frappe, server, tenant, company, site_url, names) and ok
	states = frappe.get_all("Sync Job", filters={"reference_name": ["in", names]}, pluck="status")
	print(f"  Sync Jobs of this run: {', '.join(f'{states.count(s)} {s}' for s in sorted(set(states)))} (attempts "
		  f"used: {sum(frappe.get_all('Sync Job', filters={'reference_name': ['in', names]}, pluck='attempts'))}); "
		  f"every Xero write carried an Idempotency-Key; one 429 answered and honoured (Retry-After)")
	print(f"Xero API calls: {server.calls()}")
	print("=" * 72)
	return 0 if ok and conn.status == "connected" else 1


XERO_WEBHOOK_KEY = "YXRsYXMtZGVtby14ZXJvLXdlYmhvb2sta2V5LTAxMjM0NTY3ODk="  # the demo app's "Webhooks key"


def _worker(frappe) -> None:
	"""Let the demo's resident worker finish what was queued."""
	wait_idle(frappe)


def _xero_quote_and_payments(frappe, server, tenant: str, company: str, site_url: str, invoices: list[str]) -> bool:
	"""Xero II on the demo: a Quotation becomes a Xero Quote and "Send quote" emails its PDF through the
	workspace's Gmail mailbox (twice with one key: one email), then payments made in Xero come back through
	a signed webhook (delivered twice: one Payment Entry each). Prints what happened; True when all held."""
	from atlas_integrations.xero import quotes

	ok = True
	quotation = frappe.get_doc({"doctype": "Quotation", "quotation_to": "Customer", "party_name": DEMO_CUSTOMER,
								"company": company, "transaction_date": frappe.utils.today(),
								"valid_till": frappe.utils.add_days(frappe.utils.today(), 30),
								"items": [{"item_code": XERO_ITEM, "qty": 4, "rate": 85.0}]})
	quotation.insert(ignore_permissions=True)
	quotation.submit()
	frappe.db.commit()
	_worker(frappe)
	mailbox = quotes.quote_mailbox(company)
	recipient = "buyer@demo-pallets.example"
	try:
		first = quotes.request_send(quotation.name, "demo-send-1", to=recipient)
		again = quotes.request_send(quotation.name, "demo-send-1", to=recipient)  # a double click
		frappe.db.commit()
		_worker(frappe)
	except Exception as exc:  # e.g. no shared workspace mailbox: say so, the rest goes on
		frappe.db.rollback()
		first = again = {"sync_job": f"not sent: {exc}"}
	state = frappe.db.get_value("Quotation", quotation.name, ["atlas_xero_status", "atlas_xero_quote_status",
															  "atlas_xero_quote_id", "atlas_xero_error"], as_dict=True)
	quote = next((q for q in server.quotes(tenant) if q.get("QuoteNumber") == quotation.name), {})
	mails = frappe.get_all("Outgoing Mail", filters={"reference_doctype": "Quotation", "reference_name": quotation.name},
						   fields=["status", "provider_message_id"])
	print(f"  Quotation {quotation.name} (grand {quotation.grand_total:.2f}) -> Xero quote {quote.get('QuoteNumber', '-')} "
		  f"total {quote.get('Total', '-')} {quote.get('Status', '-')}; ERPNext shows {state.atlas_xero_status} "
		  f"({state.atlas_xero_quote_status}){' - ' + state.atlas_xero_error if state.atlas_xero_error else ''}")
	print(f"  Send quote x2 with one key -> Sync Job {first['sync_job']} / {again['sync_job']}; "
		  f"{len(mails)} email with the Xero PDF through Gmail mailbox {mailbox or '-'} to {recipient}")
	ok = ok and quote.get("Status") == "SENT" and len(mails) == 1 and state.atlas_xero_status == "Synced to Xero"

	# payments back: a webhook from Xero (signed) queues a pull; the pull posts Payment Entries once
	bank, mode = _demo_bank(frappe, company)
	conn = frappe.get_doc("Xero Connection", company)
	conn.pull_payments = conn.create_payment_entries = 1
	conn.set("bank_map", [{"xero_account_code": "090", "erpnext_account": bank, "mode_of_payment": mode}])
	conn.save(ignore_permissions=True)
	settings = frappe.get_single("Atlas Settings")
	settings.xero_webhook_key = XERO_WEBHOOK_KEY
	settings.flags.ignore_permissions = True
	settings.save()
	frappe.db.commit()
	server.configure_webhook(f"{site_url}/api/method/atlas_integrations.api.xero_webhook.receive", XERO_WEBHOOK_KEY)
	probe = server.intent_to_receive()
	print(f"  Webhook {site_url}/api/method/atlas_integrations.api.xero_webhook.receive: intent to receive "
		  f"{'passed' if probe['ok'] else 'FAILED'} (good signature {probe['good']['status']} in "
		  f"{probe['good']['seconds'] * 1000:.0f} ms, bad {probe['bad']['status']})")
	server.deliver_webhooks()  # the creates of the push
	_worker(frappe)
	by_id = {frappe.db.get_value("Sales Invoice", n, "atlas_xero_invoice_id"): n for n in invoices}
	full, part = invoices[0], invoices[2]
	server.pay_invoice(tenant, frappe.db.get_value("Sales Invoice", full, "atlas_xero_invoice_id"), account_code="090",
					   reference="BACS demo 1")
	part_id = frappe.db.get_value("Sales Invoice", part, "atlas_xero_invoice_id")
	server.pay_invoice(tenant, part_id, 500, account_code="090", reference="BACS demo 2")
	events = server.pending_events()
	before = frappe.db.count("Xero Webhook Event", {"company": company})
	deliveries = server.deliver_webhooks()
	for delivery in deliveries:  # Xero retries: the same payloads again
		server.post_webhook(json.dumps({"events": delivery["events"], "firstEventSequence": 1,
										"lastEventSequence": len(delivery["events"]), "entropy": "REPLAY"}).encode())
	_worker(frappe)
	recorded = frappe.db.count("Xero Webhook Event", {"company": company}) - before
	print(f"  Paid in Xero: {full} in full, {part} 500.00 -> {len(events)} webhook events "
		  f"({', '.join(sorted({e['eventCategory'] + ' ' + e['eventType'] for e in events}))}) signed and delivered, "
		  f"then replayed: {recorded} Xero Webhook Events recorded (each once)")
	ok = ok and recorded == len(events)
	for name in (full, part):
		si = frappe.db.get_value("Sales Invoice", name, ["atlas_xero_invoice_status", "atlas_xero_amount_paid",
														  "atlas_xero_amount_credited", "atlas_xero_amount_due",
														  "atlas_xero_fully_paid_on", "outstanding_amount"], as_dict=True)
		entries = frappe.db.sql("""select pe.name, pe.paid_amount, pe.reference_no from `tabPayment Entry` pe
			join `tabPayment Entry Reference` r on r.parent = pe.name where r.reference_name=%s and pe.docstatus=1""",
								name, as_dict=True)
		print(f"  {name}  Xero {si.atlas_xero_invoice_status or '-'} paid {si.atlas_xero_amount_paid or 0:.2f} credited "
			  f"{si.atlas_xero_amount_credited or 0:.2f} due {si.atlas_xero_amount_due or 0:.2f}"
			  f"{' fully paid ' + str(si.atlas_xero_fully_paid_on) if si.atlas_xero_fully_paid_on else ''}; Payment "
			  f"Entries {', '.join(f'{e.name} {e.paid_amount:.2f} ({e.reference_no})' for e in entries) or 'none'}; "
			  f"ERPNext outstanding {si.outstanding_amount:.2f}")
		ok = ok and len(entries) == 1
	ok = ok and frappe.db.get_value("Sales Invoice", full, "atlas_xero_invoice_status") == "PAID" and bool(by_id)
	return ok


def _demo_bank(frappe, company: str) -> tuple[str, str]:
	"""The Company's bank account and mode of payment that Xero's bank account 090 maps to: a leaf Bank
	account (a fresh site from the setup wizard has only the "Bank Accounts" group, so one is made under it)
	and a Bank-type Mode of Payment with that account. Returns ``(account, mode of payment)``; commits."""
	bank = frappe.db.get_value("Account", {"company": company, "account_type": "Bank", "is_group": 0}, "name")
	if not bank:
		group = frappe.db.get_value("Account", {"company": company, "account_type": "Bank", "is_group": 1}, "name") or \
			frappe.db.get_value("Account", {"company": company, "account_name": "Bank Accounts", "is_group": 1}, "name")
		if not group:
			raise SystemExit(f"Company {company} has no Bank Accounts group in its chart of accounts")
		bank = frappe.get_doc({"doctype": "Account", "account_name": "Atlas Demo Bank", "company": company,
							   "parent_account": group, "account_type": "Bank", "is_group": 0}).insert(
			ignore_permissions=True).name
		print(f"  made the Company's bank account {bank} (a fresh site has only the group {group})")
	mode = "Atlas Demo Transfer"
	if not frappe.db.exists("Mode of Payment", mode):
		frappe.get_doc({"doctype": "Mode of Payment", "mode_of_payment": mode, "type": "Bank", "enabled": 1,
						"accounts": [{"company": company, "default_account": bank}]}).insert(ignore_permissions=True)
	frappe.db.commit()
	return bank, mode


def _summary(frappe, account: str, site_url: str, elapsed: float, stats: dict) -> int:
	# the initial sync (the first job after connecting); Gmail push may already have run an incremental one
	jobs = frappe.get_all("Sync Job", filters={"reference_name": account, "job_type": "Gmail Sync"}, fields=["*"],
						  order_by="creation asc")
	job = next((j for j in jobs if j.sync_mode == "initial"), jobs[0])
	comms = frappe.get_all("Communication", filters={"atlas_mailbox": account},
						   fields=["name", "sent_or_received", "atlas_parse_error", "atlas_skipped_attachments"])
	names = [c.name for c in comms]
	files = frappe.db.count("File", {"attached_to_doctype": "Communication", "attached_to_name": ["in", names]}) if names else 0
	threads = frappe.get_all("Inbox Thread", filters={"mailbox": account},
							 fields=["subject", "message_count", "labels"], order_by="message_count desc", limit=5)
	acc = frappe.get_doc("Gmail Account", account)
	print()
	print("=" * 72)
	print(f"Gmail Account   {acc.account_name} <{acc.email_address}>: {acc.status}, health {acc.health}")
	print(f"Inbox Threads   {frappe.db.count('Inbox Thread', {'mailbox': account})}")
	print(f"Messages        {len(comms)} ({sum(c.sent_or_received == 'Received' for c in comms)} received, "
		  f"{sum(c.sent_or_received == 'Sent' for c in comms)} sent)")
	skipped = sum(len(json.loads(c.atlas_skipped_attachments or "[]")) for c in comms)
	print(f"Attachments     {files} stored as private Files, {skipped} recorded but not stored (over the size cap or refused by Frappe)")
	print(f"Parse errors    {sum(1 for c in comms if c.atlas_parse_error)} messages stored with their error")
	print(f"Sync Job        {job.name}: {job.status}; listed {job.listed}, created {job.created}, "
		  f"already present {job.already_present}, failed {job.failed}; Gmail API calls {job.api_calls} "
		  f"({job.api_calls / max(1, job.listed):.3f}/message, {stats.get('quota_units', 0)} quota units); "
		  f"{job.duration or 0:.1f} s in the worker, {elapsed:.1f} s wall")
	print("Largest threads:")
	for t in threads:
		print(f"  {t.message_count:3d}  {t.subject[:60]}  [{t.labels}]")
	print(f"See them in the desk: {site_url}/app/inbox-thread?mailbox={account} (Administrator / admin)")
	print("-" * 72)
	return 0 if job.status == "succeeded" and len(comms) == job.listed else 1


if __name__ == "__main__":
	sys.exit(main())
