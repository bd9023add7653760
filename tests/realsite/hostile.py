"""A mailbox of hostile messages: script and event-handler payloads in every place mail can carry them.

Every payload, if it ever ran in the desk, would set ``window.__atlas_canary`` (or open a dialog); the
remote image points at a local counting server, so a test knows whether a tracking pixel fired.
"""

from __future__ import annotations

import base64
import threading
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CANARY = "window.__atlas_canary"
#: display names, subjects, file names and label names, exactly as a user must read them
FROM_NAME = f"<img src=x onerror={CANARY}=1>"  # sent RFC 2047-encoded
TO_NAME = f"<script>{CANARY}=2</script>"  # sent raw (quoted)
CC_NAME = f"<svg onload={CANARY}=3>"  # sent RFC 2047-encoded
SUBJECT = f"<img src=x onerror={CANARY}=4> Ann <ann@x.org> & \"co\""
FILE_NAME = f"<img src=x onerror={CANARY}=7>.html"
LABEL_NAME = f"<img src=x onerror={CANARY}=9>"
PLAIN_SUBJECT = "Ann <ann@x.org> quarterly report"
PIXEL_PNG = base64.b64decode(
	"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def hostile_messages(pixel_url: str, mailbox: str) -> list[bytes]:
	"""Two RFC 822 messages to ``mailbox``: one with every payload, one plain reply in the same thread."""
	msg = EmailMessage()
	msg["From"] = formataddr((str(Header(FROM_NAME, "utf-8")), "evil@attacker.example"))
	msg["To"] = f'"{TO_NAME}" <{mailbox}>'
	msg["Cc"] = formataddr((str(Header(CC_NAME, "utf-8")), "cc@attacker.example"))
	msg["Subject"] = SUBJECT
	msg["Message-ID"] = "<hostile-1@attacker.example>"
	msg["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
	msg.set_content("plain part")
	msg.add_alternative(
		f"""<html><body><p>Hello <b>there</b></p>
		<img src="{pixel_url}" alt="tracker">
		<img src="cid:inline-logo@atlas" alt="logo">
		<a href="javascript:{CANARY}=5">click me</a>
		<script>{CANARY}=6</script>
		<p onclick="{CANARY}=10" style="color:red">styled</p>
		</body></html>""",
		subtype="html",
	)
	msg.get_payload()[1].add_related(PIXEL_PNG, "image", "png", cid="<inline-logo@atlas>", filename="logo.png")
	msg.add_attachment(f"<html><script>{CANARY}=8</script></html>".encode(), maintype="text", subtype="html",
					   filename=FILE_NAME)
	msg.add_attachment(b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", maintype="image",
					   subtype="jpeg", filename="photo.jpg")  # markup posing as an image (Frappe refuses it)
	msg.add_attachment(f"<html><body onload='{CANARY}=11'>notes</body></html>".encode(), maintype="text",
					   subtype="plain", filename="notes.txt")  # markup in a text file: sniffable
	reply = EmailMessage()
	reply["From"] = formataddr(("Ann Example", "ann@x.org"))
	reply["To"] = mailbox
	reply["Subject"] = PLAIN_SUBJECT
	reply["Message-ID"] = "<plain-2@x.org>"
	reply["Date"] = "Tue, 01 Dec 2026 11:00:00 +0000"
	reply.set_content("Ann's report, see you at 5 & bring <notes>.")
	return [msg.as_bytes(), reply.as_bytes()]


class PixelServer:
	"""A local server for the remote image: counts the requests that reach it."""

	def __init__(self):
		self.hits = 0
		owner = self

		class Handler(BaseHTTPRequestHandler):
			def do_GET(self):  # noqa: N802
				owner.hits += 1
				self.send_response(200)
				self.send_header("Content-Type", "image/png")
				self.send_header("Content-Length", str(len(PIXEL_PNG)))
				self.end_headers()
				self.wfile.write(PIXEL_PNG)

			def log_message(self, *args):
				pass

		self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
		self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/pixel.png"
		threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

	def stop(self):
		self.httpd.shutdown()
		self.httpd.server_close()
