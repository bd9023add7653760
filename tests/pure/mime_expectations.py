"""What a message's attachments should come out as, read from its MIME tree with the email stdlib: the expectation the attachment tests and the real-site sync tests compare against."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

from atlas_integrations.inbox.mime import unsurrogate


# --------------------------------------------------------------------------------------------------
# the oracle
# --------------------------------------------------------------------------------------------------
@dataclass
class Expected:
	part: EmailMessage
	content_type: str
	name: str | None  # policy.default's get_filename(), None when the part names no file
	enclosed: bool


def expected_attachments(raw: bytes) -> list[Expected]:
	"""The attachments of ``raw`` by the rules of this module's docstring, in document order."""
	msg = message_tree(raw)
	bodies = {id(b) for b in (_body(msg, "plain"), _body(msg, "html")) if b is not None}
	out: list[Expected] = []

	def visit(part: EmailMessage) -> None:
		ctype = part.get_content_type()
		if ctype in ENCLOSED:  # rule 1: whole, not looked into
			out.append(Expected(part, ctype, _name(part)[1], True))
			return
		if part.is_multipart():  # rule 2: a container
			for sub in part.get_payload():
				if isinstance(sub, email.message.Message):
					visit(sub)
			return
		if id(part) in bodies:
			return
		named, name = _name(part)
		if part.is_attachment() or named:  # rule 3
			out.append(Expected(part, ctype, name, False))
		elif part.get_content_maintype() not in ("text", "multipart", "message"):  # rule 4
			out.append(Expected(part, ctype, None, False))

	visit(msg)
	return out




ENCLOSED = ("message/rfc822", "message/global")


def _name(part: EmailMessage) -> tuple[bool, str | None]:
	"""(names a file, the name): an unreadable name still counts as a name."""
	try:
		name = part.get_filename()
	except Exception:
		return True, None
	return bool(name), (unsurrogate(str(name)) if name else None)


def _body(msg: EmailMessage, subtype: str):
	try:
		return msg.get_body(preferencelist=(subtype,))
	except Exception:  # the stdlib walk can trip on a broken multipart/related: then no named part is body
		return None


def message_tree(raw: bytes) -> EmailMessage:
	return read_with_default(email.message_from_bytes(raw, policy=email.policy.compat32))




def read_with_default(part: email.message.Message) -> EmailMessage:
	"""A compat32-parsed part as an ``EmailMessage`` of policy.default: same raw headers, same split."""
	out = Part(policy=email.policy.default)
	out._headers = list(part._headers)
	out._unixfrom, out._default_type = part._unixfrom, part.get_default_type()
	out.compat32_type = part.get_content_type()
	payload = part._payload  # as stored (get_payload() would replace 8-bit bytes, and can raise)
	out._payload = [read_with_default(p) for p in payload] if isinstance(payload, list) else payload
	out.preamble, out.epilogue, out.defects = part.preamble, part.epilogue, list(part.defects)
	return out




class Part(EmailMessage):
	"""An ``EmailMessage`` that does not stop on a header policy.default's parser raises on: an unreadable
	Content-Disposition counts as none (so ``get_body()`` goes on), an unreadable Content-Type is taken
	as compat32 reads it (as ``mime.py`` does)."""

	compat32_type = "text/plain"

	def is_attachment(self) -> bool:
		try:
			return super().is_attachment()
		except Exception:
			return False

	def get_content_type(self) -> str:
		try:
			return super().get_content_type()
		except Exception:
			return self.compat32_type
