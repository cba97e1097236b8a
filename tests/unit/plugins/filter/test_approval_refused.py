"""approval_refused: every reason full_recovery.yml's gate refuses an approval for, in-process (issue 24: a
playbook run per behaviour a user sees - test_full_recovery's approval test keeps the spent code and the
unconfirmed switch end to end - and the gate's branches here). The refusals are issue 26's: an approval names the
plan it approves, is used once, and a second person approves where one is required."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tradeops.dr.plugins.filter.recovery import approval_code, approval_refused

DIAGNOSIS = [dict(component="postgres", host="sandbox-postgres", state="broken",
                  destructive=["restore of trading into a new database"])]
STEPS = ["sandbox-postgres: restore of trading into a new database"]
CODE = approval_code("INC-1", DIAGNOSIS)


def test_the_code_of_this_plan_is_approved():
    assert approval_refused(CODE, CODE, STEPS, spent=[], requester="alice") == ""
    assert approval_refused(f"  {CODE}\n", CODE, STEPS) == ""  # as typed at a prompt or written by a caller


def test_nothing_given_or_nothing_to_approve_is_no_refusal():
    assert approval_refused("", CODE, STEPS) == ""
    assert approval_refused(None, CODE, STEPS) == ""
    assert approval_refused("0000-0000-0000", CODE, []) == ""


def test_the_code_of_another_incident_or_plan_is_refused():
    other = approval_code("INC-2", DIAGNOSIS)  # the same steps, another incident: another code
    assert other != CODE
    why = approval_refused(other, CODE, STEPS)
    assert why.startswith(f"the approval {other} is not the code of this plan ({CODE})")
    more = DIAGNOSIS + [dict(component="redis", host="sandbox-redis", state="broken", destructive=["AOF repair"])]
    assert approval_code("INC-1", more) != CODE  # another step: another code


def test_a_spent_code_is_refused():
    why = approval_refused(CODE, CODE, STEPS, spent=["aaaa-bbbb-cccc", CODE])
    assert why == f"the approval {CODE} was spent by an earlier run: an approval lets its steps run once"


@pytest.mark.parametrize("approver", ["", None, "alice", "ALICE", " Alice "])
def test_a_second_approver_must_be_someone_else_whatever_the_case(approver):
    why = approval_refused(CODE, CODE, STEPS, requester="alice", second_required=True, approver=approver)
    assert why == ("a second approver is required (dr_require_second_approver): dr_approver must name a person "
                   "other than alice, who runs the recovery")


def test_a_second_approver_approves_and_is_not_asked_for_unless_required():
    assert approval_refused(CODE, CODE, STEPS, requester="alice", second_required=True, approver="risk-officer") == ""
    assert approval_refused(CODE, CODE, STEPS, requester="alice", second_required=False, approver="alice") == ""


def test_the_order_switch_then_plan_then_spent_then_second_approver():
    switch = "the kill switch does not yet protect everything: engines did not acknowledge"
    other = approval_code("INC-2", DIAGNOSIS)
    assert approval_refused(other, CODE, STEPS, spent=[other], switch_refusal=switch) == switch
    assert "is not the code of this plan" in approval_refused(other, CODE, STEPS, spent=[other])
    assert "was spent" in approval_refused(CODE, CODE, STEPS, spent=[CODE], requester="a", second_required=True)


def test_steps_that_are_not_a_list_are_bad_input():
    with pytest.raises(AnsibleFilterError, match="list of destructive steps"):
        approval_refused(CODE, CODE, "sandbox-postgres: restore")
