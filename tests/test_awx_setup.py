"""playbooks/awx_setup.yml offline: every survey variable is an option the playbook it launches
understands (a role's argument spec, or full_recovery.yml's own), with a compatible type and
choices; every awx.awx task uses only the options its module documents (ansible-doc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SURVEYS = yaml.safe_load((ROOT / "playbooks" / "awx" / "surveys.yml").read_text())["awx_setup_surveys"]


def _launched() -> dict:
    """Survey name -> the playbook its job template launches, as awx_setup.yml maps them."""
    play = yaml.safe_load((ROOT / "playbooks" / "awx_setup.yml").read_text())[0]
    task = next(t for t in play["tasks"] if t["name"] == "Job templates with their surveys")
    return task["vars"]["__awx_setup_playbooks"]


def _roles_of(playbook: str) -> list[str]:
    """The roles a playbook runs: its plays' `roles:`, or for full_recovery.yml the catalog's."""
    if playbook == "full_recovery.yml":
        catalog = yaml.safe_load((ROOT / "playbooks" / "full_recovery" / "components.yml").read_text())["dr_catalog"]
        return sorted({r for entry in catalog.values() for r in [entry["role"], *entry["roles"]]})
    roles = []
    for play in yaml.safe_load((ROOT / "playbooks" / playbook).read_text()):
        for r in play.get("roles") or []:
            roles.append((r["role"] if isinstance(r, dict) else r).removeprefix("tradeops.dr."))
    return roles


def known_options(playbook: str = "full_recovery.yml") -> dict:
    """The options the launched playbook understands: its roles' argument specs, and for
    full_recovery.yml its own variables."""
    opts = {}
    for role in _roles_of(playbook):
        spec = ROOT / "roles" / role / "meta" / "argument_specs.yml"
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            opts.update(entry.get("options") or {})
    if playbook != "full_recovery.yml":
        return opts
    components = yaml.safe_load((ROOT / "playbooks" / "full_recovery" / "components.yml").read_text())
    opts.update(components["dr_variables"])
    # dr_components' choices are the catalog's components (a template over dr_catalog in the playbook)
    assert opts["dr_components"]["choices"] == "{{ dr_catalog.keys() | list }}"
    opts["dr_components"] = dict(opts["dr_components"], choices=list(components["dr_catalog"]))
    opts.update(components["dr_host_variables"])
    return opts


def survey_problems(spec: list[dict], options: dict) -> list[str]:
    problems = []
    for q in spec:
        var, kind = q["variable"], q["type"]
        opt = options.get(var)
        if opt is None:
            problems.append(f"{var}: no role nor full_recovery.yml takes it")
            continue
        choices = [str(c) for c in q.get("choices") or []]
        allowed = [str(c) for c in opt.get("choices") or []]
        expected = {"text": ("str", "path"), "textarea": ("str",), "password": ("str",), "integer": ("int",),
                    "float": ("float",), "multiselect": ("list",), "multiplechoice": ("str", "bool")}[kind]
        if opt.get("type", "str") not in expected:
            problems.append(f"{var}: a {kind} question for an option of type {opt.get('type', 'str')}")
        if opt.get("type") == "bool" and not set(choices) <= {"true", "false"}:
            problems.append(f"{var}: a bool answered with {choices}")
        if allowed and not set(choices) <= set(allowed):
            problems.append(f"{var}: choices {sorted(set(choices) - set(allowed))} are not among {allowed}")
        default = q.get("default")
        if default not in (None, "") and choices:
            given = default.split("\n") if kind == "multiselect" else [str(default)]
            if not set(given) <= set(choices):
                problems.append(f"{var}: default {default!r} is not a choice")
    return problems


@pytest.mark.parametrize("name", sorted(SURVEYS))
def test_survey_variables_match_the_argument_specs(name):
    launched = _launched()
    assert set(launched) == set(SURVEYS)
    assert survey_problems(SURVEYS[name]["spec"], known_options(launched[name])) == []


def test_a_survey_variable_of_another_playbook_is_caught():
    """Issue 31: the check read the union of every role's options, so a kill-switch survey asking for
    pg_backup_action passed; it reads the launched playbook's roles now."""
    assert known_options("kill_switch.yml").get("kill_switch_action") is not None
    problems = survey_problems([dict(variable="pg_backup_action", type="multiplechoice", choices=["backup"])],
                               known_options("kill_switch.yml"))
    assert [p.split(":")[0] for p in problems] == ["pg_backup_action"]
    assert survey_problems([dict(variable="pg_backup_action", type="multiplechoice", choices=["backup"])],
                           known_options("backup.yml")) == []


def test_the_survey_check_catches_what_it_must():
    options = known_options()
    bad = [dict(variable="dr_componets", type="multiselect", choices=["redis"]),
           dict(variable="dr_components", type="multiselect", choices=["redis", "mongodb"]),
           dict(variable="dr_lock_lease", type="text"),
           dict(variable="kill_switch_action", type="multiplechoice", choices=["engage", "explode"], default="engage"),
           dict(variable="dr_engage_kill_switch", type="multiplechoice", choices=["yes please"]),
           dict(variable="pg_backup_action", type="multiplechoice", choices=["backup"], default="verify")]
    problems = survey_problems(bad, options)
    expected = ["dr_componets", "dr_components", "dr_lock_lease", "kill_switch_action", "dr_engage_kill_switch",
                "pg_backup_action"]
    assert [p.split(":")[0] for p in problems] == expected


def test_awx_tasks_use_only_documented_options():
    plays = yaml.safe_load((ROOT / "playbooks" / "awx_setup.yml").read_text())
    tasks = [t for play in plays for t in play.get("tasks", [])]
    used = {}
    for t in tasks:
        for key, args in t.items():
            if key.startswith("awx.awx."):
                used.setdefault(key, []).append(args)
    assert set(used) == {"awx.awx.project", "awx.awx.job_template", "awx.awx.workflow_job_template",
                         "awx.awx.schedule"}
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    for module, calls in used.items():
        doc = json.loads(subprocess.run([str(BIN / "ansible-doc"), "--json", module], env=env, capture_output=True,
                                        text=True, timeout=120, check=True).stdout)[module]["doc"]["options"]
        for args in calls:
            assert set(args) <= set(doc), f"{module}: {set(args) - set(doc)} not documented"
            for node in args.get("workflow_nodes", []):
                sub = doc["workflow_nodes"]["suboptions"]
                assert set(node) <= set(sub), f"workflow node {node['identifier']}: {set(node) - set(sub)}"
                assert set(node["unified_job_template"]) <= set(sub["unified_job_template"]["suboptions"])


def test_no_survey_carries_the_approval():
    """Issue 26: the recover template's survey carried dr_approve, so anyone allowed to launch it
    skipped the workflow's approval node. The approval now travels only from the plan job (its
    approval code, set_stats in check mode under AWX) through the approval node."""
    for name, survey in SURVEYS.items():
        assert "dr_approve" not in {q["variable"] for q in survey["spec"]}, name
    plays = yaml.safe_load((ROOT / "playbooks" / "awx_setup.yml").read_text())
    workflow = next(t["awx.awx.workflow_job_template"] for play in plays for t in play.get("tasks", [])
                    if "awx.awx.workflow_job_template" in t)
    templates = next(t["awx.awx.job_template"] for play in plays for t in play.get("tasks", [])
                     if "awx.awx.job_template" in t and "survey_spec" in t["awx.awx.job_template"])
    assert templates["ask_variables_on_launch"] is False  # no approval smuggled in as an extra variable
    nodes = {n["identifier"]: n for n in workflow["workflow_nodes"]}
    assert nodes["plan"]["job_type"] == "check" and nodes["recover"]["job_type"] == "run"
    assert nodes["plan"]["related"]["success_nodes"] == [{"identifier": "approve"}]
    assert nodes["approve"]["unified_job_template"]["type"] == "workflow_approval"
    assert "dr_approve" not in str(workflow.get("extra_vars", ""))
    # the plan hands its code on only as a plan (check mode) run under AWX
    recovery = yaml.safe_load((ROOT / "playbooks" / "full_recovery.yml").read_text())
    handoff = [t for play in recovery for t in play.get("tasks", []) for t in t.get("block", [t])
               if t.get("name", "").startswith("Hand a plan's approval code")]
    assert len(handoff) == 1 and "ansible_check_mode" in handoff[0]["when"]
    assert "awx_job_id is defined or tower_job_id is defined" in handoff[0]["when"]


def test_every_schedule_launches_a_template_with_values_its_survey_accepts():
    """The templates take extra variables only through their surveys (ask_variables_on_launch false): a schedule's
    extra_data outside the survey, or a value outside its choices, is refused by AWX at launch."""
    play = yaml.safe_load((ROOT / "playbooks" / "awx_setup.yml").read_text())[0]
    task = next(t for t in play["tasks"] if t["name"].startswith("Schedules"))
    by_name = {s["name"]: s for s in SURVEYS.values()}
    templates = set(by_name) | {"tradeops.dr health check"}
    names = [s["name"] for s in task["loop"]]
    assert {"hourly state file set", "daily full file set"} <= set(names)
    for schedule in task["loop"]:
        assert schedule["template"] in templates, schedule["name"]
        spec = {q["variable"]: q for q in by_name.get(schedule["template"], {"spec": []})["spec"]}
        for var, value in schedule["extra_data"].items():
            assert var in spec, f"{schedule['name']}: {var} is not in the survey of {schedule['template']}"
            if spec[var]["type"] == "multiplechoice":
                assert value in spec[var]["choices"], f"{schedule['name']}: {var}={value}"
