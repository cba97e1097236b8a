"""The monitoring role's refusals (issue 28): input that would write a broken configuration is refused before
anything is written, and a configuration Alertmanager's own checker refuses never replaces the one in place.
(Installed, started, verified and idempotent on a Debian container: the Molecule scenario `monitoring`.)"""

from __future__ import annotations

import hashlib
import shutil
import sys

import pytest
import yaml

from tradeops_dr import run_playbook

pytestmark = pytest.mark.integration


def _inventory(tmp_path, **overrides):
    group = dict(monitoring_install_packages=False, monitoring_config_dir=str(tmp_path / "etc"),
                 monitoring_secrets_dir=str(tmp_path / "secrets"), monitoring_group="root",
                 monitoring_eda_token="t0ken-never-printed", monitoring_services={},
                 monitoring_targets={"node": ["127.0.0.1:9"]}, **overrides)
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"mon": {"ansible_connection": "local",
                                                             "ansible_python_interpreter": sys.executable}},
                                           "children": {"monitoring_servers": {"hosts": {"mon": None},
                                                                               "vars": group}}}}))
    return inv


def test_a_receiver_named_like_the_rulebooks_is_refused_before_anything_is_written(tmp_path):
    res = run_playbook("monitoring.yml", inventory=_inventory(tmp_path, monitoring_people_receiver={"name": "eda"}))
    assert not res.ok and "needs a name other than eda" in res.failures[0].msg and "Nothing was changed" in \
        res.failures[0].msg, res.failures
    assert not (tmp_path / "etc").exists() and not (tmp_path / "secrets").exists()


def test_a_configuration_amtool_refuses_does_not_replace_the_one_in_place(tmp_path):
    need = [b for b in ("promtool", "amtool") if shutil.which(b) is None]
    if need:
        pytest.skip(f"{', '.join(need)} not installed (apt-get install prometheus prometheus-alertmanager)")
    etc = tmp_path / "etc"
    etc.mkdir()
    old = etc / "alertmanager.yml"
    old.write_text("route:\n  receiver: people\nreceivers:\n  - name: people\n")
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    res = run_playbook("monitoring.yml", inventory=_inventory(
        tmp_path, monitoring_alertmanager_timing={"group_wait": "soon"}))
    assert not res.ok and "Write Alertmanager's configuration" in res.failures[0].task, res.failures
    assert hashlib.sha256(old.read_bytes()).hexdigest() == before, "the running configuration stays"
    assert (etc / "tradeops_dr.rules.yml").exists() and (etc / "prometheus.yml").exists()  # checked and written
    assert "t0ken-never-printed" not in res.stdout
