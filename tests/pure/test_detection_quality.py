"""Quality floor of the header-signal detector (bounce / automated / newsletter) on the 276 real corpus
messages, against the hand labels in ``tests/pure/data/detection_labels.json``.

The measurement is ``bench/detection.py`` (same code): parse each message, ``signals.detect`` on its
signal headers, From addr-spec and subject, ``signals.verdict``; no verdict = "person". The floors are
what the detector reaches today, a little rounded down, so a change that loses evidence fails here.
Automated recall is low, and its floor says so: 9 of the 12 automated messages (GitHub and Subversion
notifications, lead and contact-form relays, a fax report, an I-D announcement, a reminder) carry no
header, sender or subject evidence of being machine-made, only their prose says so (the three mirrored
to ASF lists are predicted newsletter from their list headers).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_detection", ROOT / "bench" / "detection.py")
detection = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_detection", detection)
_spec.loader.exec_module(detection)

#: label -> (precision floor, recall floor); every label has at least 3 examples in the corpus
FLOORS = {
	"bounce": (0.9, 0.9),  # today 1.000 / 0.909 (10 of 11; the miss has no report Content-Type)
	"automated": (0.9, 0.25),  # today 1.000 / 0.250 (3 of 12, see the module docstring)
	"newsletter": (0.95, 0.85),  # today 0.977 / 0.896 (list posts 123/124; spam without headers missed)
	"person": (0.8, 0.98),  # today 0.832 / 1.000 (its precision pays for the misses above)
}


@pytest.fixture(scope="module")
def result():
	assert detection.CORPUS.is_dir(), f"corpus not found at {detection.CORPUS} (set ATLAS_CORPUS)"
	res = detection.measure()
	detection.report(res)  # shown with -s or on failure
	return res


def test_labels_cover_the_corpus_and_are_well_formed():
	data = json.loads(detection.LABELS_FILE.read_text(encoding="utf-8"))
	assert list(data)[0] == "_method" and len(data["_method"]) > 200
	labels = detection.load_labels()
	files = sorted(str(p.relative_to(detection.CORPUS)) for p in detection.CORPUS.rglob("*.eml"))
	assert sorted(labels) == files and len(files) == 276
	for rel, entry in labels.items():
		assert entry["label"] in detection.LABELS, rel
		assert len(entry["how"]) >= 20, rel


@pytest.mark.parametrize("label", list(FLOORS))
def test_precision_and_recall_floor(result, label):
	row = result["per_label"][label]
	precision_floor, recall_floor = FLOORS[label]
	print(
		f"{label}: support {row['support']}, predicted {row['predicted']}, tp {row['tp']}, "
		f"precision {row['precision']:.3f}, recall {row['recall']:.3f}"
	)
	assert row["support"] >= 3
	assert row["precision"] >= precision_floor, result["errors"]
	assert row["recall"] >= recall_floor, result["errors"]


def test_no_person_mail_is_hidden_as_machine_mail(result):
	"""The costly error: a person's message filed away as a bounce or notification."""
	assert result["matrix"]["person"].get("bounce", 0) == 0
	assert result["matrix"]["person"].get("automated", 0) == 0


def test_list_posts_are_newsletter(result):
	hits, total = result["by_sub"][("newsletter", "list post")]
	assert total >= 100 and hits / total >= 0.98


def test_every_error_is_reported_with_its_evidence(result):
	wrong = sum(n for t, row in result["matrix"].items() for p, n in row.items() if p != t)
	assert len(result["errors"]) == wrong
	for e in result["errors"]:
		assert e["truth"] != e["predicted"] and isinstance(e["evidence"], list)
