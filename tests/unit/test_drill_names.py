"""One list of drills: the CLI's choices, playbooks/drill.yml's and drill.DRILLS agree, and every
drill scenario scored has an objective taken from a runbook."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tradeops_dr import cli, drill

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_the_playbook_and_the_drills_name_the_same_drills():
    names = [name for name, _run, _what in drill.DRILLS]
    assert cli.DRILL_NAMES == names
    play = yaml.safe_load((ROOT / "playbooks" / "drill.yml").read_text())[0]
    assert play["vars"]["__dr_drill_scenarios"] == ["all", *names]
    assert names[-1] == "full"  # it ends with the operator's reset of the switch


def test_every_scenario_a_drill_records_has_an_objective_with_its_runbook_line():
    text = (ROOT / "playbooks" / "vars" / "drill_objectives.yml").read_text()
    objectives = yaml.safe_load(text)["dr_drill_objectives_default"]
    source = "".join(f.read_text() for f in sorted((ROOT / "src" / "tradeops_dr" / "drill").glob("*.py")))
    recorded = set(re.findall(r'DrillStep\(\s*"([a-zA-Z ]+)"', source))
    recorded |= set(re.findall(r'\(\s*"([a-z]+ [a-zA-Z ]+)", faults\.', source))  # component_drill cases
    recorded |= {"questdb crash", "switch reset"}  # a case whose injection is a local function; the reset step
    assert recorded - {"switch reset"} <= set(objectives), recorded - set(objectives)
    for line in text.splitlines():
        if re.match(r"^  [a-zA-Z ]+: \d+", line):
            assert re.search(r"# 00[0-4] line \d+", line), line
