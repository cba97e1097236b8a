"""testinfra: the container after molecule converged model_rollback on a corrupted model."""

import hashlib
import json

MODEL = "/srv/model/repo/models/ppo_production/final_model.zip"


HEALTH = "http://127.0.0.1:8000/v1/health"


def test_the_model_file_is_v2_again(host):
    v2 = json.loads(host.file("/srv/model/versions.json").content_string)["v2"]
    assert hashlib.md5(host.file(MODEL).content).hexdigest() == v2
    card = json.loads(host.file("/srv/model/repo/models/ppo_production/model_card.json").content_string)
    assert card["artifact"]["md5"] == v2


def test_the_api_serves_the_restored_model(host, get_json):
    health = get_json(HEALTH)
    assert health["status"] == "healthy"
    assert health["model_md5"] == hashlib.md5(host.file(MODEL).content).hexdigest()


def test_the_corrupted_copy_is_kept_aside(host):
    v2 = json.loads(host.file("/srv/model/versions.json").content_string)["v2"]
    kept = host.run("find /var/backups/tradeops-dr/models -type f -name 'final_model.zip*'").stdout.split()
    assert kept, "no copy of the corrupted model was kept"
    assert all(hashlib.md5(host.file(p).content).hexdigest() != v2 for p in kept)


def test_git_history_is_untouched(host):
    res = host.run("git -C /srv/model/repo log --format=%s")
    assert res.stdout.split("\n")[:2] == ["model v2", "model v1"]
    assert host.run("git -C /srv/model/repo status --porcelain").stdout.strip() == ""
