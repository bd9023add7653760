"""The ``/_atlas/*`` control endpoints: the Python controls of :class:`GmailTestServer` over HTTP
(JSON bodies), for tests that drive a server running in another process (:class:`_ControlMixin`)."""

from __future__ import annotations

import json
import re
import urllib.parse

from atlas_integrations.testing.gmail.common import ApiError, _json_resp
from atlas_integrations.testing.gmail.mime import b64_any_decode


class _ControlMixin:
	"""``/_atlas/*`` of :class:`GmailTestServer`; each control calls the public method of the same name."""

	# -- /_atlas control endpoints --------------------------------------------------------------------
	def _control(self, method, path, query, body) -> tuple:
		"""``/_atlas/*``: the Python controls over HTTP (JSON bodies) for tests in another process.

		POST faults {path_regex, status, count, reason, retry_after, method, email} | DELETE faults;
		POST consent {email, action}; POST revoke {email}; POST insert {email, raw (base64), label_ids,
		internal_date_ms}; GET stats?email=; POST reset_stats {email}; POST expire_history {email};
		POST expire_access_tokens {email}; POST mailbox {email, sent_from}; POST client {client_id,
		client_secret}; POST load {email, path, spread_days, sent_from}; POST modify {email, id,
		add_label_ids, remove_label_ids}; POST delete {email, id}; POST tokens {email, client_id, scopes};
		GET messages?email= (dump_messages); POST push {endpoint_url, mode, audience, service_account,
		token, subscription, sign_with_wrong_key, max_attempts, retry_delay} (configure_push; endpoint_url
		null stops); GET push?email= (push_deliveries); DELETE push (clear_push_deliveries); GET
		watch?email= (watch_of); POST notify {email}.
		"""
		name = path[len("/_atlas/") :].strip("/")
		q = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
		try:
			data = json.loads(body.decode("utf-8")) if body.strip() else {}
			if not isinstance(data, dict):
				raise TypeError("JSON object expected")
		except (ValueError, TypeError) as exc:
			return _json_resp(400, {"error": f"bad JSON body: {exc}"})
		args = {**q, **data}
		m = method.upper()
		try:
			if name == "faults" and m == "POST":
				fid = self.inject_fault(
					args.get("path_regex") or args.get("path") or ".*",
					int(args.get("status", 500)),
					count=int(args.get("count", 1)),
					reason=args.get("reason"),
					retry_after=args.get("retry_after"),
					method=args.get("method"),
					email=args.get("email"),
				)
				return _json_resp(200, {"ok": True, "id": fid})
			if name == "faults" and m == "DELETE":
				self.clear_faults()
				return _json_resp(200, {"ok": True})
			if name == "faults" and m == "GET":
				return _json_resp(200, {"faults": self.pending_faults()})
			if name == "consent" and m == "POST":
				self.set_consent(args.get("email"), args.get("action") or "allow", args.get("scopes"))
				return _json_resp(200, {"ok": True})
			if name == "revoke" and m == "POST":
				return _json_resp(200, {"ok": True, "revoked": self.revoke_tokens(args["email"])})
			if name == "insert" and m == "POST":
				raw = b64_any_decode(args["raw"])
				mid = self.insert_message(
					args["email"],
					raw,
					label_ids=args.get("label_ids"),
					internal_date_ms=args.get("internal_date_ms"),
				)
				return _json_resp(200, {"id": mid, "threadId": self.mailbox(args["email"]).thread_of(mid)})
			if name == "stats" and m == "GET":
				return _json_resp(200, self.stats(args.get("email")))
			if name == "reset_stats" and m == "POST":
				self.reset_stats(args.get("email"))
				return _json_resp(200, {"ok": True})
			if name == "expire_history" and m == "POST":
				self.expire_history(args["email"])
				return _json_resp(200, {"ok": True})
			if name == "expire_access_tokens" and m == "POST":
				self.expire_access_tokens(args.get("email"))
				return _json_resp(200, {"ok": True})
			if name == "mailbox" and m == "POST":
				self.add_mailbox(args["email"], sent_from=args.get("sent_from"))
				return _json_resp(200, {"ok": True})
			if name == "client" and m == "POST":
				self.register_client(args["client_id"], args["client_secret"])
				return _json_resp(200, {"ok": True})
			if name == "load" and m == "POST":
				ids = self.load_eml_dir(
					args["email"],
					args["path"],
					spread_days=args.get("spread_days"),
					sent_from=args.get("sent_from"),
				)
				return _json_resp(200, {"ids": ids})
			if name == "modify" and m == "POST":
				labels = self.modify_message(
					args["email"],
					args["id"],
					args.get("add_label_ids") or [],
					args.get("remove_label_ids") or [],
				)
				return _json_resp(200, {"id": args["id"], "labelIds": labels})
			if name == "delete" and m == "POST":
				self.delete_message(args["email"], args["id"])
				return _json_resp(200, {"ok": True})
			if name == "tokens" and m == "POST":
				return _json_resp(
					200,
					self.issue_tokens(
						args["email"], client_id=args.get("client_id"), scopes=args.get("scopes")
					),
				)
			if name == "push" and m == "POST":
				self.configure_push(
					args.get("endpoint_url"),
					mode=args.get("mode") or "oidc",
					audience=args.get("audience"),
					service_account=args.get("service_account"),
					token=args.get("token"),
					subscription=args.get("subscription") or "projects/p/subscriptions/s",
					sign_with_wrong_key=bool(args.get("sign_with_wrong_key")),
					max_attempts=int(args.get("max_attempts", 3)),
					retry_delay=float(args.get("retry_delay", 0.2)),
				)
				return _json_resp(200, {"ok": True})
			if name == "push" and m == "GET":
				return _json_resp(200, {"deliveries": self.push_deliveries(args.get("email"))})
			if name == "push" and m == "DELETE":
				self.clear_push_deliveries()
				return _json_resp(200, {"ok": True})
			if name == "watch" and m == "GET":
				return _json_resp(200, {"watch": self.watch_of(args["email"])})
			if name == "notify" and m == "POST":
				return _json_resp(200, {"queued": self.notify(args["email"])})
			if name == "messages" and m == "GET":
				items = self.dump_messages(args["email"])
				return _json_resp(
					200, {"messages": items, "historyId": str(self.mailbox(args["email"]).history_id)}
				)
		except KeyError as exc:
			return _json_resp(400, {"error": f"missing or unknown: {exc}"})
		except ApiError as exc:
			return _json_resp(400, {"error": exc.message})
		except (ValueError, TypeError, OSError, re.error) as exc:
			return _json_resp(400, {"error": str(exc)})
		return _json_resp(404, {"error": f"unknown control {m} /_atlas/{name}"})
