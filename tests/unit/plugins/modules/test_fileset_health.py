"""fileset_health (full_recovery.yml's files component, runbook 002) through main() on real files
and real sets: what it finds damaged, and which set it would restore from - the newest one whose
copies of the damaged files are good, the newer ones passed over with the reason."""

from __future__ import annotations

import json
import time

import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _fileset
from ansible_collections.tradeops.dr.plugins.modules import fileset_health
from conftest import run_module

FILES = {
    "config/config.toml": "[trading]\n[risk]\n[live]\n",
    "config/strategy.yaml": "strategy: momentum\n",
    "state/engine.json": '{"last_order_id": 4242}\n',
    "state/positions.json": '{"USDCOP": 10}\n',
    "data/fills.csv": "id,symbol,qty\n1,USDCOP,10\n2,EURUSD,-3\n",
    "data/notes.txt": "not a known type: presence only\n",
}


@pytest.fixture
def host(tmp_path):
    root = tmp_path / "srv"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    sources = {c: [str(root / c)] for c in ("config", "state", "data")}
    return root, sources, tmp_path / "sets"


def args(root, sources, sets=None, **kw):
    a = dict(sources=sources, critical=[str(root / "state/positions.json"), str(root / "data/fills.csv")],
             required_sections={str(root / "config/config.toml"): ["trading", "risk", "live"]}, **kw)
    if sets:
        a["backup_root"] = str(sets)
    return a


def diagnose(capsys, *a, **kw):
    out, failed = run_module(fileset_health, args(*a, **kw), capsys)
    assert not failed, out
    assert out["changed"] is False
    return out["files"]


def test_healthy_files_parse_and_the_newest_set_is_named(host, capsys):
    root, sources, sets = host
    _fileset.create(str(sets), sources, "full", now=time.time() - 60)
    files = diagnose(capsys, root, sources, sets)
    assert files["healthy"] is True and files["problems"] == [] and files["damaged"] == {}
    assert files["checked"] == {"toml": 1, "yaml": 1, "json": 2, "csv": 1}
    assert files["newest_set"]["backup_id"].startswith("full_") and files["restore_from"] is None


@pytest.mark.parametrize("damage, words, category", [
    (lambda r: (r / "state/engine.json").write_text('{"last_order_id": 0'), "engine.json: not valid JSON", "state"),
    (lambda r: (r / "state/positions.json").unlink(), "positions.json: missing (a critical file)", "state"),
    (lambda r: (r / "data/fills.csv").write_text("id,symbol,qty\n1,USDCOP,10\n2,EUR"),
     "fills.csv: row 3 has 2 fields, the header 3 (cut short or corrupted)", "data"),
    (lambda r: (r / "data/fills.csv").write_text(""), "fills.csv: empty", "data"),
    (lambda r: (r / "config/config.toml").write_text("[trading]\n[risk]\n"),
     "config.toml: missing required section(s) live", "config"),
    (lambda r: (r / "config/strategy.yaml").write_text("strategy: [momentum\n"), "strategy.yaml: not valid YAML",
     "config"),
    (lambda r: __import__("shutil").rmtree(r / "data"), "data: missing (the data root)", "data"),
])
def test_each_kind_of_damage_is_named_with_its_category(host, capsys, damage, words, category):
    root, sources, _sets = host
    damage(root)
    files = diagnose(capsys, root, sources)
    assert files["healthy"] is False
    assert any(words in p for p in files["problems"]), files["problems"]
    assert list(files["damaged"]) == [category]


def test_the_set_chosen_is_the_newest_with_good_copies_of_what_is_damaged(host, capsys):
    root, sources, sets = host
    now = time.time()
    good, _m = _fileset.create(str(sets), sources, "full", now=now - 300)
    _fileset.create(str(sets), sources, "config", now=now - 240)  # newer, but holds no state
    (root / "state/engine.json").write_text('{"last_order_id": 0')  # a write cut short ...
    after, _m = _fileset.create(str(sets), sources, "state", now=now - 180)  # ... and backed up so
    tampered, _m = _fileset.create(str(sets), sources, "full", now=now - 120)
    (next((sets / tampered.split("/")[-1] / "files" / "state").rglob("positions.json"))).write_text("{}")
    _fileset.create(str(sets), sources, "pre-restore", now=now - 60)  # evidence, never a recovery point
    files = diagnose(capsys, root, sources, sets)
    assert files["restore_from"]["backup_id"] == good.split("/")[-1]
    assert files["restore_from"]["categories"] == ["state"] and files["restore_from"]["type"] == "full"
    passed = " | ".join(files["passed_over"])
    assert "failed verification" in passed and "holds damaged copies too" in passed and "does not hold state" in passed
    assert "pre-restore" not in passed
    # the chosen set's copy really parses
    metadata = json.loads((sets / good.split("/")[-1] / "metadata.json").read_text())
    assert any(f["path"] == "engine.json" for f in metadata["files"])


def test_sets_older_than_the_one_named_are_not_read(host, capsys):
    """Every set is verified by hashing each of its files, and the hourly health check runs the diagnosis: it reads
    sets newest first only until it has what it names (it hashed every set, however many hourly sets piled up)."""
    root, sources, sets = host
    now = time.time()
    old, _m = _fileset.create(str(sets), sources, "full", now=now - 600)
    (next((sets / old.split("/")[-1] / "files" / "state").rglob("engine.json"))).write_text("{}")  # tampered
    newer, _m = _fileset.create(str(sets), sources, "full", now=now - 60)
    files = diagnose(capsys, root, sources, sets)
    assert files["healthy"] is True and files["newest_set"]["backup_id"] == newer.split("/")[-1]
    assert files["passed_over"] == []  # the tampered older set was never read
    (root / "state/engine.json").write_text('{"last_order_id": 0')
    files = diagnose(capsys, root, sources, sets)
    assert files["restore_from"]["backup_id"] == newer.split("/")[-1] and files["passed_over"] == []


def test_no_good_set_leaves_nothing_to_restore_from(host, capsys):
    root, sources, sets = host
    (root / "state/positions.json").unlink()
    _fileset.create(str(sets), sources, "full", now=time.time() - 60)  # taken after the loss
    files = diagnose(capsys, root, sources, sets)
    assert files["healthy"] is False and files["restore_from"] is None
    assert any("positions.json is not in it" in p for p in files["passed_over"])


def test_a_file_above_the_parse_limit_is_checked_for_presence_only(host, capsys):
    root, sources, _sets = host
    (root / "data/fills.csv").write_text("id,symbol\n" + "1,X,broken\n" * 100)
    files = diagnose(capsys, root, sources, max_parse_bytes=200)
    assert files["healthy"] is True and files["not_parsed"] == [str(root / "data/fills.csv")]


@pytest.mark.parametrize("sources, critical, words", [
    ({"configs": ["/srv/config"]}, [], "unknown source categories configs"),
    ({"config": ["relative/config"]}, [], "sources.config must be a list of absolute paths"),
    ({"config": []}, [], "sources names no root"),
    ({"config": ["/srv/config"]}, ["/etc/passwd"], "critical file /etc/passwd lies below none of the roots"),
])
def test_bad_input_is_refused_with_the_reason(capsys, sources, critical, words):
    out, failed = run_module(fileset_health, dict(sources=sources, critical=critical), capsys)
    assert failed and words in out["msg"], out
