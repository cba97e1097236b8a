"""The kill-switch fast path's plain-YAML inventory reader (tradeops_dr.fastpath)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import in_child
from tradeops_dr import fastpath


def _inventory(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "hosts.yml").write_text(
        "all:\n  vars:\n    kill_switch_redis_host: 10.9.9.9\n  children:\n    kill_switch:\n"
        "      vars:\n        kill_switch_redis_user: desk\n      hosts:\n        risk-1:\n")
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "group_vars" / "all" / "main.yml").write_text("kill_switch_redis_port: 6391\n")
    return tmp_path


def test_vars_in_group_vars_folders_are_read(tmp_path):
    conn = fastpath.connection_from_inventory(str(_inventory(tmp_path)))
    assert (conn["host"], conn["login_host"], conn["login_port"], conn["login_user"]) == (
        "risk-1", "10.9.9.9", 6391, "desk")


def test_host_vars_win_over_group_vars(tmp_path):
    inv = _inventory(tmp_path)
    (inv / "group_vars" / "kill_switch.yml").write_text("kill_switch_redis_port: 6392\n")
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "risk-1.yml").write_text("kill_switch_redis_port: 6393\nkill_switch_redis_password: pw\n")
    conn = fastpath.connection_from_inventory(str(inv))
    assert conn["login_port"] == 6393 and conn["login_password"] == "pw"


@pytest.mark.parametrize("value", ["\"{{ vault_pw }}\"", "!vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162"])
def test_templated_or_vaulted_values_need_ansible(tmp_path, value):
    inv = _inventory(tmp_path)
    (inv / "group_vars" / "kill_switch.yml").write_text(f"kill_switch_redis_password: {value}\n")
    with pytest.raises(fastpath.NeedsAnsible):
        fastpath.connection_from_inventory(str(inv))


def test_the_connection_cache_follows_the_environment_the_inventory_reads(tmp_path, monkeypatch):
    """inventories/local reads TRADEOPS_DR_SANDBOX: a cache made for one sandbox must not name the
    Redis of another when the variable changes (both may be running)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  children:\n    kill_switch:\n      hosts:\n        risk-1:\n")
    (inv / "group_vars" / "kill_switch.yml").write_text(
        "kill_switch_redis_port: \"{{ lookup('ansible.builtin.env', 'DESK_PORT') }}\"\n")
    monkeypatch.setenv("DESK_PORT", "6401")
    conn = dict(host="risk-1", login_host="127.0.0.1", login_port=6401, login_user=None, login_password="pw",
                flag_file="/tmp/flag", via="ansible")
    fastpath._write_cache(str(inv), None, conn)
    cached = fastpath._read_cache(str(inv), None)
    assert cached["via"] == "cache" and cached["login_port"] == 6401
    monkeypatch.setenv("DESK_PORT", "6402")  # another setting: the cache no longer applies
    assert fastpath._read_cache(str(inv), None) is None
    monkeypatch.setenv("DESK_PORT", "6401")
    assert fastpath._read_cache(str(inv), None)["login_port"] == 6401


def _parent_inventory(tmp_path):
    """kill_switch a child of prod, prod's group_vars naming the Redis (what `ansible-inventory --host` says)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "hosts.yml").write_text(
        "all:\n  children:\n    prod:\n      children:\n        kill_switch:\n          hosts:\n            risk-1:\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("kill_switch_redis_port: 16392\n")
    (tmp_path / "group_vars" / "prod.yml").write_text("kill_switch_redis_port: 16391\n")
    return tmp_path


def test_the_cache_of_what_ansible_resolved_ends_when_a_file_a_template_read_changes(tmp_path, monkeypatch):
    """The port comes from a file a template looks up (inventories/local reads sandbox.json): a sandbox made again on
    other ports changed that file, not the inventory's, and the cache named the earlier Redis."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "ports.json").write_text('{"redis": 16394}')
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  children:\n    kill_switch:\n      hosts:\n        risk-1:\n")
    (inv / "group_vars" / "kill_switch.yml").write_text(
        f"kill_switch_redis_port: \"{{{{ (lookup('ansible.builtin.file', '{tmp_path}/ports.json') | from_json).redis }}}}\"\n")
    assert (in_child("fastpath", "resolve", str(inv))["login_port"], in_child("fastpath", "resolve", str(inv))["via"]) == (16394, "cache")
    time.sleep(0.01)
    (tmp_path / "ports.json").write_text('{"redis": 16395}')
    assert in_child("fastpath", "resolve", str(inv))["login_port"] == 16395


def test_a_parent_groups_vars_are_resolved_as_ansible_does(tmp_path, monkeypatch):
    """Issue 26 item 3: the reader ignored group_vars/prod.yml and engaged 16392, exit 0, and cached it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    inv = _parent_inventory(tmp_path / "inv")
    with pytest.raises(fastpath.NeedsAnsible, match="parent group prod"):
        fastpath.connection_from_inventory(str(inv))
    conn = in_child("fastpath", "resolve", str(inv))
    assert (conn["login_port"], conn["via"]) == (16391, "ansible")
    cached = in_child("fastpath", "resolve", str(inv))
    assert (cached["login_port"], cached["via"]) == (16391, "cache")  # and so is what the cache keeps


def test_a_host_in_another_group_too_is_resolved_by_ansible(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "hosts.yml").write_text(
        "all:\n  children:\n    kill_switch:\n      hosts:\n        risk-1:\n      vars:\n        kill_switch_redis_port: 1\n"
        "    redis_servers:\n      hosts:\n        risk-1:\n      vars:\n        kill_switch_redis_port: 16393\n")
    with pytest.raises(fastpath.NeedsAnsible, match="other groups too"):
        fastpath.connection_from_inventory(str(tmp_path))
    # Ansible: groups of one depth merge by name, so redis_servers wins over kill_switch
    assert in_child("fastpath", "resolve", str(tmp_path))["login_port"] == 16393


def test_a_vaulted_password_without_its_vault_still_flags_the_inventorys_file(tmp_path, monkeypatch):
    """Issue 26 item 3: the fallback flag went to the default path, not kill_switch_flag_file."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.setenv("TRADEOPS_DR_KILL_SWITCH_FLAG", str(tmp_path / "default.flag"))
    flag = tmp_path / "engines" / "kill_switch.flag"
    inv = _inventory(tmp_path / "inv")
    (inv / "group_vars" / "kill_switch.yml").write_text(
        f"kill_switch_flag_file: {flag}\nkill_switch_redis_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n")
    done = in_child("fastpath", "engage", str(inv), "test", "ops", "INC-V")
    assert done["outcome"] == "flag-file" and done["flag_file"] == str(flag), done
    assert flag.exists() and not (tmp_path / "default.flag").exists()


def test_the_collection_is_imported_through_ansibles_finder_in_every_worker():
    """recover() (the front door's capital.protect) configures Ansible's collection finder in-process; a collection
    package the tests imported by path before that could not import its further modules after it (ten tests of a CI
    run failed: collection metadata was not loaded for collection tradeops.dr). tests/conftest.py configures the
    finder before any import, so the collection is loaded through it whatever ran first."""
    import sys

    import ansible_collections.tradeops.dr  # noqa: F401  pylint: disable=unused-import
    from ansible.utils.collection_loader._collection_finder import _get_collection_metadata

    from ansible import constants as C

    assert "action_groups" in _get_collection_metadata("tradeops.dr")  # meta/runtime.yml, read by the finder
    # configured after conftest set ANSIBLE_CONFIG: the project's configuration, from whatever folder pytest runs
    assert C.CONFIG_FILE == str(Path(__file__).resolve().parents[2] / "ansible.cfg"), C.CONFIG_FILE
    fastpath.init_plugins()  # what recover() does
    sys.modules.pop("ansible_collections.tradeops.dr.plugins.modules.questdb_restore", None)
    from ansible_collections.tradeops.dr.plugins.modules import questdb_restore

    assert questdb_restore.DOCUMENTATION
