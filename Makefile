# Atlas Integrations — common tasks. See README.md.
SHELL := /bin/bash
.PHONY: demo demo-mail demo-check stop test bench bench-sync bench-quota bench-outlook bench-guard bench-adversarial

demo:        ## the bench and the demo's own site, the live desk under honcho, the corpus mailbox synced, Xero
	bash scripts/demo.sh

demo-mail:   ## one more corpus message arrives in the demo mailbox (Gmail pushes it; the page shows it live)
	bash scripts/demo-mail.sh

demo-check:  ## the running demo's desk is live: page updates, reply, Sync now (headless Chromium)
	bash scripts/demo-check.sh

stop:        ## end the demo's live desk
	bash scripts/stop.sh

test:        ## the whole test suite (real-site tests need the bench; skipped loudly without it)
	bash scripts/test.sh -q -ra

bench:       ## build or refresh the Frappe v15 + ERPNext bench at $${ATLAS_BENCH:-~/atlas-bench}
	bash scripts/bench.sh

bench-sync:  ## benchmark: initial sync of 10,000 messages into the real site, Smart Inbox pipeline off then on
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/initial_sync.py --pipeline off
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/initial_sync.py --pipeline on

bench-quota: ## benchmark: initial sync of 10,000 messages at Google's per-user quota; then 4 mailboxes on 2 workers
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/initial_sync.py --quota 15000
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/initial_sync.py --quota 15000 --mailboxes 4 --workers 2

bench-outlook: ## benchmark: an Outlook mailbox of 10,000 messages synced through Graph, unthrottled, then at Graph's limits
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/outlook_sync.py --throttle off
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/outlook_sync.py --throttle on

bench-guard: ## benchmark: what the mail guard costs an RPC request (microseconds)
	bash scripts/run-in-bench.sh bench/mail_guard.py

bench-adversarial: ## benchmark: hostile messages of ~100 KB through every stage and the whole pipeline
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/adversarial.py
