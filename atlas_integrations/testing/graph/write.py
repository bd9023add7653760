"""Graph v1.0 mail writes as the app uses them: PATCH a message (isRead, categories, flag; a draft's
subject, body, recipients and single-value extended properties), ``move``, ``createReply`` (a draft with
Graph's own In-Reply-To, References and conversationId), ``send`` (a draft) and ``sendMail``, and the
``$filter`` on a single-value extended property by which a sender finds what it sent. Every message sent is
recorded in ``server.sent`` (exactly-once checks); a recipient that is a mailbox of the server receives it.

A sent draft is moved to Sent Items at once, or ``send_lag`` seconds later (Graph answers 202 and files it
afterwards: a sender looking too early finds the draft still in Drafts). A new draft (``POST /messages``),
file attachments of a draft and ``DELETE`` of a message are served too.

Reference: learn.microsoft.com/graph/api/message-createreply, message-send, user-sendmail,
singlevaluelegacyextendedproperty-get (filter ``singleValueExtendedProperties/Any(ep: ep/id eq … and
ep/value eq …)``).
"""

from __future__ import annotations

import base64
import email.header
import email.utils
import json
import re
import secrets
from email.message import EmailMessage

from atlas_integrations.testing.graph.mail import GraphMailbox, GraphMessage

_EXT_FILTER = re.compile(
	r"^singleValueExtendedProperties/any\(\s*ep\s*:\s*ep/id eq '((?:[^']|'')*)' and ep/value eq '((?:[^']|'')*)'\s*\)$",
	re.IGNORECASE)


def _recipients(values) -> list[str]:
	return [r["emailAddress"]["address"] for r in values or [] if (r.get("emailAddress") or {}).get("address")]


def _line(value) -> str:
	"""A header value on one line (Graph unfolds what it shows: a folded Subject is one line)."""
	return " ".join(str(value or "").split())


def _raw(fields: dict) -> bytes:
	"""The RFC 822 bytes of a draft's fields."""
	msg = EmailMessage()
	msg["From"] = fields["from"]
	if fields.get("to"):
		msg["To"] = ", ".join(fields["to"])
	if fields.get("cc"):
		msg["Cc"] = ", ".join(fields["cc"])
	msg["Subject"] = _line(fields.get("subject"))
	msg["Date"] = email.utils.formatdate(usegmt=True)
	msg["Message-ID"] = fields["message_id"]
	if fields.get("in_reply_to"):
		msg["In-Reply-To"] = _line(fields["in_reply_to"])
		msg["References"] = _line(fields["references"])
	body = fields.get("body") or {}
	msg.set_content(body.get("content") or "", subtype="html" if (body.get("contentType") or "").lower() == "html" else "plain")
	for name, ctype, data in fields.get("attachments") or []:
		maintype, _, subtype = (ctype or "application/octet-stream").partition("/")
		msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=name)
	return msg.as_bytes()


class _MailWriteMixin:
	"""Mixed into :class:`~atlas_integrations.testing.graph.server.GraphTestServer`."""

	def _write(self, method: str, box: GraphMailbox, rest: list[str], query: dict, body: bytes,
			   immutable: bool) -> tuple | None:
		"""A write (or a filtered list) on ``box``; None when ``rest`` is not one."""
		from atlas_integrations.testing.graph.server import _json, graph_error

		try:
			data = json.loads(body) if body else {}
		except ValueError:
			return graph_error(400, "BadRequest", "Unable to read JSON request payload.")
		if rest == ["sendMail"] and method == "POST":
			message = data.get("message") or {}
			fields = self._fields(box, message)
			msg = box.add(_raw(fields), "sentitems", is_read=True)
			msg.extended = self._extended(message)
			self._deliver(box, msg, fields)
			return 202, [], b""
		if len(rest) in (1, 3) and rest[-1] == "messages" and method == "GET" and "$filter" in query:
			match = _EXT_FILTER.match(query["$filter"].strip())
			if not match:
				return graph_error(400, "ErrorInvalidUrlQueryFilter", "The query filter is not supported here.")
			fid = box.folder_id(rest[1]) if len(rest) == 3 else None
			prop, value = (g.replace("''", "'") for g in match.groups())
			found = [m for m in box.messages.values() if m.extended.get(prop) == value and (fid is None or m.folder == fid)]
			return _json(200, {"value": [self._with_extended(m, immutable) for m in found]})
		if rest == ["messages"] and method == "POST":  # a new draft
			fields = self._fields(box, data)
			draft = box.add(_raw(fields), "drafts", is_read=True, is_draft=True)
			draft.draft_fields, draft.extended = fields, self._extended(data)
			return _json(201, self._with_extended(draft, immutable))
		if len(rest) < 2 or rest[0] != "messages" or method == "GET":
			return None
		msg = self._find(box, rest[1])
		if msg is None:
			return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
		action = rest[2:]
		if not action and method == "DELETE":
			box.delete(msg.id)
			return 204, [], b""
		if action == ["attachments"] and method == "POST":
			if not msg.is_draft:
				return graph_error(400, "ErrorInvalidOperation", "Attachments can only be added to a draft.")
			try:
				content = base64.b64decode(str(data.get("contentBytes") or ""), validate=True)
			except ValueError:
				return graph_error(400, "ErrorInvalidRequest", "contentBytes is not base64.")
			msg.draft_fields.setdefault("attachments", []).append(
				(str(data.get("name") or "attachment"), str(data.get("contentType") or "application/octet-stream"), content))
			msg.raw = _raw(msg.draft_fields)
			return _json(201, {"id": secrets.token_hex(8), "name": data.get("name"), "size": len(content)})
		if not action and method == "PATCH":
			if msg.is_draft:
				msg.draft_fields.update(self._fields(box, data, msg.draft_fields))
				msg.raw = _raw(msg.draft_fields)
				msg.extended.update(self._extended(data))
			values = {k: v for k, v in (("is_read", data.get("isRead")), ("categories", data.get("categories")),
										("flag", (data.get("flag") or {}).get("flagStatus"))) if v is not None}
			box.update(msg.id, **values)
			return _json(200, self._with_extended(msg, immutable))
		if action == ["move"] and method == "POST":
			fid = box.folder_id(str(data.get("destinationId") or ""))
			if not fid:
				return graph_error(400, "ErrorInvalidIdMalformed", "The destination folder id is not valid.")
			return _json(201, box.move(msg.id, fid).resource(immutable))
		if action == ["createReply"] and method == "POST":
			head = email.message_from_bytes(msg.raw)
			subject = str(email.header.make_header(email.header.decode_header(head.get("Subject") or "")))
			refs = " ".join(filter(None, [str(head.get("References") or ""), msg.internet_message_id]))
			fields = {"from": box.address, "to": [a for _, a in email.utils.getaddresses([head.get("Reply-To") or head.get("From") or ""]) if a],
					  "subject": subject if subject.lower().startswith("re:") else f"RE: {subject}",
					  "message_id": f"<{secrets.token_hex(12)}@graph.local>", "in_reply_to": msg.internet_message_id,
					  "references": refs, "body": {"contentType": "text", "content": data.get("comment") or ""}}
			fields.update(self._fields(box, data.get("message") or {}, fields))
			draft = box.add(_raw(fields), "drafts", is_read=True, is_draft=True)
			draft.draft_fields, draft.conversation_id = fields, msg.conversation_id
			draft.extended = self._extended(data.get("message") or {})
			return _json(201, self._with_extended(draft, immutable))
		if action == ["send"] and method == "POST":
			if not msg.is_draft:
				return graph_error(400, "ErrorInvalidOperation", "Only a draft can be sent.")
			self._deliver(box, msg, msg.draft_fields)  # accepted: counted as sent now

			def file_in_sent_items(box=box, msg=msg):
				with self._lock:
					msg.is_draft = False
					box.move(msg.id, "sentitems")

			if self.send_lag:  # Graph answers 202 and moves the draft to Sent Items afterwards
				import threading

				timer = threading.Timer(self.send_lag, file_in_sent_items)
				timer.daemon = True
				timer.start()
			else:
				file_in_sent_items()
			return 202, [], b""
		return None

	def _fields(self, box: GraphMailbox, message: dict, base: dict | None = None) -> dict:
		"""Draft fields from a Graph message object (only the properties it names)."""
		fields = dict(base or {"from": box.address, "message_id": f"<{secrets.token_hex(12)}@graph.local>"})
		if "subject" in message:
			fields["subject"] = message["subject"]
		if "body" in message:
			fields["body"] = message["body"]
		if "toRecipients" in message:
			fields["to"] = _recipients(message["toRecipients"])
		if "ccRecipients" in message:
			fields["cc"] = _recipients(message["ccRecipients"])
		if "bccRecipients" in message:
			fields["bcc"] = _recipients(message["bccRecipients"])
		return fields

	@staticmethod
	def _extended(message: dict) -> dict[str, str]:
		return {p["id"]: p["value"] for p in message.get("singleValueExtendedProperties") or []
				if isinstance(p, dict) and "id" in p and "value" in p}

	@staticmethod
	def _with_extended(msg: GraphMessage, immutable: bool) -> dict:
		resource = msg.resource(immutable)
		if msg.extended:
			resource["singleValueExtendedProperties"] = [{"id": k, "value": v} for k, v in msg.extended.items()]
		return resource

	def _deliver(self, box: GraphMailbox, msg: GraphMessage, fields: dict) -> None:
		"""Record a sent message; copy it into the inbox of every recipient that is a mailbox here."""
		self.sent.append({"from": box.address, "id": msg.id, "internetMessageId": msg.internet_message_id,
						  "to": list(fields.get("to") or []) + list(fields.get("cc") or []) + list(fields.get("bcc") or []),
						  "extended": dict(msg.extended),
						  "raw": msg.raw})
		for address in {a.lower() for a in self.sent[-1]["to"]}:
			if address in self.mailboxes and address != box.address:
				self.mailboxes[address].add(msg.raw, "inbox")
