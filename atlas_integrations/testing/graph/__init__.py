"""A local Microsoft-compatible server for tests and the demo (issue 19): the Microsoft identity platform's
OAuth 2.0 / OpenID Connect endpoints that MSAL for Python uses, and Microsoft Graph v1.0 as the app uses it,
over real HTTPS on 127.0.0.1 (MSAL refuses an ``http`` authority) with a certificate generated at start.

So far: the identity platform (``identity.py``: OpenID configuration, ``/authorize``, ``/token`` with
authorization code + PKCE, rotating refresh tokens, client credentials, ``invalid_grant`` and consent
errors), mailboxes (``mail.py``: well-known folders, messages as RFC 822 bytes with immutable ids, a change
log) and Graph mail reads (``api.py``: ``/me`` and ``/users/{address}``, mail folders, per-folder message
delta with ``@removed`` and 410, ``$value``, ``$batch``) under Graph's per-mailbox limits (``throttle.py``:
4 concurrent requests, a batch holding 4; 10,000 requests per 10 minutes counting a batch's requests; 429
with ``Retry-After``), and mail writes (``write.py``: PATCH isRead / categories / flag and a draft's
content and single-value extended properties, move, createReply, send, sendMail, the ``$filter`` on an
extended property; every sent message recorded in ``server.sent``), and change notifications
(``notify.py``: subscriptions with the validation handshake, renew / delete / expiry, a notification per
message created / updated / deleted in the folder with ``clientState``, lifecycle events on request),
injected faults (``faults.py``: an error instead of the work, or the work done and its answer lost) and a
command line (``python -m atlas_integrations.testing.graph --help``).
"""

from atlas_integrations.testing.graph.server import GraphTestServer  # noqa: F401
