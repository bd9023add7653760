"""Compatibility module: the Google test server now lives in the package
:mod:`atlas_integrations.testing.gmail` (split by concern: server, mailbox, mime, query, oauth, api,
batch, push, faults, stats, control, common, cli; see its docstring for what it models).

This module re-exports the public names it always had, so ``from atlas_integrations.testing.gmail_server
import GmailTestServer`` keeps working, and keeps the CLI::

	python -m atlas_integrations.testing.gmail_server --port 8765 \\
		--mailbox owner@example.com=/path/to/eml/dir --spread-days 20 --client ID:SECRET
"""

from __future__ import annotations

import sys

from atlas_integrations.testing.gmail import (  # noqa: F401 - re-exported
	ACCESS_TOKEN_TTL,
	AUTH_CODE_TTL,
	FIRST_HISTORY_ID,
	GOOGLE_ISSUER,
	MAX_BATCH_PARTS,
	MAX_BODY,
	PUSH_ACK_STATUSES,
	PUSH_USER_AGENT,
	QUOTA_UNITS,
	SCOPE_COMPOSE,
	SCOPE_FULL,
	SCOPE_INSERT,
	SCOPE_LABELS,
	SCOPE_METADATA,
	SCOPE_MODIFY,
	SCOPE_READONLY,
	SCOPE_SEND,
	SYSTEM_LABELS,
	TOPIC_RE,
	WATCH_TTL_MS,
	ApiError,
	GmailTestServer,
	Mailbox,
	Message,
	ParsedMail,
	b64_any_decode,
	b64url,
	build_query,
	google_error_body,
	main,
	parse_mail,
)

__all__ = ["QUOTA_UNITS", "SYSTEM_LABELS", "GmailTestServer", "Mailbox", "Message", "main"]

if __name__ == "__main__":
	sys.exit(main())
