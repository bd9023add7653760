"""Optional LLM backend of triage: any OpenAI-compatible chat completions endpoint may refine the category,
priority and summary of the offline result (:func:`atlas_integrations.inbox.triage.classify`).

Protocol: the OpenAI Chat Completions API, ``POST {base_url}/chat/completions``
(https://platform.openai.com/docs/api-reference/chat/create) with JSON mode,
``response_format = {"type": "json_object"}``
(https://platform.openai.com/docs/guides/structured-outputs#json-mode). Any server speaking it works
(OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM, llama.cpp ...); the tests use the local fake
:class:`atlas_integrations.testing.llm_server.FakeLLM`.

The offline result is the default and always stands when the backend cannot give a valid answer: on a
timeout, a connection error, a non-2xx status, a malformed body or an answer outside the allowed values,
:func:`refine` returns the original result with one signal saying why, e.g.
``"llm unavailable (timeout); offline result kept"``. It never raises, and neither the API key nor the
request body ever reaches a signal, a log or an exception text. Mail whose ``kind`` was decided by its
headers (automated, bounce, newsletter) is not sent at all, and neither is a body the mailbox does not
store (``text=None``: only sender and subject are sent).

Pure Python (``requests``); no Frappe needed.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from typing import Any

import requests

from atlas_integrations.inbox import triage

#: characters of the message text sent to the backend
MAX_TEXT = 4000
#: longest summary accepted from the backend (characters, one line)
MAX_SUMMARY = 300
#: confidence assumed when the answer gives none
DEFAULT_CONFIDENCE = 0.8
#: default time budget of one request, in seconds
DEFAULT_TIMEOUT = 5.0
#: largest response body read, in bytes
MAX_RESPONSE = 1024 * 1024
_MAX_SUBJECT = 500
_MAX_SENDER = 320
_MAX_MODEL_IN_SIGNAL = 80


class _Unavailable(Exception):
	"""Internal: why the backend gave no usable answer. Its text is a fixed, secret-free reason."""


def system_prompt() -> str:
	"""The system message: the allowed categories and priorities and the JSON object to answer with.

	Returns:
		The prompt text (str).
	"""
	categories = "\n".join(f"- {c}" for c in triage.CATEGORIES)
	priorities = ", ".join(triage.PRIORITIES)
	return (
		"You triage business email for a small company. Classify the message you are given.\n"
		f"Allowed categories (use one exactly as written):\n{categories}\n"
		f"Allowed priorities (use one exactly as written): {priorities}\n"
		"Answer with a single JSON object and nothing else, with these keys:\n"
		'{"category": <one allowed category>, "priority": <one allowed priority>, '
		f'"summary": <one line of at most {MAX_SUMMARY} characters saying what the sender wants>, '
		'"confidence": <a number from 0 to 1>}'
	)


def user_prompt(*, subject: str, text: str | None, sender: str) -> str:
	"""The user message: sender, subject and, only when ``text`` is not None, the text (first
	:data:`MAX_TEXT` characters).

	Args:
		subject: decoded subject.
		text: plain-text body, or None when the mailbox stores snippets only (then no text is sent).
		sender: the sender's address (or "Name <address>").

	Returns:
		The prompt text (str).
	"""
	lines = [f"Sender: {(sender or '').strip()[:_MAX_SENDER]}",
			 f"Subject: {' '.join((subject or '').split())[:_MAX_SUBJECT]}"]
	if text is not None:
		lines += ["", "Text:", text[:MAX_TEXT]]
	return "\n".join(lines)


def refine(result: triage.Triage, *, subject: str, text: str | None, sender: str, base_url: str, model: str,
		   api_key: str, timeout: float = DEFAULT_TIMEOUT, session=None) -> triage.Triage:
	"""Ask an OpenAI-compatible chat completions endpoint for category, priority and summary.

	Sends ``POST {base_url.rstrip('/')}/chat/completions`` (OpenAI Chat Completions API) with
	``Authorization: Bearer <api_key>`` and the JSON body ``{"model", "temperature": 0,
	"response_format": {"type": "json_object"}, "messages": [system, user]}``. The assistant message
	content (``choices[0].message.content``) must be a JSON object ``{"category": str, "priority": str,
	"summary": str, "confidence": float (optional)}``, validated strictly: category in
	:data:`triage.CATEGORIES`, priority in :data:`triage.PRIORITIES`, summary a non-empty single line of at
	most :data:`MAX_SUMMARY` characters, confidence a number 0..1 (default :data:`DEFAULT_CONFIDENCE`).

	Args:
		result: the offline :class:`triage.Triage`. When its ``kind`` is non-empty (automated, bounce,
			newsletter: decided by headers) no request is made and it is returned unchanged.
		subject: decoded subject.
		text: plain-text body, truncated to :data:`MAX_TEXT` characters; None when the mailbox stores
			snippets only: then no text at all is sent.
		sender: the sender's address.
		base_url: the API root, e.g. ``"https://api.openai.com/v1"`` or ``"http://127.0.0.1:8000/v1"``.
		model: model name sent as ``model``.
		api_key: the already-decrypted key, sent only in the Authorization header.
		timeout: time budget of the whole request in seconds (connect, wait and read).
		session: optional ``requests.Session`` (or anything with its ``post``); default ``requests``.

	Returns:
		On success a NEW :class:`triage.Triage` with the answer's category, priority, summary and
		confidence, the original ``kind``, and the original signals plus ``"llm <model>: <category>,
		<priority>"``. Otherwise the ORIGINAL ``result`` (same object) with one signal appended, e.g.
		``"llm unavailable (timeout); offline result kept"``. Never raises.
	"""
	if result.kind:
		return result
	try:
		answer = _ask(subject=subject, text=text, sender=sender, base_url=base_url, model=model,
					  api_key=api_key, timeout=timeout, session=session)
		category, priority, summary, confidence = _validate(answer)
	except _Unavailable as e:
		result.signals.append(f"llm unavailable ({e}); offline result kept")
		return result
	except Exception:  # never let the optional backend stop triage, nor leak anything through its text
		result.signals.append("llm unavailable (error); offline result kept")
		return result
	name = " ".join(str(model).split())[:_MAX_MODEL_IN_SIGNAL]
	return replace(result, category=category, priority=priority, summary=summary, confidence=confidence,
				   signals=[*result.signals, f"llm {name}: {category}, {priority}"])


def _ask(*, subject: str, text: str | None, sender: str, base_url: str, model: str, api_key: str,
		 timeout: float, session) -> Any:
	"""POST the request; return the parsed JSON of the assistant message content. Raises
	:class:`_Unavailable` with a fixed reason."""
	base_url = (base_url or "").strip()
	if not base_url or not model:
		raise _Unavailable("not configured")
	if not base_url.lower().startswith(("http://", "https://")):
		raise _Unavailable("bad base URL")
	try:
		budget = float(timeout)
	except (TypeError, ValueError):
		budget = DEFAULT_TIMEOUT
	if not math.isfinite(budget) or budget <= 0:
		budget = DEFAULT_TIMEOUT
	payload = {
		"model": model,
		"temperature": 0,
		"response_format": {"type": "json_object"},
		"messages": [
			{"role": "system", "content": system_prompt()},
			{"role": "user", "content": user_prompt(subject=subject, text=text, sender=sender)},
		],
	}
	headers = {"Authorization": f"Bearer {api_key or ''}", "Content-Type": "application/json",
			   "Accept": "application/json"}
	deadline = time.monotonic() + budget
	poster = session if session is not None else requests
	try:
		resp = poster.post(f"{base_url.rstrip('/')}/chat/completions", json=payload, headers=headers,
						   timeout=(budget, budget), stream=True, allow_redirects=False)
		try:
			if not 200 <= resp.status_code < 300:
				raise _Unavailable(f"HTTP {int(resp.status_code)}")
			raw = bytearray()
			for chunk in resp.iter_content(chunk_size=16384):
				raw += chunk
				if len(raw) > MAX_RESPONSE:
					raise _Unavailable("response too large")
				if time.monotonic() > deadline:
					raise _Unavailable("timeout")
		finally:
			resp.close()
	except _Unavailable:
		raise
	except requests.Timeout:
		raise _Unavailable("timeout") from None
	except requests.ConnectionError:
		# requests reports a read timeout in the middle of a streamed body as a ConnectionError
		raise _Unavailable("timeout" if time.monotonic() >= deadline else "connection error") from None
	except requests.RequestException:
		raise _Unavailable("request error") from None
	if time.monotonic() > deadline:
		raise _Unavailable("timeout")
	try:
		body = json.loads(bytes(raw).decode("utf-8"))
		content = body["choices"][0]["message"]["content"]
	except (ValueError, KeyError, IndexError, TypeError):
		raise _Unavailable("bad response") from None
	if not isinstance(content, str):
		raise _Unavailable("bad response")
	try:
		return json.loads(content)
	except ValueError:
		raise _Unavailable("bad JSON") from None


def _validate(answer: Any) -> tuple[str, str, str, float]:
	"""Strictly check the answer object; return ``(category, priority, summary, confidence)``. Raises
	:class:`_Unavailable` naming the first bad field (never its value)."""
	if not isinstance(answer, dict):
		raise _Unavailable("bad JSON")
	category, priority, summary = answer.get("category"), answer.get("priority"), answer.get("summary")
	if not isinstance(category, str) or category not in triage.CATEGORIES:
		raise _Unavailable("invalid category")
	if not isinstance(priority, str) or priority not in triage.PRIORITIES:
		raise _Unavailable("invalid priority")
	if not isinstance(summary, str):
		raise _Unavailable("invalid summary")
	summary = summary.strip()
	if not summary or len(summary) > MAX_SUMMARY or len(summary.splitlines()) != 1:
		raise _Unavailable("invalid summary")
	confidence = answer.get("confidence")
	if confidence is None:
		confidence = DEFAULT_CONFIDENCE
	elif isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
		raise _Unavailable("invalid confidence")
	confidence = float(confidence)
	if not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
		raise _Unavailable("invalid confidence")
	return category, priority, summary, round(confidence, 2)


def settings_from(doc_or_dict) -> dict | None:
	"""The keyword arguments of :func:`refine` from settings (e.g. the Atlas Settings document).

	Args:
		doc_or_dict: a dict or an object (a Frappe document) with ``llm_base_url``, ``llm_model``, an
			already-decrypted ``llm_api_key`` and optionally ``llm_timeout_seconds`` (seconds).

	Returns:
		``{"base_url": str, "model": str, "api_key": str, "timeout": float}`` (timeout in seconds, default
		:data:`DEFAULT_TIMEOUT`), or None when the base URL or the model is empty (offline classifier only).
	"""
	if doc_or_dict is None:
		return None

	def get(name: str):
		if isinstance(doc_or_dict, dict):
			return doc_or_dict.get(name)
		return getattr(doc_or_dict, name, None)

	base_url = str(get("llm_base_url") or "").strip()
	model = str(get("llm_model") or "").strip()
	if not base_url or not model:
		return None
	try:
		timeout = float(get("llm_timeout_seconds") or 0)
	except (TypeError, ValueError):
		timeout = 0.0
	if not math.isfinite(timeout) or timeout <= 0:
		timeout = DEFAULT_TIMEOUT
	return {"base_url": base_url, "model": model, "api_key": str(get("llm_api_key") or ""),
			"timeout": timeout}
