"""Benchmark: Smart Inbox matching against 50,000 Contacts on the real site.

Seeds N Contacts (each with two Contact Email rows, a third linked to a Customer) with bulk inserts,
builds the matching index (Inbox Address) in bulk, then matches M messages the way the pipeline does:
a batch of 100 messages at a time, one indexed lookup of all their participants (from, reply-to, to, cc),
then the precedence rule per sender. Half the senders are known, written in other forms (upper case,
``+tag``, dots in Gmail addresses) than stored. Prints messages/s and the index build time; removes what
it seeded. Target: >= 5,000 messages/s.

    scripts/run-in-bench.sh bench/matching.py                  # 50,000 contacts, 20,000 messages
    scripts/run-in-bench.sh bench/matching.py --contacts 5000 --messages 2000
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "atlas-bench-contact-"


def seed(frappe, n: int) -> list[str]:
	"""Bulk-insert ``n`` Contacts (names ``PREFIX<k>``) with emails, a third linked to a Customer."""
	from frappe.utils import now_datetime

	now, user = now_datetime(), "Administrator"
	customer = "Atlas Bench Customer"
	if not frappe.db.exists("Customer", customer):
		frappe.get_doc({"doctype": "Customer", "customer_name": customer}).insert(ignore_permissions=True)
	contacts, emails, links, addresses = [], [], [], []
	for k in range(n):
		name = f"{PREFIX}{k}"
		primary = f"first.last{k}@gmail.com" if k % 2 else f"person{k}@company{k % 500}.example"
		contacts.append((name, now, now, user, user, f"Bench {k}", primary))
		emails.append((f"{name}-e1", now, now, user, user, name, "Contact", "email_ids", 1, primary, 1))
		emails.append((f"{name}-e2", now, now, user, user, name, "Contact", "email_ids", 2, f"alt{k}@other.example", 0))
		if k % 3 == 0:
			links.append((f"{name}-l", now, now, user, user, name, "Contact", "links", 1, "Customer", customer))
		addresses.append(primary)
	frappe.db.bulk_insert("Contact", ["name", "creation", "modified", "owner", "modified_by", "first_name", "email_id"],
						  contacts, chunk_size=5000)
	frappe.db.bulk_insert("Contact Email", ["name", "creation", "modified", "owner", "modified_by", "parent",
											"parenttype", "parentfield", "idx", "email_id", "is_primary"], emails,
						  chunk_size=5000)
	frappe.db.bulk_insert("Dynamic Link", ["name", "creation", "modified", "owner", "modified_by", "parent",
										   "parenttype", "parentfield", "idx", "link_doctype", "link_name"], links,
						  chunk_size=5000)
	frappe.db.commit()
	return addresses


def variant(address: str, rng: random.Random) -> str:
	"""The same mailbox written differently: case, a +tag, and (for gmail.com) the dots moved."""
	local, _, domain = address.partition("@")
	if domain == "gmail.com":
		local = local.replace(".", "")
		local = local[:3] + "." + local[3:]
		domain = rng.choice(["gmail.com", "GoogleMail.com"])
	return f"{local.upper() if rng.random() < 0.5 else local}+news@{domain}"


def main() -> int:
	parser = argparse.ArgumentParser()
	parser.add_argument("--contacts", type=int, default=50_000)
	parser.add_argument("--messages", type=int, default=20_000)
	parser.add_argument("--site", default=os.environ.get("ATLAS_SITE", "atlas.localhost"))
	args = parser.parse_args()

	import frappe

	sys.path.insert(0, str(ROOT))
	from atlas_integrations.inbox import match
	from atlas_integrations.inbox.addresses import addresses_in, normalise

	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	frappe.set_user("Administrator")
	rng = random.Random(7)
	try:
		t = time.monotonic()
		known = seed(frappe, args.contacts)
		print(f"seeded {args.contacts} Contacts ({2 * args.contacts} Contact Emails) in {time.monotonic() - t:.1f} s")
		t = time.monotonic()
		rows = match.rebuild_index()
		frappe.db.commit()
		print(f"matching index rebuilt: {rows} Inbox Address rows in {time.monotonic() - t:.1f} s")
		messages = []
		for i in range(args.messages):
			sender = variant(rng.choice(known), rng) if i % 2 == 0 else f"stranger{i}@unknown{i % 97}.example"
			messages.append((f"Someone <{sender}>", f"desk@atlas.example, {variant(rng.choice(known), rng)}",
							 f"cc{i % 50}@partner.example"))
		matched = 0
		t = time.perf_counter()
		for start in range(0, len(messages), 100):
			batch = messages[start:start + 100]
			people = {a for m in batch for a in addresses_in(", ".join(m))}
			index = match.lookup(people)
			for sender, _to, _cc in batch:
				address = addresses_in(sender)[0]
				if match.resolve(address, index.get(address)).state != match.UNKNOWN:
					matched += 1
		elapsed = time.perf_counter() - t
		print(f"matched {len(messages)} messages ({matched} senders known) in {elapsed:.2f} s "
			  f"-> {len(messages) / elapsed:,.0f} messages/s (one lookup per batch of 100)")
		assert normalise(variant("first.last1@gmail.com", rng)) == "firstlast1@gmail.com"
		return 0 if matched == len(messages) // 2 else 1
	finally:
		frappe.db.rollback()
		for table, column in (("Contact Email", "parent"), ("Dynamic Link", "parent"), ("Contact", "name")):
			frappe.db.sql(f"delete from `tab{table}` where `{column}` like %s", PREFIX + "%")
		frappe.db.sql("delete from `tabInbox Address` where source_name like %s", PREFIX + "%")
		frappe.db.commit()


if __name__ == "__main__":
	sys.exit(main())
