"""A local Google-compatible Gmail v1 + OAuth 2.0 server for tests and demos.

The real ``google-api-python-client``, ``google-auth`` and ``google-auth-oauthlib`` talk to it over real
HTTP on 127.0.0.1, so a test exercises the same request framing, retries, token refreshes and batch
parsing that production does. Pure standard library: it never imports frappe and runs under any Python
>= 3.10.

Usage (Python)::

	server = GmailTestServer().start()
	server.register_client("cid", "secret")
	server.load_eml_dir("owner@example.com", "/work/shared/corpus", spread_days=20)
	...  # point Credentials(token_uri=server.url + "token") and build(..., client_options={"api_endpoint": server.url})
	server.stop()

Usage (CLI)::

	python -m atlas_integrations.testing.gmail_server --port 8765 \\
		--mailbox owner@example.com=/path/to/eml/dir --spread-days 20 --client ID:SECRET

It prints ``ready http://127.0.0.1:PORT/`` once listening and serves until killed. Tests in another
process drive it through ``/_atlas/*`` (see :meth:`GmailTestServer._control`).

What it models (shapes as Google documents them):

* OAuth 2.0: ``GET /o/oauth2/auth`` (consent is automatic: allow / deny / no_refresh), ``POST /token``
  (authorization_code with PKCE S256/plain, refresh_token), ``POST /revoke``, plus
  ``/oauth2/v3/userinfo`` and ``/oauth2/v3/tokeninfo``.
* Gmail v1 under ``/gmail/v1/users/{userId}/``: profile, labels, messages (list/get/modify/batchModify/
  trash/untrash/delete/batchDelete/send/insert/import/attachments), threads, history, watch/stop, and the
  ``/upload/gmail/v1/...`` media forms of send/insert/import.
* ``POST /batch/gmail/v1`` (and ``/batch``): Google's multipart/mixed batch; every part goes through the
  same dispatcher as a direct call, so faults, auth and stats apply per part.
* Per-mailbox stats with Gmail quota units, fault injection, token revocation and history expiry.
* Gmail push notifications (Gmail "Push notifications" guide): ``users.watch`` / ``users.stop`` keep a
  watch per mailbox; with :meth:`GmailTestServer.configure_push` every later mailbox change of a watched
  mailbox is delivered in a background thread as a Cloud Pub/Sub push request (JSON envelope, OIDC
  bearer JWT signed RS256 by a key of this server, or ``?token=`` shared token). ``GET
  /oauth2/v1/certs`` serves the signing certificate as Google does (``{kid: X.509 PEM}``), so
  ``google.oauth2.id_token.verify_token(..., certs_url=server.url + "oauth2/v1/certs")`` verifies the
  JWT. Signing needs ``cryptography`` (imported only then).

Choices where Google is unspecified or this server simplifies:

* ``after:``/``before:`` dates written ``YYYY/MM/DD`` are midnight **UTC** (Gmail uses the account's time
  zone); ``after:`` is inclusive (>=), ``before:`` exclusive (<). Free-text words and unknown operators are
  ignored (they match everything).
* Header values in ``payload.headers`` are unfolded and RFC 2047-decoded; ``body.data`` is the part's
  content-transfer-decoded bytes in its declared charset (no charset conversion).
* ``threadId`` is the id of the earliest (internalDate, then insertion order) message of the
  union-find component built from Message-ID / In-Reply-To / References.
* Quota units are charged for calls that pass authentication and are not answered by an injected fault.
* Push notifications of one mailbox are coalesced: while a delivery is queued and not yet sent, further
  changes ride on it (it carries the historyId current when it is sent), as Gmail drops notifications
  over its per-user rate. A delivery that is not acknowledged (Pub/Sub acks 102, 200, 201, 202, 204) is
  retried a few times with a short doubling delay, then recorded as failed (Pub/Sub would keep retrying
  until the message expires).
  ``http_requests`` counts Gmail HTTP requests only (direct calls and batch envelopes); OAuth token
  endpoint hits are counted separately in ``token_requests``.

Modules (the package ``atlas_integrations.testing.gmail``; ``atlas_integrations.testing.gmail_server``
re-exports its public names and keeps the CLI):

* ``server``: :class:`GmailTestServer` (state, lifecycle, request router) and the HTTP plumbing.
* ``mailbox``: :class:`Message`, :class:`Mailbox` (messages, labels, history, threads) and the
  mailbox methods: ``.eml`` loading, test-side changes, history-recording mutations.
* ``mime``: text decoding helpers and the RFC 822 parser (:func:`parse_mail`).
* ``query``: the Gmail search string (``q=``, :func:`build_query`).
* ``oauth``: OAuth clients, consent, grants and tokens, and the OAuth endpoints; the scope names.
* ``api``: Gmail v1 REST: routes, scopes and quota per method, dispatch, rendering, handlers.
* ``batch``: the multipart/mixed batch endpoint.
* ``push``: users.watch push delivery as Pub/Sub push requests, OIDC signing and certs.
* ``faults``: fault injection. ``stats``: per-mailbox counters. ``control``: ``/_atlas/*``.
* ``common``: the clock, Google's JSON error format, response tuples, header mapping, request context.
* ``cli``: ``main``, the command line.
"""

from __future__ import annotations

from atlas_integrations.testing.gmail.api import (  # noqa: F401 - re-exported
	QUOTA_UNITS,
	TOPIC_RE,
	WATCH_TTL_MS,
)
from atlas_integrations.testing.gmail.batch import (  # noqa: F401 - re-exported
	MAX_BATCH_PARTS,
)
from atlas_integrations.testing.gmail.cli import (  # noqa: F401 - re-exported
	main,
)
from atlas_integrations.testing.gmail.common import (  # noqa: F401 - re-exported
	ApiError,
	google_error_body,
)
from atlas_integrations.testing.gmail.mailbox import (  # noqa: F401 - re-exported
	FIRST_HISTORY_ID,
	SYSTEM_LABELS,
	Mailbox,
	Message,
)
from atlas_integrations.testing.gmail.mime import (  # noqa: F401 - re-exported
	ParsedMail,
	b64_any_decode,
	b64url,
	parse_mail,
)
from atlas_integrations.testing.gmail.oauth import (  # noqa: F401 - re-exported
	ACCESS_TOKEN_TTL,
	AUTH_CODE_TTL,
	SCOPE_COMPOSE,
	SCOPE_FULL,
	SCOPE_INSERT,
	SCOPE_LABELS,
	SCOPE_METADATA,
	SCOPE_MODIFY,
	SCOPE_READONLY,
	SCOPE_SEND,
)
from atlas_integrations.testing.gmail.push import (  # noqa: F401 - re-exported
	GOOGLE_ISSUER,
	PUSH_ACK_STATUSES,
	PUSH_USER_AGENT,
)
from atlas_integrations.testing.gmail.query import (  # noqa: F401 - re-exported
	build_query,
)
from atlas_integrations.testing.gmail.server import (  # noqa: F401 - re-exported
	MAX_BODY,
	GmailTestServer,
)

__all__ = ["QUOTA_UNITS", "SYSTEM_LABELS", "GmailTestServer", "Mailbox", "Message", "main"]
