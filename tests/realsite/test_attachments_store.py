"""The batch path for attachments (atlas_integrations/inbox/attachments.py) keeps Frappe's File semantics.

Real site, real sync on a real rq worker, downloads through the site's own web server. Each stored
attachment is compared with what Frappe's own ``File.insert`` writes for the same content.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import uuid
from email.message import EmailMessage

import pytest

from tests.realsite.conftest import Accounts, login, run_worker

#: columns that differ between any two inserts (identity, time) or that only Frappe's extra writes touch
_PER_INSERT = {"name", "creation", "modified"}


def _jpeg_with_exif() -> bytes:
	from PIL import Image

	image = Image.new("RGB", (16, 16), "blue")
	exif = Image.Exif()
	exif[0x010E] = "atlas secret image description"  # ImageDescription
	buf = io.BytesIO()
	image.save(buf, "JPEG", exif=exif.tobytes())
	return buf.getvalue()


def _pdf_with_javascript() -> bytes:
	"""A PDF whose page opens with JavaScript (what Frappe's ``pdf_contains_js`` refuses)."""
	from pypdf import PdfWriter
	from pypdf.generic import DictionaryObject, NameObject, TextStringObject

	writer = PdfWriter()
	page = writer.add_blank_page(72, 72)
	page[NameObject("/AA")] = DictionaryObject({NameObject("/O"): DictionaryObject({
		NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("app.alert(1)")})})
	buf = io.BytesIO()
	writer.write(buf)
	return buf.getvalue()


def _png() -> bytes:
	from PIL import Image

	buf = io.BytesIO()
	Image.new("RGB", (4, 4), "green").save(buf, "PNG")
	return buf.getvalue()


def _messages(mailbox: str, unique: bytes) -> dict[str, bytes]:
	"""Two messages: "A" with a text file, an EXIF-tagged JPEG, markup posing as a JPEG, a PDF with
	JavaScript, an inline PNG and a part in an unknown transfer encoding; "B" with A's text file again
	under another name."""
	a = EmailMessage()
	a["From"], a["To"], a["Subject"] = "Ann <ann@example.org>", mailbox, "attachments A"
	a["Message-ID"] = f"<a.{uuid.uuid4().hex}@example.org>"
	a.set_content("see attached")
	a.add_alternative("<p>logo: <img src='cid:logo@atlas'></p>", subtype="html")
	a.get_payload()[1].add_related(_png(), "image", "png", cid="<logo@atlas>", filename="logo.png")
	a.add_attachment(b"report " + unique, maintype="text", subtype="plain", filename="report.txt")
	a.add_attachment(_jpeg_with_exif(), maintype="image", subtype="jpeg", filename="photo.jpg")
	a.add_attachment(b"<svg xmlns='http://www.w3.org/2000/svg'/>", maintype="image", subtype="jpeg",
					 filename="broken.jpg")
	a.add_attachment(_pdf_with_javascript(), maintype="application", subtype="pdf", filename="macro.pdf")
	a.add_attachment(b"odd bytes " + unique, maintype="application", subtype="octet-stream", filename="odd.bin")
	a.get_payload()[-1].replace_header("Content-Transfer-Encoding", "x-atlas-unknown")
	b = EmailMessage()
	b["From"], b["To"], b["Subject"] = "Ann <ann@example.org>", mailbox, "attachments B"
	b["Message-ID"] = f"<b.{uuid.uuid4().hex}@example.org>"
	b.set_content("the same report again")
	b.add_attachment(b"report " + unique, maintype="text", subtype="plain", filename="copy of report.txt")
	return {"A": a.as_bytes(), "B": b.as_bytes()}


@pytest.fixture(scope="module")
def box(site, google):
	"""A synced mailbox holding :func:`_messages`. Yields ``{"account", "comms": {"A", "B"}, "raw",
	"ids", "parsed"}`` (parsed: the attachments as the sync parsed them, by message)."""
	from atlas_integrations.inbox.mime import parse_message

	frappe = site
	helper = Accounts(site, google)
	email = helper.mailbox(load_corpus=False)
	raw = _messages(email, uuid.uuid4().hex.encode())
	ids = {k: google.insert_message(email, v, label_ids=["INBOX"]) for k, v in raw.items()}
	account, _ = helper.connect(email)
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	comms = {c.subject.split()[-1]: c.name for c in frappe.get_all(
		"Communication", filters={"atlas_mailbox": account}, fields=["name", "subject"])}
	assert sorted(comms) == ["A", "B"], comms
	yield {"account": account, "comms": comms, "raw": raw, "ids": ids, "helper": helper,
		   "parsed": {k: parse_message(v).attachments for k, v in raw.items()}}
	if os.environ.get("ATLAS_KEEP_TEST_DATA") != "1":
		helper.cleanup()


def _files(frappe, communication: str) -> dict:
	"""The Communication's File rows (all columns), by readable original name."""
	from atlas_integrations.inbox.text import plain

	rows = frappe.get_all("File", filters={"attached_to_doctype": "Communication", "attached_to_name": communication},
						  fields=["*"], order_by="creation asc")
	return {plain(r.atlas_original_name): r for r in rows}


def _disk_path(frappe, file_url: str) -> str:
	assert file_url.startswith("/private/files/"), file_url
	return frappe.get_site_path("private", "files", file_url.split("/private/files/", 1)[1])


def test_stored_rows_are_what_frappe_file_insert_writes(site, box):
	"""Each File row equals, column for column, the row Frappe's own ``File.insert`` writes for the same
	attachment (same name, content, Communication): folder, flags, type, size, hash, URL, names."""
	from frappe.core.doctype.file.utils import get_file_name

	from atlas_integrations.inbox.text import mail_text, safe_file_name

	frappe = site
	ours = _files(frappe, box["comms"]["A"])
	assert sorted(ours) == ["logo.png", "odd.bin", "photo.jpg", "report.txt"], sorted(ours)
	try:
		for att in box["parsed"]["A"]:
			if att.filename not in ours:
				continue
			row = ours[att.filename]
			safe = safe_file_name(att.filename, att.content_type)
			# Frappe's generate_file_name: the safe name, or with the hash as suffix when a file of that
			# name is already on disk
			assert row.file_name in (safe, get_file_name(safe, row.content_hash[-6:])), (row.file_name, safe)
			assert row.atlas_original_name == mail_text(att.filename)
			assert (row.is_private, row.folder, row.attached_to_doctype) == (1, "Home/Attachments", "Communication")
			frappe_doc = frappe.get_doc({
				"doctype": "File", "file_name": row.file_name, "atlas_original_name": row.atlas_original_name,
				"atlas_content_id": row.atlas_content_id, "attached_to_doctype": "Communication",
				"attached_to_name": box["comms"]["A"], "is_private": 1, "content": att.content,
			}).insert(ignore_permissions=True)
			theirs = frappe.get_all("File", filters={"name": frappe_doc.name}, fields=["*"])[0]
			differ = {k: (row[k], theirs[k]) for k in row
					  if k not in _PER_INSERT | {"content_hash", "file_name", "file_url"} and row[k] != theirs[k]}
			assert not differ, (att.filename, differ)
			# the same hash behind the mail prefix; Frappe's own insert of the same bytes writes a file of its
			# own (its duplicate check never lands on a mail file), with the same content
			assert row.content_hash == "atlas-mail:" + theirs.content_hash, (row.content_hash, theirs.content_hash)
			assert theirs.file_url != row.file_url
			assert open(_disk_path(frappe, theirs.file_url), "rb").read() == open(_disk_path(frappe, row.file_url), "rb").read()
		assert ours["logo.png"].atlas_content_id == "logo@atlas"
	finally:
		frappe.db.rollback()  # Frappe's rows (and their Attachment comments) go; our files stay on disk
	for row in ours.values():
		assert os.path.exists(_disk_path(frappe, row.file_url))


def test_files_on_disk_hold_the_content_hashed_and_sized(site, box):
	from PIL import Image
	from frappe.utils.image import strip_exif_data

	frappe = site
	ours = _files(frappe, box["comms"]["A"])
	private = os.path.realpath(frappe.get_site_path("private", "files"))
	for att in box["parsed"]["A"]:
		if att.filename not in ours:
			continue
		row = ours[att.filename]
		path = _disk_path(frappe, row.file_url)
		assert os.path.realpath(path).startswith(private + os.sep)
		content = open(path, "rb").read()
		assert "atlas-mail:" + hashlib.md5(content).hexdigest() == row.content_hash and len(content) == row.file_size
		if att.filename == "photo.jpg":  # Frappe's EXIF strip (System Settings) applied, as File.insert does
			if frappe.get_system_settings("strip_exif_metadata_from_uploaded_images"):
				assert content == strip_exif_data(att.content, "image/jpeg")
				assert not dict(Image.open(io.BytesIO(content)).getexif())
			assert dict(Image.open(io.BytesIO(att.content)).getexif())  # the original had EXIF
		else:
			assert content == att.content, att.filename
	# an undecodable part is kept with its raw bytes
	[odd] = [a for a in box["parsed"]["A"] if a.filename == "odd.bin"]
	assert odd.error and open(_disk_path(frappe, ours["odd.bin"].file_url), "rb").read() == odd.content


def test_same_bytes_are_stored_once_on_disk(site, box):
	from atlas_integrations.inbox import attachments
	from atlas_integrations.inbox.mime import Attachment

	frappe = site
	a, b = _files(frappe, box["comms"]["A"])["report.txt"], _files(frappe, box["comms"]["B"])["copy of report.txt"]
	assert a.name != b.name and a.content_hash == b.content_hash
	assert a.file_url == b.file_url  # one file on disk, two rows
	assert b.file_name == "copy_of_report.txt"
	# a later batch with the same bytes writes nothing new and points at the same file
	folder = frappe.get_site_path("private", "files")
	before = set(os.listdir(folder))
	try:
		comm = frappe.get_doc({"doctype": "Communication", "subject": "dedupe", "communication_medium": "Email"}
							  ).insert(ignore_permissions=True)
		content = open(_disk_path(frappe, a.file_url), "rb").read()
		out = attachments.store_batch([(comm.name, [Attachment("third.txt", "text/plain", content)])], 10**6)
		assert out[comm.name].stored == 1
		row = frappe.get_all("File", filters={"attached_to_name": comm.name}, fields=["file_url", "file_name"])[0]
		assert row.file_url == a.file_url and row.file_name == "third.txt"
		assert set(os.listdir(folder)) == before
	finally:
		frappe.db.rollback()
	assert os.path.exists(_disk_path(frappe, a.file_url))  # still used by the synced rows


def test_content_frappe_refuses_is_recorded_not_stored(site, box):
	from atlas_integrations.inbox.text import plain

	frappe = site
	comm = frappe.db.get_value("Communication", box["comms"]["A"],
							   ["has_attachment", "atlas_skipped_attachments"], as_dict=True)
	skipped = {s["filename"]: s for s in json.loads(comm.atlas_skipped_attachments)}
	assert sorted(skipped) == ["broken.jpg", "macro.pdf"], skipped
	assert "UnidentifiedImageError" in skipped["broken.jpg"]["reason"]  # Frappe's image check (EXIF strip)
	assert "unsafe content" in plain(skipped["macro.pdf"]["reason"])  # Frappe's PDF check (check_content)
	assert skipped["broken.jpg"]["content_type"] == "image/jpeg" and skipped["broken.jpg"]["size"] > 0
	assert comm.has_attachment == 1
	stored = _files(frappe, box["comms"]["A"])
	assert not {"broken.jpg", "macro.pdf"} & set(stored)
	assert len(stored) + len(skipped) == len(box["parsed"]["A"])
	b = frappe.db.get_value("Communication", box["comms"]["B"], ["has_attachment", "atlas_skipped_attachments"],
							as_dict=True)
	assert (b.has_attachment, b.atlas_skipped_attachments) == (1, None)


def test_cap_extension_rule_and_rollback(site, box, monkeypatch):
	"""Over the cap → recorded; a configured ``allowed_file_extensions`` → refused with Frappe's error;
	a transaction that rolls back leaves no new file on disk."""
	from frappe.core.doctype.file.exceptions import FileTypeNotAllowed  # noqa: F401 (named in the reason)

	from atlas_integrations.inbox import attachments
	from atlas_integrations.inbox.mime import Attachment

	frappe = site
	unique = uuid.uuid4().hex.encode()
	path = None
	try:
		comm = frappe.get_doc({"doctype": "Communication", "subject": "rules", "communication_medium": "Email"}
							  ).insert(ignore_permissions=True)
		settings = frappe.get_cached_doc("System Settings").as_dict()
		settings.allowed_file_extensions = "TXT\nPDF"
		monkeypatch.setattr(frappe.local, "system_settings", settings, raising=False)
		out = attachments.store_batch([(comm.name, [
			Attachment("big.txt", "text/plain", b"x" * 101),
			Attachment("tool.exe", "application/octet-stream", b"MZ" + unique),
			Attachment("new.txt", "text/plain", b"new " + unique),
		])], 100)[comm.name]
		monkeypatch.undo()
		reasons = {s["filename"]: s["reason"] for s in out.skipped}
		assert reasons["big.txt"] == "over the 100 byte cap"
		assert "FileTypeNotAllowed" in reasons["tool.exe"]
		assert out.stored == 1
		[row] = frappe.get_all("File", filters={"attached_to_name": comm.name}, fields=["file_url"])
		path = _disk_path(frappe, row.file_url)
		assert open(path, "rb").read() == b"new " + unique
		values = frappe.db.get_value("Communication", comm.name, ["has_attachment", "atlas_skipped_attachments"])
		assert values[0] == 1 and len(json.loads(values[1])) == 2
	finally:
		monkeypatch.undo()
		frappe.db.rollback()
	assert path and not os.path.exists(path)  # Frappe's File.on_rollback removed the file written in the transaction


def test_replayed_batch_creates_no_files(site, box):
	from atlas_integrations.gmail import store
	from atlas_integrations.settings import max_attachment_bytes

	frappe = site

	def count():
		return frappe.db.count("File", {"attached_to_doctype": "Communication",
										"attached_to_name": ["in", list(box["comms"].values())]})

	before = count()
	ctx = store.StoreContext(account=box["account"], max_attachment_bytes=max_attachment_bytes())
	threads = dict(frappe.get_all("Communication", filters={"atlas_mailbox": box["account"]},
								  fields=["atlas_provider_message_id", "atlas_provider_thread_id"], as_list=True))
	gm = [{"id": box["ids"][k], "threadId": threads[box["ids"][k]], "labelIds": ["INBOX"],
		   "raw": base64.urlsafe_b64encode(box["raw"][k]).decode()} for k in ("A", "B")]
	try:
		result = store.write_batch(ctx, gm)
		assert (result.created, sorted(result.already_present)) == ([], sorted(box["ids"].values()))
		assert result.attachments_stored == 0 and count() == before
	finally:
		frappe.db.rollback()


def test_admin_downloads_attachments_over_http(site, box, web):
	frappe = site
	admin = login(web)
	for name, row in _files(frappe, box["comms"]["A"]).items():
		r = admin.get(web + row.file_url, timeout=30)
		assert r.status_code == 200, (name, r.status_code)
		assert r.content == open(_disk_path(frappe, row.file_url), "rb").read()
		assert r.headers.get("Content-Disposition", "").startswith("attachment")
	import requests

	anonymous = requests.get(web + _files(frappe, box["comms"]["A"])["report.txt"].file_url, timeout=30)
	assert anonymous.status_code in (401, 403), anonymous.status_code
