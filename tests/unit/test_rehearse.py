"""The Molecule rehearsals' bookkeeping (src/tradeops_dr/rehearse.py, `tradeops-dr rehearse`):
every scenario names images the builder knows, every layer has its recipe, the roles the issue
asked for have a scenario with the steps that make a rehearsal (idempotence, a --check converge,
a testinfra verify), and the CLI refuses what it cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tradeops_dr import cli, rehearse

ROOT = Path(__file__).resolve().parents[2]
# roles without a scenario of their own (none: pgbackrest's is the point-in-time recovery it sets up)
NOT_YET: set = set()


def test_every_scenario_uses_the_base_or_a_layer_with_a_recipe():
    names = rehearse.scenarios(ROOT)
    assert "full_recovery" in names and "redis_restart" in names
    for name in names:
        for image in rehearse.scenario_images(name, ROOT):
            layer = rehearse._layer_of(image)
            if layer:
                assert (ROOT / "molecule" / "images" / layer / "Dockerfile").is_file(), (name, image)


def test_an_image_outside_the_builder_is_refused():
    with pytest.raises(rehearse.RehearsalError, match="neither the base image"):
        rehearse._layer_of("debian:bookworm")


def test_every_role_has_a_scenario_or_is_listed_as_not_yet():
    roles = {p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file()}
    assert roles - NOT_YET <= set(rehearse.scenarios(ROOT)), roles - NOT_YET - set(rehearse.scenarios(ROOT))


@pytest.mark.parametrize("name", rehearse.scenarios(ROOT))
def test_each_scenario_is_a_rehearsal(name):
    conf = yaml.safe_load((ROOT / "molecule" / name / "molecule.yml").read_text())
    seq = conf["scenario"]["test_sequence"]
    for step in ("prepare", "converge", "idempotence", "check", "verify"):
        assert step in seq, (name, step)
    assert seq.index("converge") < seq.index("idempotence") < seq.index("verify")
    assert conf["verifier"]["name"] == "testinfra"
    assert list((ROOT / "molecule" / name / "tests").glob("test_*.py")), name
    for platform in conf["platforms"]:
        # no network: loopback only (or another container's loopback)
        assert platform["network_mode"] == "none" or platform["network_mode"].startswith("container:"), platform
    assert conf["prerun"] is False  # a pre-run would install a copy of the collection that shadows the checkout


def test_the_cli_refuses_an_unknown_scenario(capsys):
    assert cli.main(["rehearse", "no-such-scenario"]) == 2
    assert "no Molecule scenario no-such-scenario" in capsys.readouterr().err


def test_the_cli_lists_the_scenarios_and_their_images(capsys):
    assert cli.main(["rehearse", "--list"]) == 0
    out = capsys.readouterr().out
    assert "timescale_restore" in out and "tradeops-dr/molecule-postgres:bookworm" in out


def test_a_run_where_every_scenario_was_skipped_is_not_a_pass(monkeypatch, capsys):
    skipped = [rehearse.Result("questdb_repair", "skipped", 0.0, None, "questdb: not installed")]
    monkeypatch.setattr(rehearse, "rehearse", lambda *a, **k: skipped)
    assert cli.main(["rehearse", "questdb_repair"]) == 1
    assert "no scenario ran" in capsys.readouterr().err


def test_a_failed_scenario_fails_the_run(monkeypatch, capsys):
    results = [rehearse.Result("a", "passed", 1.0, None), rehearse.Result("b", "failed", 2.0, None)]
    monkeypatch.setattr(rehearse, "rehearse", lambda *a, **k: results)
    assert cli.main(["rehearse", "redis_restart"]) == 1
    out = capsys.readouterr().out
    assert "1 passed, 1 failed, 0 skipped" in out


def test_the_rehearsals_controllers_run_with_lean_workers_beside_the_users_callbacks(monkeypatch):
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "ansible.posix.profile_tasks")
    env = rehearse._env(ROOT)
    assert env["ANSIBLE_CALLBACKS_ENABLED"].split(",") == ["ansible.posix.profile_tasks", "tradeops.dr.lean_workers"]
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "tradeops.dr.lean_workers")
    assert rehearse._env(ROOT)["ANSIBLE_CALLBACKS_ENABLED"] == "tradeops.dr.lean_workers"  # once
