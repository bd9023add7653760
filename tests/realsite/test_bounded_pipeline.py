"""A stranger's mail costs bounded time on the real site (issue 16): every adversarial message of
``atlas_integrations/testing/adversarial.py`` (about 100 KB each) goes through the real writer (the Inbound
Route's ``inbound.store``, committed), the real pipeline job (``inbound.process``) and "Process again"
(``pipeline.run_threads``) within a generous bound, and is stored — a broken message with its error, an
outcome recorded: nothing lost."""

from __future__ import annotations

import json

import pytest

from atlas_integrations.testing import adversarial

#: seconds per message (store + pipeline job, and Process again), generous: the cubic reply parser alone
#: took minutes on the first message
BOUND = 5.0
MESSAGES = adversarial.messages()


@pytest.fixture(scope="module")
def route(site):
	frappe = site
	name = adversarial.make_site_route(frappe)
	yield name
	adversarial.remove_site_route(frappe, name)


@pytest.mark.parametrize("name, raw", MESSAGES, ids=[name for name, _ in MESSAGES])
def test_each_adversarial_message_is_stored_and_processed_in_bounded_time(site, route, name, raw):
	from atlas_integrations.inbox.mime import parse_message
	from atlas_integrations.inbox.pipeline import OUTCOMES

	frappe = site
	timing = adversarial.run_on_site(frappe, route, [(name, raw)])[0]
	assert timing.total <= BOUND, f"{name}: store {timing.store:.2f} s + pipeline {timing.pipeline:.2f} s"
	assert timing.again <= BOUND, f"{name}: Process again {timing.again:.2f} s"
	row = frappe.db.get_value("Communication", timing.communication,
							  ["atlas_mailbox", "atlas_inbox_thread", "subject", "text_content", "content",
							   "atlas_parse_error", "atlas_outcome", "atlas_skipped_attachments"], as_dict=True)
	assert row and row.atlas_mailbox == route and row.atlas_inbox_thread
	assert row.atlas_outcome in OUTCOMES and row.atlas_outcome == timing.outcome
	parsed = parse_message(raw)
	assert bool(row.atlas_parse_error) == bool(parsed.errors)  # what went wrong is kept with the message
	assert row.text_content == parsed.text and (row.content or row.text_content is not None)
	files = frappe.db.count("File", {"attached_to_doctype": "Communication", "attached_to_name": timing.communication})
	skipped = json.loads(row.atlas_skipped_attachments or "[]")
	if parsed.attachments:  # every attachment is a File or recorded as not stored (the rest summed up)
		assert files + len(skipped) >= min(len(parsed.attachments), 2)
		assert files + sum(int(s["reason"].split()[0]) if s["reason"].endswith("(not listed)") else 1
						   for s in skipped) == len(parsed.attachments)


def test_the_set_holds_the_shapes_the_writer_used_to_fail_on():
	names = {name for name, _ in MESSAGES}
	# a 1,000-character Message-ID (key column: 140), a 100 KB local part (sender column: 255), hundreds of
	# refused attachments (their record: a 64 KB column)
	assert {"long-message-ids", "bulk-sender-local-part", "refused-attachments"} <= names


def test_saving_a_rule_with_a_pattern_re2_lacks_is_refused_with_a_clear_message(site):
	frappe = site
	doc = frappe.get_doc({"doctype": "Inbox Rule", "rule_name": "Adversarial backreference rule", "enabled": 1,
						  "subject_regex": r"(quote)\s+\1", "set_priority": "Low"})
	with pytest.raises(frappe.ValidationError) as info:
		doc.insert(ignore_permissions=True)
	message = str(info.value)
	assert "backreference" in message and "RE2" in message and "do not support" in message, message
	frappe.db.rollback()
	assert not frappe.db.exists("Inbox Rule", "Adversarial backreference rule")
