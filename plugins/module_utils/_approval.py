# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Approvals that name what they approve: the code of a plan (the full recovery's destructive steps, a book
correction) is a digest of its kind, its incident and its steps, so an approval given for one plan approves no
other - and, once spent, is refused when it comes back for anything else."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib


def code(kind, incident, plan):
    """xxxx-xxxx-xxxx naming one plan: another step, host or incident gives another code."""
    text = '\n'.join(['tradeops.dr %s v1' % kind, incident] + list(plan))
    digest = hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]
    return '%s-%s-%s' % (digest[:4], digest[4:8], digest[8:])


def spent(records, given):
    """True when the approval code `given` was already used: records are where an approval is written when it lets
    something run (a journal's entries, metadata.approval_code). A correction found done is not run again, and an
    interrupted one has another plan (another code), so a code seen there is never accepted a second time."""
    return any((r.get('metadata') or {}).get('approval_code') == given for r in records or [])


def refusal(given, code, steps, spent_codes=(), requester='', second_required=False, approver='', switch_refusal=''):
    """Why the approval `given` does not let the destructive `steps` of the plan whose code is `code` run, or ''
    when it does - or when there is nothing to approve (no approval given, no destructive step). In this order: the
    kill switch does not yet protect everything (`switch_refusal`, the gate's own words), the code of another plan,
    a code already spent (`spent_codes`: it let its steps run once), and - where a second approver is required -
    no approver, or the person who runs the recovery (`requester`) approving it, whatever the case."""
    given = (given or '').strip()
    if not given or not steps:
        return ''
    if switch_refusal:
        return switch_refusal
    if given != code:
        return ('the approval %s is not the code of this plan (%s): the plan changed since it was approved (other '
                'steps or hosts), or it approves another incident - read the plan and approve it anew' % (given, code))
    if given in (spent_codes or ()):
        return 'the approval %s was spent by an earlier run: an approval lets its steps run once' % given
    if second_required and (approver or '').strip().lower() in ('', (requester or '').strip().lower()):
        return ('a second approver is required (dr_require_second_approver): dr_approver must name a person other '
                'than %s, who runs the recovery' % requester)
    return ''
