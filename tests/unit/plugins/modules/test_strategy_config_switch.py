"""strategy_config_switch (the kill switch in a strategy's own config, runbook 003 section 5) through main() on
real files: only the switch's line changes, the old version is kept aside, a file that cannot be set is named and
the others are still set, bad input is refused with nothing changed."""

from __future__ import annotations

import json

import pytest

from ansible_collections.tradeops.dr.plugins.modules import strategy_config_switch
from conftest import run_module

TOML = "# strategy\n[trading]\nkill_switch = false  # not this one\n[risk]\nmax_drawdown = 0.15\nkill_switch = false  # 003\n"
YAML = "strategy: momentum\nrisk:\n  # limits\n  max_drawdown: 0.15\n  kill_switch: false\nlive:\n  kill_switch: false\n"


def call(capsys, action, files, tmp_path, check=False):
    args = dict(action=action, files=files, backup_dir=str(tmp_path / "aside"))
    if check:
        args["_ansible_check_mode"] = True
    return run_module(strategy_config_switch, args, capsys)


@pytest.mark.parametrize("name, text, engaged", [
    ("config.toml", TOML, TOML.replace("kill_switch = false  # 003", "kill_switch = true  # 003")),
    ("config.yaml", YAML, YAML.replace("  kill_switch: false\nlive", "  kill_switch: true\nlive")),
    ("config.json", '{"risk": {"kill_switch": false, "max_drawdown": 0.15}}',
     json.dumps({"risk": {"kill_switch": True, "max_drawdown": 0.15}}, indent=2) + "\n"),
])
def test_engage_changes_only_the_switch_keeps_the_old_version_and_reset_brings_it_back(tmp_path, capsys, name, text,
                                                                                       engaged):
    f = tmp_path / name
    f.write_text(text)
    files = [dict(path=str(f), key="risk.kill_switch")]
    out, failed = call(capsys, "engage", files, tmp_path)
    assert not failed and out["changed"] is True, out
    assert f.read_text() == engaged
    row = out["config_switch"]["files"][0]
    assert (row["before"], row["after"]) == (False, True) and out["config_switch"]["engaged"] is True
    assert (tmp_path / "aside" / row["kept_aside"].split("/")[-1] / name).read_text() == text
    again, failed = call(capsys, "engage", files, tmp_path)
    assert not failed and again["changed"] is False  # idempotent
    status, failed = call(capsys, "status", files, tmp_path)
    assert not failed and status["changed"] is False and status["config_switch"]["engaged_in"] == [str(f)]
    reset, failed = call(capsys, "reset", files, tmp_path)
    assert not failed and reset["changed"] is True and json.loads(json.dumps(reset))["config_switch"]["engaged"] is False
    if name != "config.json":
        assert f.read_text() == text  # comments and layout as they were


def test_check_mode_says_what_would_change_and_writes_nothing(tmp_path, capsys):
    f = tmp_path / "config.toml"
    f.write_text(TOML)
    out, failed = call(capsys, "engage", [dict(path=str(f), key="risk.kill_switch")], tmp_path, check=True)
    assert not failed and out["changed"] is True and out["config_switch"]["files"][0]["after"] is True
    assert f.read_text() == TOML and not (tmp_path / "aside").exists()


def test_a_file_that_cannot_be_set_is_named_and_the_others_are_set(tmp_path, capsys):
    good, odd, link = tmp_path / "good.toml", tmp_path / "odd.yaml", tmp_path / "link.toml"
    good.write_text(TOML)
    odd.write_text("risk:\n  kill_switch: 'maybe'\n")
    link.symlink_to(good)
    files = [dict(path=str(tmp_path / "gone.toml"), key="risk.kill_switch"), dict(path=str(odd), key="risk.kill_switch"),
             dict(path=str(link), key="risk.kill_switch"), dict(path=str(good), key="risk.kill_switch"),
             dict(path=str(tmp_path / "x.ini"), key="kill_switch")]
    out, failed = call(capsys, "engage", files, tmp_path)
    assert failed and out["msg"].startswith("KILL SWITCH CONFIG NOT ENGAGED EVERYWHERE")
    for words in ("gone.toml: missing", "risk.kill_switch is 'maybe', not true or false", "link.toml: not a regular file",
                  "x.ini: cannot tell the format", f"set in {good}"):
        assert words in out["msg"], words
    assert "kill_switch = true  # 003" in good.read_text() and "'maybe'" in odd.read_text()


@pytest.mark.parametrize("text, key, words", [
    ("risk.kill_switch = false\n", "risk.kill_switch", "would leave the file unreadable"),
    ("strategy: a\nrisk: {kill_switch: false}\n", "risk.kill_switch", "risk is not a mapping with entries below it"),
    ("strategy: a\n", "risk.kill_switch", 'risk is not in the file: add "kill_switch: false" once'),
])
def test_a_key_that_cannot_be_placed_safely_is_refused_and_the_file_left_as_it_was(tmp_path, capsys, text, key, words):
    f = tmp_path / ("c.toml" if "=" in text else "c.yaml")
    f.write_text(text)
    out, failed = call(capsys, "engage", [dict(path=str(f), key=key)], tmp_path)
    assert failed and words in out["msg"], out["msg"]
    assert f.read_text() == text


def test_relative_paths_and_no_files_are_refused(tmp_path, capsys):
    out, failed = call(capsys, "engage", [dict(path="config.toml", key="kill_switch")], tmp_path)
    assert failed and "must be absolute paths; nothing was changed" in out["msg"]
    out, failed = call(capsys, "status", [], tmp_path)
    assert failed and "files names no config file" in out["msg"]
