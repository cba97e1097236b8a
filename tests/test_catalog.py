"""The component catalog (playbooks/full_recovery/components.yml: dr_catalog) is the one list of the
components, and every consumer agrees with it: the plays read only it, each entry's role exists and
takes the variables the entry gives it, the Python API and the CLI offer its components, the summary
classifies and times them by it, the AWX survey offers them, and a new entry reaches every consumer."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tradeops_dr import catalog, cli, recovery

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ROOT / "playbooks" / "full_recovery" / "components.yml"
CATALOG = catalog.load(ROOT)
RUNBOOKS = ROOT.parent / "shared" / "runbooks"


def _argument_spec_options(role: str) -> dict:
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return spec["main"]["options"]


def _role_text(role: str) -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")))


def test_python_reads_the_same_catalog_as_the_plays():
    raw = yaml.safe_load(COMPONENTS.read_text())
    assert CATALOG == raw["dr_catalog"]
    assert catalog.components(ROOT) == tuple(raw["dr_catalog"])
    assert set(catalog.FIELDS) == set.union(*(set(e) for e in CATALOG.values()))
    # the playbook's own derived lists are expressions over the catalog, not copies of it
    assert "dr_catalog" in raw["dr_trading_depends_on"] and "protect_capital" in raw["dr_trading_depends_on"]
    assert raw["dr_variables"]["dr_components"]["choices"] == "{{ dr_catalog.keys() | list }}"
    assert "dr_diagnose_vars" not in raw


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_entry_names_a_role_that_does_what_the_entry_says(name):
    entry = CATALOG[name]
    for role in [entry["role"], *entry["roles"]]:
        assert (ROOT / "roles" / role / "meta" / "argument_specs.yml").is_file(), role
    options = _argument_spec_options(entry["role"])
    text = _role_text(entry["role"])
    # the variables the plays set on the role are options of its argument spec, with values it accepts
    for var, value in {**entry["diagnose"], **entry["recover"]}.items():
        assert var in options, f"{entry['role']} takes no {var}"
        choices = options[var].get("choices")
        assert not choices or value in choices, f"{var}={value} is not among {choices}"
    if entry["approval"]:
        assert options[entry["approval"]]["type"] == "bool"
    # the protective probe reads the role's own address variables, with the role's own defaults
    if entry["protect_capital"]:
        defaults = yaml.safe_load((ROOT / "roles" / entry["role"] / "defaults" / "main.yml").read_text())
        for var in ("host", "port"):
            name_ = entry["probe"][var]
            assert name_ in options and defaults[name_] == entry["probe"]["default_" + var], (name, var)
    # the diagnosis fact and the awaiting-approval fact are set by the role itself
    assert re.search(rf"^\s+{entry['fact']}:", text, re.M), f"{entry['role']} never sets {entry['fact']}"
    if entry["awaiting"]:
        assert re.search(rf"^\s+{entry['awaiting']}:", text, re.M)
    # its group is one the example inventory documents
    example = yaml.safe_load((ROOT / "inventories" / "example" / "hosts.yml").read_text())
    assert entry["group"] in example["all"]["children"]


def test_the_generic_task_files_name_no_component():
    names = set(CATALOG) | {e["role"] for e in CATALOG.values()}
    for f in ("diagnose_one.yml", "recover_one.yml", "recover_stage.yml"):
        text = (ROOT / "playbooks" / "full_recovery" / f).read_text()
        code = "\n".join(line.split("#")[0] for line in text.splitlines())
        found = sorted(n for n in names if re.search(rf"\b{n}\b", code))
        assert found == [], f"{f} names {found}: it must read them from dr_catalog"


def test_the_cli_and_the_api_offer_the_catalogs_components():
    parser_choices = None
    for action in cli.build_parser()._subparsers._group_actions[0].choices["recover"]._actions:
        if action.dest == "scenario":
            parser_choices = list(action.choices)
    assert parser_choices == ["full", *CATALOG]
    for name, entry in CATALOG.items():
        extra = recovery._extravars(name, None, None, None)
        expected = [name] + ([n for n, e in CATALOG.items() if e["stage"] == "capital"] if entry["protect_capital"] else [])
        assert extra["dr_components"] == expected
    with pytest.raises(ValueError, match="unknown scenario 'mongodb'"):
        recovery._extravars("mongodb", None, None, None)
    for name, entry in CATALOG.items():
        for role in [entry["role"], *entry["roles"]]:
            ev = dict(event="runner_on_ok", event_data=dict(role=role, host="h", task="t", res={}))
            assert recovery.progress_event(ev, time.monotonic())["component"] == name


def test_the_summary_times_and_classifies_by_the_catalog():
    from ansible_collections.tradeops.dr.plugins.filter.recovery import recovery_summary

    for name, entry in CATALOG.items():
        state = "engaged" if entry["stage"] == "capital" else "broken"
        hv = {"h": dict(dr_before=[dict(component=name, state=state, evidence="e", destructive=[])])}
        s = recovery_summary(["h"], hv, CATALOG, "", False, False, time.time())
        assert s["components"][name]["h"]["rto_seconds"] == entry["rto"]
        # the capital stage is control state: reported, never counted broken - yet an engaged switch is what
        # happened to trading, classified by its priority (runbook 004: P1, kill switch engaged)
        assert s["status"] == ("diagnosed" if entry["stage"] == "capital" else "broken")
        assert s["classification"] == f"P{entry['priority']}"


def test_the_awx_survey_offers_the_catalogs_components():
    surveys = yaml.safe_load((ROOT / "playbooks" / "awx" / "surveys.yml").read_text())["awx_setup_surveys"]
    asked = [q for s in surveys.values() for q in s["spec"] if q["variable"] == "dr_components"]
    assert asked
    for q in asked:
        assert q["choices"] == list(CATALOG)
        assert q["default"].split("\n") == list(CATALOG)


@pytest.mark.skipif(not RUNBOOKS.is_dir(), reason="the runbooks are in ../shared/runbooks, beside the project")
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_objective_quotes_its_runbook_line(name):
    for field in ("rto_source", "priority_source"):
        m = re.match(r"(\d{3}) line (\d+): (.*)", CATALOG[name][field])
        assert m, f"{name}.{field} must read 'NNN line L: ...'"
        book = next(RUNBOOKS.glob(m.group(1) + "_*.txt"))
        line = book.read_text(encoding="utf-8").splitlines()[int(m.group(2)) - 1]
        words = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", line)}
        quoted = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", m.group(3))}
        assert words & quoted, f"{name}.{field}: line {m.group(2)} of {book.name} reads {line!r}"


def test_a_new_entry_reaches_every_python_consumer(tmp_path):
    root = tmp_path / "collection"
    (root / "playbooks" / "full_recovery").mkdir(parents=True)
    (root / "galaxy.yml").write_text("namespace: tradeops\n")
    raw = yaml.safe_load(COMPONENTS.read_text())
    raw["dr_catalog"]["risk_engine"] = dict(
        raw["dr_catalog"]["config"], group="risk_engine_hosts", role="risk_engine_recover", roles=[],
        fact="risk_engine_recover_diagnosis", priority=2, protect_capital=True,
        probe=dict(host="risk_engine_recover_host", port="risk_engine_recover_port", default_host="127.0.0.1",
                   default_port=8080),
        diagnose={"risk_engine_recover_action": "diagnose"}, recover={"risk_engine_recover_action": "recover"})
    (root / catalog.CATALOG_FILE).write_text(yaml.safe_dump(raw, sort_keys=False))
    assert catalog.scenarios(root)[-1] == "risk_engine"
    assert "risk_engine" in catalog.protect_capital(root)
    assert catalog.role_component(root)["risk_engine_recover"] == "risk_engine"
    from ansible_collections.tradeops.dr.plugins.filter.recovery import recovery_summary

    hv = {"h": dict(dr_before=[dict(component="risk_engine", state="broken", evidence="e", destructive=[])])}
    assert recovery_summary(["h"], hv, catalog.load(root), "", False, False, time.time())["classification"] == "P2"
    # an entry without a field every consumer needs is refused by name
    del raw["dr_catalog"]["risk_engine"]["stage"]
    (root / catalog.CATALOG_FILE).write_text(yaml.safe_dump(raw, sort_keys=False))
    catalog._read.cache_clear()
    with pytest.raises(catalog.CatalogError, match="dr_catalog.risk_engine lacks stage"):
        catalog.load(root)
    shutil.rmtree(root)


def test_the_plays_read_the_catalog_once_for_the_run():
    """A play's vars_files is parsed again each time Ansible gathers a task's variables (only vaulted files are
    cached there): with the catalog in every play's vars_files a healthy run parsed it 534 times, 4 of its ~20
    CPU-seconds (issues 24 and 27). The first task of the run reads it once, for every host, with include_vars -
    in one task run: Ansible gives the variables of an include_vars that ran once to every host of the play (one
    worker for the run instead of one per host; the healthy-run test of test_full_recovery counts the reads)."""
    plays = yaml.safe_load((ROOT / "playbooks" / "full_recovery.yml").read_text())
    assert [p["name"] for p in plays if "vars_files" in p] == []
    first = plays[0]["tasks"][0]
    assert first["ansible.builtin.include_vars"] == {"file": "full_recovery/components.yml"}
    assert first["run_once"] is True and first["tags"] == ["always"]  # once for every host, whatever the tags
    assert plays[0]["hosts"] == "localhost:all"


def test_the_hosts_of_each_stage_recover_side_by_side():
    """The diagnoses and the two recovery stages run each host's roles with the free strategy: a component's
    recovery never waits on another host's tasks (runbook 001's full-stack restart starts the application
    services together once the data stores answer). The applications ran in lockstep before (issue 27: a combined
    outage's model, config and PMS recoveries one after the other)."""
    plays = {p["name"]: p for p in yaml.safe_load((ROOT / "playbooks" / "full_recovery.yml").read_text())}
    side_by_side = [name for name, p in plays.items() if p.get("strategy") == "ansible.builtin.free"]
    assert side_by_side == ["Diagnose every component, read only", "Recover the data stores",
                            "Recover the applications", "Diagnose again - the steady state after recovery"]
    stages = [p["vars"].get("dr_stage") for p in plays.values() if p.get("vars", {}).get("dr_stage")]
    assert stages == ["data", "applications"]
