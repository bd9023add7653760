# Atlas Integrations — common tasks. See README.md.
SHELL := /bin/bash
.PHONY: demo test bench bench-sync bench-guard bench-adversarial

demo:        ## build the bench if needed, sync the corpus mailbox into the real site, print the result
	bash scripts/demo.sh

test:        ## the whole test suite (real-site tests need the bench; skipped loudly without it)
	bash scripts/test.sh -q -ra

bench:       ## build or refresh the Frappe v15 + ERPNext bench at $${ATLAS_BENCH:-~/atlas-bench}
	bash scripts/bench.sh

bench-sync:  ## benchmark: initial sync of 10,000 messages into the real site, Smart Inbox pipeline off then on
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/initial_sync.py --pipeline off
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/initial_sync.py --pipeline on

bench-guard: ## benchmark: what the mail guard costs an RPC request (microseconds)
	bash scripts/run-in-bench.sh bench/mail_guard.py

bench-adversarial: ## benchmark: hostile messages of ~100 KB through every stage and the whole pipeline
	flock /tmp/atlas-site.lock bash scripts/run-in-bench.sh bench/adversarial.py
