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
