"""A self-signed certificate for 127.0.0.1 / localhost, made at server start with ``cryptography``: the
server serves TLS with it and a client trusts it by its PEM file (``requests`` / MSAL ``verify=path``)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_certificate(directory: str | None = None) -> tuple[str, str]:
	"""Write a fresh key and a self-signed certificate for ``127.0.0.1`` and ``localhost`` (valid one day).

	Returns:
		``(certificate PEM path, key PEM path)`` in ``directory`` (a new temporary one when None).
	"""
	directory = directory or tempfile.mkdtemp(prefix="atlas-graph-tls-")
	key = ec.generate_private_key(ec.SECP256R1())
	name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Atlas local Graph server")])
	now = datetime.datetime.now(datetime.timezone.utc)
	cert = (
		x509.CertificateBuilder()
		.subject_name(name).issuer_name(name).public_key(key.public_key())
		.serial_number(x509.random_serial_number())
		.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
		.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
													x509.DNSName("localhost")]), critical=False)
		.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
		.sign(key, hashes.SHA256())
	)
	cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
	with open(cert_path, "wb") as f:
		f.write(cert.public_bytes(serialization.Encoding.PEM))
	with open(key_path, "wb") as f:
		f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
								  serialization.NoEncryption()))
	os.chmod(key_path, 0o600)
	return cert_path, key_path


def trusting_session(ca_path: str):
	"""A ``requests.Session`` that trusts ``ca_path`` on every request. Setting ``session.verify`` is not
	enough: where ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` is set, requests lets the environment's bundle
	win over the session's (psf/requests#3829), so the path is passed per request."""
	import functools

	import requests

	session = requests.Session()
	session.request = functools.partial(session.request, verify=ca_path)
	return session
