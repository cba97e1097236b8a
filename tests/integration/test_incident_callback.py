"""The incident callback tradeops.dr.incident: a record of every run, no_log honoured, the
optional Decision Journal post and apprise notification (to HTTP servers of the test on
127.0.0.1), and ARA recording the same run beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need_module

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET = "s3cr3t-7d1f0e"  # noqa: S105 - the value the record must never hold

PLAYBOOK = """
- name: A run with secrets
  hosts: localhost
  gather_facts: false
  vars:
    token: "{{ lookup('ansible.builtin.env', 'THE_TOKEN') }}"
  tasks:
    - name: Use the token (no_log)
      ansible.builtin.debug:
        msg: "token is {{ token }}"
      no_log: true
    - name: Change something with the token (no_log)
      ansible.builtin.command: "echo {{ token }}"
      changed_when: true
      no_log: true
    - name: Fail with the token in the message (no_log, ignored)
      ansible.builtin.fail:
        msg: "bad {{ token }}"
      no_log: true
      ignore_errors: true
    - name: Say something visible
      ansible.builtin.debug:
        msg: visible message
    - name: Plan a change that waits for approval (check mode in a real run)
      ansible.builtin.copy:
        content: "x"
        dest: "{{ lookup('ansible.builtin.env', 'TRADEOPS_DR_INCIDENTS_DIR') }}-planned"
        mode: "0600"
      check_mode: "{{ not (approved | default(false)) }}"
"""


def run(tmp_path: Path, **env) -> tuple[subprocess.CompletedProcess, dict, str]:
    pb = tmp_path / "secrets.yml"
    pb.write_text(PLAYBOOK)
    incidents = tmp_path / "incidents"
    full_env = dict(os.environ, THE_TOKEN=SECRET, TRADEOPS_DR_INCIDENTS_DIR=str(incidents),
                    ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), **env)
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb),
                           "-e", "ansible_python_interpreter=" + sys.executable, "-e", "dr_incident_id=INC-CB-1"],
                          env=full_env, capture_output=True, text=True, timeout=300, check=False)
    records = sorted(incidents.glob("INC-CB-1_*.json"))
    assert proc.returncode == 0 and records, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(records[-1].read_text()), records[-1].with_suffix(".md").read_text()


def test_record_of_a_run_honours_no_log(tmp_path):
    proc, rec, md = run(tmp_path)
    assert rec["id"] == "INC-CB-1" and rec["entry_type"] == "incident" and rec["playbook"] == "secrets.yml"
    assert f"incident record: {tmp_path / 'incidents'}/INC-CB-1_" in proc.stdout
    # without TRADEOPS_DR_RECORD_POINTER (a plain ansible-playbook run) nothing is pointed at, nothing warns
    assert "tradeops.dr.incident" not in proc.stdout + proc.stderr, proc.stderr
    pointer = tmp_path / "pointer.json"
    _proc2, rec2, _md2 = run(tmp_path, TRADEOPS_DR_RECORD_POINTER=str(pointer))
    pointed = json.loads(pointer.read_text())
    assert pointed["id"] == "INC-CB-1" and json.loads(Path(pointed["json"]).read_text())["started"] == rec2["started"]
    assert pointed["markdown"] == pointed["json"][:-5] + ".md" and oct(pointer.stat().st_mode & 0o777) == "0o600"
    by_task = {e["task"]: e for e in rec["timeline"]}
    assert by_task["Use the token (no_log)"]["msg"] == "hidden (no_log)"
    assert by_task["Change something with the token (no_log)"]["status"] == "changed"
    assert by_task["Fail with the token in the message (no_log, ignored)"]["status"] == "failed"
    assert by_task["Fail with the token in the message (no_log, ignored)"]["ignored"] is True
    assert by_task["Say something visible"]["msg"] == "visible message"
    assert rec["actions"] == ["Change something with the token (no_log) on localhost: hidden (no_log)"]
    # what a check-mode task would have changed is a plan, not an action - and it was not done
    assert rec["planned"] == ["Plan a change that waits for approval (check mode in a real run) on localhost"]
    assert by_task["Plan a change that waits for approval (check mode in a real run)"]["status"] == "planned"
    assert "## Planned, not done (waiting for approval)" in md and not (tmp_path / "incidents-planned").exists()
    assert rec["root_cause"] == "" and "## Root cause" in md and "_(for a person to fill in)_" in md
    for f in (tmp_path / "incidents").iterdir():
        assert SECRET not in f.read_text(), f
        assert oct(f.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "incidents").stat().st_mode & 0o777) == "0o700"
    # ansible-core 2.19's own display prints the msg of a failed no_log task in its "[ERROR]: Task failed" line
    # (upstream; the collection's modules never put a secret into msg): nowhere else in the log
    assert all(line.startswith("[ERROR]: Task failed: Action failed: bad ")
               for line in (proc.stdout + proc.stderr).splitlines() if SECRET in line)


ENGAGED = """
- name: What risk_breach.yml exports once the switch holds
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Export the kill-switch record (engaged)
      ansible.builtin.set_stats:
        data:
          kill_switch: {localhost: {outcome: engaged, switch: {enabled: true}}}
        aggregate: false
"""


def test_the_record_is_classified_by_what_happened_not_by_the_playbook(tmp_path):
    """Runbook 004 section 1: an engaged switch is P1 whatever playbook engaged it (before: P4, by the
    playbook's name, for every playbook but a few)."""
    pb = tmp_path / "some_playbook.yml"
    pb.write_text(ENGAGED)
    incidents = tmp_path / "incidents"
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb),
                           "-e", "ansible_python_interpreter=" + sys.executable, "-e", "dr_incident_id=INC-CB-2"],
                          env=dict(os.environ, TRADEOPS_DR_INCIDENTS_DIR=str(incidents),
                                   ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    record = sorted(incidents.glob("INC-CB-2_*.json"))[-1]
    rec = json.loads(record.read_text())
    assert rec["classification"] == "P1" and rec["classification_reasons"] == ["kill switch engaged"]
    assert "| Classification | P1 (runbook 004): kill switch engaged |" in record.with_suffix(".md").read_text()


def test_decision_journal_and_apprise_get_the_record(tmp_path, catcher):
    need_module("apprise", "pip install -e .[test]")
    port, got = catcher
    _proc, rec, _md = run(tmp_path, TRADEOPS_DR_JOURNAL_URL=f"http://127.0.0.1:{port}/journal",
                          TRADEOPS_DR_JOURNAL_TOKEN="tok-journal-91", TRADEOPS_DR_NOTIFY_URLS=f"json://127.0.0.1:{port}/notify",
                          TRADEOPS_DR_NOTIFY_ON="changed,failed")
    journal = [g for g in got if g[0] == "/journal"]
    notify = [g for g in got if g[0] == "/notify"]
    assert len(journal) == 1 and len(notify) == 1, got
    _path, headers, body = journal[0]
    assert headers["Authorization"] == "Bearer tok-journal-91"
    assert body["entry_type"] == "incident" and body["id"] == "INC-CB-1" and body["status"] == rec["status"] == "changed"
    assert "# Incident INC-CB-1" in body["body"] and SECRET not in json.dumps(body)
    assert "INC-CB-1" in notify[0][2]["title"] and "secrets.yml" in notify[0][2]["message"]
    for f in (tmp_path / "incidents").iterdir():
        assert "tok-journal-91" not in f.read_text()


STAGES = """
- name: An incident that opens, engages the switch, waits for approval and takes its time
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The diagnosis names the incident (what full_recovery.yml's plan sets)
      ansible.builtin.set_fact:
        dr_incident:
          classification: P1
          rto_seconds: 300
          broken: [{component: redis, host: cache-1, evidence: "connection refused on 127.0.0.1:6390"}]
    - name: The kill switch is engaged (what full_recovery/engage.yml records)
      ansible.builtin.set_fact:
        dr_outcomes: {kill_switch: {outcome: engaged, seconds: 0.4, message: held by the flag file}}
    - name: The plan has a destructive step
      ansible.builtin.set_fact:
        dr_destructive: ["db-1: restore of trading into a new database and swap (current kept aside)"]
        dr_approval_code: 1f3a-9c0d-77e2
    - name: Nobody approved it
      ansible.builtin.set_fact:
        dr_approved: false
    - name: The recovery takes its time, past the first escalation level (4 s), not the second (8 s)
      ansible.builtin.wait_for:
        timeout: 5
"""


def test_people_are_told_at_each_stage_per_audience_and_escalated_after_the_level_time(tmp_path, catcher):
    """Issue 30 (runbook 004 section 6, runbook 002 escalation): the audiences hear of the stages as they happen -
    opened, the switch engaged, a destructive step waiting (with its code) - the stakeholders a summary only; the
    level-2 contacts are told once the level's time passed without the incident resolved, before the run ended;
    every notification and the escalation are in the record."""
    need_module("apprise", "pip install -e .[test]")
    port, got = catcher
    pb = tmp_path / "stages.yml"
    pb.write_text(STAGES)
    incidents = tmp_path / "incidents"
    base = f"json://127.0.0.1:{port}"
    urls = f"ops={base}/ops risk={base}/risk stakeholders={base}/st level2={base}/l2 level3={base}/l3"
    env = dict(os.environ, TRADEOPS_DR_INCIDENTS_DIR=str(incidents), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               TRADEOPS_DR_NOTIFY_URLS=urls, TRADEOPS_DR_NOTIFY_ON="ok,changed,failed", TRADEOPS_DR_ESCALATE_SECONDS="4")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb), "-e",
                           "ansible_python_interpreter=" + sys.executable, "-e", "dr_incident_id=INC-CB-9"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    heard = {}
    for path, _headers, body in got:
        heard.setdefault(path, []).append(body)
    titles = {path: [b["title"].split(": ", 1)[1] for b in bodies] for path, bodies in heard.items()}
    for who in ("/ops", "/risk"):
        assert titles[who] == ["opened", "kill switch engaged", "approval needed", "ok"], titles
    assert titles["/st"] == ["opened", "ok"], titles
    assert titles["/l2"] == ["escalated to level2"] and "/l3" not in titles, titles  # level 3 at 8 s: the run ended
    ops = {b["title"].split(": ", 1)[1]: b["message"] for b in heard["/ops"]}
    assert "cache-1" in ops["opened"] and "connection refused" in ops["opened"]
    assert "1f3a-9c0d-77e2" in ops["approval needed"] and "db-1: restore of trading" in ops["approval needed"]
    for body in heard["/st"]:
        assert "cache-1" not in body["message"] and "refused" not in body["message"]
    # the escalation came while the run still ran: before the end was told
    first_end = next(i for i, g in enumerate(got) if g[2]["title"].endswith(": ok"))
    assert next(i for i, g in enumerate(got) if g[0] == "/l2") < first_end
    rec = json.loads(sorted(incidents.glob("INC-CB-9_*.json"))[-1].read_text())
    assert [e["level"] for e in rec["escalations"]] == ["level2"]
    assert {(n["audience"], n["stage"]) for n in rec["notifications"]} >= {
        ("ops", "opened"), ("risk", "kill switch engaged"), ("stakeholders", "opened"), ("level2", "escalated to level2")}
    assert all(n["delivered"] for n in rec["notifications"])
    assert any(e["task"] == "Notified level2: escalated to level2" for e in rec["timeline"])
    md = sorted(incidents.glob("INC-CB-9_*.md"))[-1].read_text()
    assert "## Who was told" in md and "escalated to level2" in md and "## Postmortem" in md


def test_a_failed_recovery_is_escalated_at_once(tmp_path, catcher):
    """Runbook 002 level 2: "recovery procedures fail" - the level-2 contacts are told at the end of a failed run."""
    need_module("apprise", "pip install -e .[test]")
    port, got = catcher
    pb = tmp_path / "fails.yml"
    pb.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.fail:\n"
                  "        msg: the restore failed\n")
    env = dict(os.environ, TRADEOPS_DR_INCIDENTS_DIR=str(tmp_path / "incidents"), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               TRADEOPS_DR_NOTIFY_URLS=f"level2=json://127.0.0.1:{port}/l2")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(pb), "-e",
                           "ansible_python_interpreter=" + sys.executable, "-e", "dr_incident_id=INC-CB-10"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert [(path, body["title"]) for path, _h, body in got] == [("/l2", "[P4] incident INC-CB-10: escalated to level2")]
    rec = json.loads(sorted((tmp_path / "incidents").glob("INC-CB-10_*.json"))[-1].read_text())
    assert rec["escalations"][0]["why"] == "the recovery failed (runbook 002 level 2)"


def test_a_journal_that_cannot_be_reached_never_fails_the_run(tmp_path, catcher):
    port, got = catcher
    # a journal that answers with an error (404: a wrong path) is a warning naming the status, not a failure
    proc, _rec, _md = run(tmp_path, TRADEOPS_DR_JOURNAL_URL=f"http://127.0.0.1:{port}/missing-then-closed",
                          TRADEOPS_DR_NOTIFY_ON="nothing")
    assert len(got) == 1  # it was tried
    out = " ".join((proc.stderr + proc.stdout).split())
    assert f"the Decision Journal at http://127.0.0.1:{port}/missing-then-closed did not take the record" in out
    assert "404" in out, out[-2000:]
    # a refused connection (nothing listens on port 9 of loopback here) is a warning, not a failure
    proc, _rec, _md = run(tmp_path, TRADEOPS_DR_JOURNAL_URL="http://127.0.0.1:9/journal")
    assert "the Decision Journal at http://127.0.0.1:9/journal did not take the record" in proc.stderr + proc.stdout


def test_ara_records_the_same_run_beside_it(tmp_path):
    need_module("ara", "pip install -e .[test]")
    callbacks = subprocess.run([sys.executable, "-m", "ara.setup.callback_plugins"], capture_output=True, text=True,
                               check=True).stdout.strip()
    ara_dir = tmp_path / "ara"
    env = dict(ARA_API_CLIENT="offline", ARA_BASE_DIR=str(ara_dir), ANSIBLE_CALLBACK_PLUGINS=callbacks,
               ANSIBLE_CALLBACKS_ENABLED="tradeops.dr.incident,ara_default")
    _proc, rec, _md = run(tmp_path, **env)
    assert len(rec["timeline"]) == 5
    listed = subprocess.run([str(BIN / "ara"), "playbook", "list", "-f", "json"], env=dict(os.environ, **env),
                            capture_output=True, text=True, timeout=120, check=True)
    playbooks = json.loads(listed.stdout)
    assert len(playbooks) == 1 and playbooks[0]["path"].endswith("secrets.yml") and playbooks[0]["status"] == "completed"
    assert playbooks[0]["tasks"] == 5
