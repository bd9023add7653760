"""A local Microsoft-compatible server for tests and the demo (issue 19): the Microsoft identity platform's
OAuth 2.0 / OpenID Connect endpoints that MSAL for Python uses, and Microsoft Graph v1.0 as the app uses it,
over real HTTPS on 127.0.0.1 (MSAL refuses an ``http`` authority) with a certificate generated at start.

So far: the identity platform (OpenID configuration, ``/authorize``, ``/token`` with authorization code +
PKCE, rotating refresh tokens, client credentials, ``invalid_grant`` and consent errors) and ``/me``. Mail
folders, delta, ``$value``, ``$batch``, send and subscriptions come next.
"""

from atlas_integrations.testing.graph.server import GraphTestServer  # noqa: F401
