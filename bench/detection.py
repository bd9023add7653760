"""Benchmark: precision and recall of the header-signal detector (bounce / automated / newsletter) on the
real corpus.

Every message labelled in ``tests/pure/data/detection_labels.json`` (the truth, decided by reading the
messages, see its ``_method``) is parsed with :func:`atlas_integrations.inbox.mime.parse_message`; the
detector then sees exactly what the pipeline gives it: the parsed ``signal_headers``, the From addr-spec
and the decoded subject (:func:`atlas_integrations.inbox.signals.detect` + ``verdict``; no provider
categories, the corpus has none). A message with no verdict is predicted "person".

Prints, per label: how many messages carry it (support), how many the detector gave it (predicted), the
true positives, precision and recall; the confusion matrix; recall per finer kind ("sub" in the labels:
list post, spam, DSN ...); and every message the detector got wrong with the evidence it used.

    /root/atlas-bench/env/bin/python bench/detection.py
    /root/atlas-bench/env/bin/python bench/detection.py --corpus /path/to/corpus --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
	sys.path.insert(0, str(ROOT))

from atlas_integrations.inbox import signals  # noqa: E402
from atlas_integrations.inbox.mime import parse_message  # noqa: E402

LABELS_FILE = ROOT / "tests" / "pure" / "data" / "detection_labels.json"
CORPUS = Path(os.environ.get("ATLAS_CORPUS", ROOT.parent / "shared" / "corpus"))
LABELS = ("bounce", "automated", "newsletter", "person")


def load_labels(path: Path = LABELS_FILE) -> dict[str, dict]:
	"""file (relative to the corpus root) -> {"label", "sub", "how"}; the ``_``-keys (method) left out."""
	data = json.loads(Path(path).read_text(encoding="utf-8"))
	return {k: v for k, v in data.items() if not k.startswith("_")}


def predict(raw: bytes) -> tuple[str, list[str]]:
	"""The detector's label for one raw message ("person" when no verdict) and its evidence strings."""
	parsed = parse_message(raw)
	found = signals.detect(parsed.signal_headers, parsed.sender[1], parsed.subject)
	return signals.verdict(found) or "person", [str(s) for s in found]


def measure(corpus: Path = CORPUS, labels_file: Path = LABELS_FILE) -> dict:
	"""Run the detector over every labelled message.

	Returns:
		``{"per_label": {label: {support, predicted, tp, precision, recall}}, "matrix": {truth: {pred: n}},
		"by_sub": {(label, sub): [hits, total]}, "errors": [{file, truth, predicted, sub, evidence, how}],
		"total": n}``. Precision is None for a label the detector never gave, recall None for a label no
		message carries.
	"""
	truth = load_labels(labels_file)
	matrix = {t: Counter() for t in LABELS}
	by_sub: dict[tuple[str, str], list[int]] = {}
	errors = []
	for rel in sorted(truth):
		want = truth[rel]["label"]
		got, evidence = predict((Path(corpus) / rel).read_bytes())
		matrix[want][got] += 1
		cell = by_sub.setdefault((want, truth[rel].get("sub", "")), [0, 0])
		cell[0] += got == want
		cell[1] += 1
		if got != want:
			errors.append(
				{
					"file": rel,
					"truth": want,
					"predicted": got,
					"sub": truth[rel].get("sub", ""),
					"evidence": evidence,
					"how": truth[rel]["how"],
				}
			)
	per_label = {}
	for label in LABELS:
		support = sum(matrix[label].values())
		predicted = sum(matrix[t][label] for t in LABELS)
		tp = matrix[label][label]
		per_label[label] = {
			"support": support,
			"predicted": predicted,
			"tp": tp,
			"precision": tp / predicted if predicted else None,
			"recall": tp / support if support else None,
		}
	return {
		"per_label": per_label,
		"matrix": {t: dict(matrix[t]) for t in LABELS},
		"by_sub": by_sub,
		"errors": errors,
		"total": len(truth),
	}


def _pct(value: float | None) -> str:
	return "  n/a" if value is None else f"{value:5.3f}"


def report(result: dict, out=sys.stdout) -> None:
	"""Print ``result`` of :func:`measure` as tables."""
	p = lambda *a: print(*a, file=out)  # noqa: E731
	p(f"header-signal detection on {result['total']} labelled messages\n")
	p(f"{'label':<11} {'support':>7} {'predicted':>9} {'tp':>4} {'precision':>9} {'recall':>7}")
	for label, row in result["per_label"].items():
		p(
			f"{label:<11} {row['support']:>7} {row['predicted']:>9} {row['tp']:>4} "
			f"{_pct(row['precision']):>9} {_pct(row['recall']):>7}"
		)
	p("\nconfusion matrix (rows: truth, columns: predicted)")
	p(f"{'':<11} " + " ".join(f"{c:>10}" for c in LABELS))
	for truth in LABELS:
		p(f"{truth:<11} " + " ".join(f"{result['matrix'][truth].get(c, 0):>10}" for c in LABELS))
	p("\nrecall by finer kind")
	for (label, sub), (hits, total) in sorted(result["by_sub"].items()):
		p(f"  {label:<11} {sub:<13} {hits:>4}/{total:<4} {hits / total:5.3f}")
	p(f"\nmisclassified ({len(result['errors'])}): file | truth -> predicted | evidence")
	for e in result["errors"]:
		p(f"  {e['file']} | {e['truth']} -> {e['predicted']} | {'; '.join(e['evidence']) or '(no signal)'}")
		p(f"      truth: {e['how']}")


def main(argv: list[str] | None = None) -> int:
	parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
	parser.add_argument("--corpus", type=Path, default=CORPUS, help=f"corpus root (default {CORPUS})")
	parser.add_argument("--labels", type=Path, default=LABELS_FILE, help="labels JSON")
	parser.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
	args = parser.parse_args(argv)
	result = measure(args.corpus, args.labels)
	if args.json:
		result = {**result, "by_sub": {f"{k[0]}/{k[1]}": v for k, v in result["by_sub"].items()}}
		print(json.dumps(result, indent=1))
	else:
		report(result)
	return 0


if __name__ == "__main__":
	sys.exit(main())
