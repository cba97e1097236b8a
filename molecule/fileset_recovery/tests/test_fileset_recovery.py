"""testinfra: the container after molecule converged fileset_recovery (restore of the state)."""

import json


def test_the_state_files_are_back_byte_for_byte(host):
    for name in ("engine.json", "positions.json"):
        assert host.file("/srv/trading/state/" + name).content == host.file("/srv/state-before/" + name).content, name


def test_other_categories_were_not_touched(host):
    assert host.file("/srv/trading/config/strategy.yaml").exists
    assert host.file("/srv/trading/data/fills.csv").exists


def _sets(host):
    out = host.run("find /var/backups/tradeops-dr/files -maxdepth 2 -name metadata.json").stdout.split()
    return [json.loads(host.file(p).content_string) for p in out]


def test_the_damaged_files_were_backed_up_before_the_restore_and_a_set_after_it(host):
    sets = _sets(host)
    kinds = sorted(s.get("type") for s in sets)
    # the set prepare took, the damaged state saved before the restore, the post-recovery set
    assert len(sets) == 3, kinds
    assert "post-restore" in kinds


def test_the_sets_are_private(host):
    for path in host.run("find /var/backups/tradeops-dr/files -mindepth 1 -maxdepth 1").stdout.split():
        assert host.file(path).mode & 0o007 == 0, path
