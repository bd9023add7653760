"""Keep secrets out of every text Atlas stores or shows (Sync Job errors, Error Log, API answers)."""

from __future__ import annotations

import re

# Bearer/OAuth material that must never reach a log, an Error Log or a Sync Job.
_SECRET_PATTERNS = [
	re.compile(r"ya29\.[0-9A-Za-z\-_\.]+"),  # Google access tokens
	re.compile(r"1//[0-9A-Za-z\-_]+"),  # Google refresh tokens
	re.compile(r"(?i)(bearer\s+)[^\s,;\"']+"),
	re.compile(r"(?i)((?:access_token|refresh_token|client_secret|code|code_verifier)[\"']?\s*[=:]\s*[\"']?)[^\s&,;\"'}]+"),
]


def scrub(text: str | None, secrets: list[str | None] | tuple = ()) -> str:
	"""Remove secrets from ``text``: the given literal values and anything shaped like a token.

	Args:
		text: any message (exception text, provider error body).
		secrets: literal secret values known to the caller (tokens, client secret).

	Returns:
		The text with each secret replaced by ``***``; at most 2,000 characters.
	"""
	text = str(text or "")
	for value in secrets:
		if value and len(value) >= 6:
			text = text.replace(value, "***")
	for pattern in _SECRET_PATTERNS:
		text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
	return text[:2000]
