"""Google's multipart/mixed batch endpoint (``POST /batch/gmail/v1`` and ``/batch``): the envelope is
split into ``application/http`` parts, each goes through the same dispatcher as a direct call, and the
answers are framed back as one multipart/mixed response (:class:`_BatchMixin`)."""

from __future__ import annotations

import email
import email.policy
import re
import secrets
import urllib.parse
from email.message import Message as _EmailMessage
from email.parser import BytesParser
from http import HTTPStatus

from atlas_integrations.testing.gmail.common import (
	ApiError,
	_CaseDict,
	_Ctx,
	_error_resp,
	_json_resp,
	google_error_body,
)
from atlas_integrations.testing.gmail.mime import _clean

MAX_BATCH_PARTS = 100


class _BatchMixin:
	"""The batch endpoint of :class:`GmailTestServer` (parts go to ``_dispatch_api``)."""

	# -- batch ------------------------------------------------------------------------------------------
	def _batch(self, method, path, query, headers, body, ctx) -> tuple:
		ctype = headers.get("content-type") or ""
		parts = []
		if method.upper() == "POST" and ctype.lower().startswith("multipart/"):
			try:
				outer = BytesParser(policy=email.policy.compat32).parsebytes(
					b"Content-Type: " + ctype.encode("latin-1", "replace") + b"\r\n\r\n" + body
				)
				parts = outer.get_payload() if outer.is_multipart() else []
			except Exception:
				parts = []
		parts = [p for p in parts if isinstance(p, _EmailMessage)]
		with self._lock:  # attribute the envelope: outer Authorization, else the first part's
			grant, _ = self._bearer(headers)
			if grant is None and parts:
				try:
					inner = parts[0].get_payload(decode=False)
					grant, _ = (
						self._bearer(_parse_inner_request(inner)[2])
						if isinstance(inner, str)
						else (None, None)
					)
				except Exception:
					grant = None
			ctx.email = grant["email"] if grant else None
			self._st(ctx.email).batch_requests += 1
		fault = self._take_fault(method.upper(), path, query, ctx.email)
		if fault is not None:
			return self._fault_api_resp(fault)
		if method.upper() != "POST":
			raise ApiError(405, "Batch requests must be POSTed", "badRequest")
		if not ctype.lower().startswith("multipart/mixed") or "boundary" not in ctype.lower():
			raise ApiError(400, "Batch requests must be multipart/mixed with a boundary", "badRequest")
		if not parts:
			raise ApiError(400, "Batch request contains no parts", "badRequest")
		if len(parts) > MAX_BATCH_PARTS:
			raise ApiError(
				400,
				f"Too many requests in batch: {len(parts)} (a batch may hold at most {MAX_BATCH_PARTS})",
				"badRequest",
			)
		outer_auth = headers.get("authorization")
		answers = []
		for i, part in enumerate(parts):
			cid = _clean(part.get("Content-ID") or "").strip()
			if cid.startswith("<") and cid.endswith(">"):
				cid = cid[1:-1]
			cid = cid or f"item{i + 1}"
			part_ctx = _Ctx()
			try:
				inner = part.get_payload(decode=False)
				if not isinstance(inner, str):
					raise TypeError("nested multipart")
				i_method, i_target, i_headers, i_body = _parse_inner_request(inner)
				if outer_auth and not i_headers.get("authorization"):
					i_headers["authorization"] = outer_auth
				split = urllib.parse.urlsplit(i_target)
				if re.match(r"^/gmail/v1/", split.path or ""):
					resp = self._dispatch_api(
						i_method, split.path, split.query, i_headers, i_body, part_ctx, in_batch=True
					)
				else:
					resp = _json_resp(
						404, google_error_body(404, f"The requested URL {split.path} was not found.")
					)
			except ApiError as exc:
				resp = _error_resp(exc)
			except Exception:
				resp = _json_resp(
					400, google_error_body(400, "Failed to parse batch request part.", "badRequest")
				)
			answers.append((cid, resp))
		boundary = "batch_" + secrets.token_hex(12)
		out = []
		for cid, (status, hdrs, payload) in answers:
			try:
				phrase = HTTPStatus(status).phrase
			except ValueError:
				phrase = "Unknown"
			head = (
				f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{cid}>\r\n\r\n"
				f"HTTP/1.1 {status} {phrase}\r\n"
			)
			head += "".join(f"{k}: {v}\r\n" for k, v in hdrs)
			head += f"Content-Length: {len(payload)}\r\n\r\n"
			out.append(head.encode("utf-8") + payload + b"\r\n")
		out.append(f"--{boundary}--\r\n".encode())
		return 200, [("Content-Type", f"multipart/mixed; boundary={boundary}")], b"".join(out)


def _parse_inner_request(text: str) -> tuple[str, str, _CaseDict, bytes]:
	"""Split one ``application/http`` batch part into (method, target, headers, body)."""
	text = text.lstrip("\r\n")
	m = re.search(r"\r?\n\r?\n", text)
	head, body = (text[: m.start()], text[m.end() :]) if m else (text, "")
	lines = re.split(r"\r?\n", head)
	request_line = lines[0].strip().split()
	if len(request_line) < 2:
		raise ValueError("bad request line")
	method, target = request_line[0].upper(), request_line[1]
	items = []
	for line in lines[1:]:
		if line[:1] in (" ", "\t") and items:
			items[-1] = (items[-1][0], items[-1][1] + " " + line.strip())
		elif ":" in line:
			k, _, v = line.partition(":")
			items.append((k.strip(), v.strip()))
	headers = _CaseDict(items)
	data = body.encode("utf-8", "surrogateescape")
	length = headers.get("content-length")
	if length and length.isdigit() and int(length) <= len(data):
		data = data[: int(length)]
	elif data.endswith(b"\r\n"):
		data = data[:-2]
	return method, target, headers, data
