"""One way for the real-site tests to write an RFC 822 message (the `email` stdlib)."""

from __future__ import annotations

import uuid
from email.message import EmailMessage

DATE = "Tue, 01 Dec 2026 09:00:00 +0000"


def make_mail(sender: str, to: str, subject: str, body: str, *, message_id: str | None = None,
			  headers: dict | None = None, in_reply_to: str | None = None,
			  attachments: list[tuple[str, bytes]] = (), date: str = DATE) -> bytes:
	"""The bytes of a message. ``date``: the Date header (default the fixed :data:`DATE`; mail that is to
	sort first among everything a site holds passes the time now). ``message_id`` without angle brackets (a fresh one by default);
	``in_reply_to`` also becomes References; ``attachments`` are ``(file name, bytes)`` pairs sent as
	application/octet-stream."""
	msg = EmailMessage()
	msg["From"] = sender
	msg["To"] = to
	msg["Subject"] = subject
	msg["Date"] = date
	msg["Message-ID"] = f"<{message_id or uuid.uuid4().hex + '@atlas-test.example'}>"
	if in_reply_to:
		msg["In-Reply-To"] = f"<{in_reply_to}>"
		msg["References"] = f"<{in_reply_to}>"
	for key, value in (headers or {}).items():
		msg[key] = value
	msg.set_content(body)
	for name, content in attachments:
		msg.add_attachment(content, maintype="application", subtype="octet-stream", filename=name)
	return msg.as_bytes()


def msg_ids(value) -> list[str]:
	"""The Message-IDs in a header value (Message-ID, In-Reply-To, References) as parsed ids
	(``<id>`` → ``id``), whatever its folding: ``' <a@b>'`` and ``'<a@b>'`` are the same id (RFC 5322 3.6.4)."""
	import re

	return re.findall(r"<([^<>\s]+)>", str(value or ""))
