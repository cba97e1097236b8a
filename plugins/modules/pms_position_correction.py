#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pms_position_correction
short_description: Correct a wrongly recorded position in the PMS by compensating entries, never by deleting it
version_added: 0.1.0
description:
  - Runbook 000 scenario 3 (incorrect position recorded), through the PMS API the runbook names. The wrong position
    is closed at its own entry price (C(POST /api/v1/pms/book/positions/{id}/close), net zero P&L), the correct one
    is opened (C(POST /api/v1/pms/book/positions/open)) and the correction is posted to the Decision Journal
    (C(POST /api/v1/pms/journal), C(entry_type=correction), C(related_position_id) the wrong one, linking the new one
    in its content and metadata). The journal entry is written once the new position exists, so that it can name
    both; nothing is ever deleted.
  - Verified as the runbook's checklist says, from what the PMS answers afterwards - the wrong position CLOSED with
    realised P&L 0, the new one OPEN with the instrument, size, direction and entry price asked for, the journal
    trail present, and the book's realised P&L unchanged (the correction books no P&L).
  - Refused with nothing changed - an unknown position; a position already closed (other than by this correction);
    a correction equal to what is recorded; a close that would book P&L (the PMS would charge the position's
    fees, so total P&L would change - settle them in the PMS first); a correction whose notional (size times entry
    price, the larger of the two positions) is above O(max_notional) without the approval code of its plan.
  - Idempotent - a correction found in the Decision Journal is not applied twice; a run interrupted after the close
    resumes (opens the position, or finds the one it opened, and writes the journal entry).
extends_documentation_fragment:
  - tradeops.dr.pms
options:
  position_id:
    description: The id of the wrongly recorded position.
    type: str
    required: true
  instrument:
    description: The correct instrument.
    type: str
    required: true
  size:
    description: The correct size (positive).
    type: float
    required: true
  direction:
    description: The correct direction.
    type: str
    choices: [LONG, SHORT]
    required: true
  entry_price:
    description: The correct entry price; default - the wrong position's entry price (a wrong instrument, size or
      direction, the fill itself right).
    type: float
  reason:
    description: Why the position was wrong (part of the journal entry).
    type: str
    default: recorded incorrectly
  max_notional:
    description: Largest notional corrected without the approval code of the plan.
    type: float
    default: 100000
  pnl_tolerance:
    description: Largest difference (in the book's currency) between P&L figures that agree.
    type: float
    default: 0.01
attributes:
  check_mode:
    support: full
    description: Returns the plan and its approval code; changes nothing.
  diff_mode:
    support: none
    description: The plan is returned instead.
  idempotent:
    support: full
    description: A correction found in the Decision Journal is verified, not applied again.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Position 17 was booked as 100 BTC-PERP; the fill was 10 (runbook 000 scenario 3)
  tradeops.dr.pms_position_correction:
    url: http://pms.internal:8000
    token: "{{ vault_pms_token }}"
    position_id: "17"
    instrument: BTC-PERP
    size: 10
    direction: LONG
    incident: INC-4711
    actor: "{{ ansible_user_id }}"
    reason: size booked 10x by the order capture
    approval: "{{ book_correction_approval | default(omit, true) }}"
  register: correction
'''

RETURN = r'''
state:
  description: V(corrected) (this run), V(already_corrected) (found in the journal, verified), V(planned) (check mode).
  returned: always
  type: str
plan:
  description: The steps of the correction (what its approval code names).
  returned: always
  type: list
  elements: str
  sample: ["close position 17 (BTC-PERP LONG 100 @ 50000) at its entry price 50000", "open BTC-PERP LONG 10 @ 50000"]
approval_code:
  description: The code that approves this plan under this incident.
  returned: always
  type: str
  sample: 1f3a-9c0d-77e2
needs_approval:
  description: Whether the plan is above O(max_notional).
  returned: always
  type: bool
old_position:
  description: The wrong position as the PMS answers it (after the run - CLOSED).
  returned: always
  type: dict
new_position:
  description: The correct position (OPEN), once opened.
  returned: when opened
  type: dict
journal_entry:
  description: The Decision Journal entry of the correction.
  returned: when written or found
  type: dict
pnl:
  description: The book's P&L before and after (realized, unrealized, total); realised P&L is unchanged.
  returned: always
  type: dict
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _approval, _pms


def tag_of(position_id):
    """The mark a correction leaves in the notes of both positions: how an interrupted run finds its work."""
    return '[tradeops.dr correction of position %s]' % position_id


def describe(p):
    return '%s %s %s @ %s' % (p['instrument'], p['direction'], _pms.fmt(p['size']), _pms.fmt(p['entry_price']))


def own_entry(entry, position_id):
    meta = entry.get('metadata') or {}
    return meta.get('tool') == _pms.TOOL and str(meta.get('old_position_id')) == str(position_id) \
        and meta.get('kind') == 'position_correction'


def correct(module, pms):
    p = module.params
    pid = p['position_id']
    tag = tag_of(pid)
    old = pms.position(pid)
    if old is None:
        module.fail_json(msg='position %s is unknown to the PMS: nothing to correct; nothing was changed' % pid)
    entries = pms.journal(entry_type='correction')
    done = [e for e in entries if own_entry(e, pid)]
    resuming = old.get('status') == 'CLOSED' and tag in (old.get('notes') or '')
    if old.get('status') != 'OPEN' and not done and not resuming:
        module.fail_json(msg='position %s is already %s (realised P&L %s): a closed position is not corrected again '
                             'and never reopened; nothing was changed' % (pid, old.get('status'), old.get('realized_pnl')))
    want = dict(instrument=p['instrument'], size=p['size'], direction=p['direction'],
                entry_price=p['entry_price'] if p['entry_price'] is not None else _pms.number(old['entry_price']))
    if want['size'] <= 0 or want['entry_price'] <= 0:
        module.fail_json(msg='size and entry_price must be positive (size=%s, entry_price=%s); nothing was changed'
                             % (want['size'], want['entry_price']))
    if (old['instrument'], old['direction'], float(old['size']), float(old['entry_price'])) == \
            (want['instrument'], want['direction'], float(want['size']), float(want['entry_price'])):
        module.fail_json(msg='position %s is already recorded as %s: the correction changes nothing; nothing was '
                             'changed' % (pid, describe(old)))
    plan = ['close position %s (%s) at its entry price %s' % (pid, describe(old), _pms.fmt(old['entry_price'])),
            'open %s' % describe(want)]
    code = _approval.code('pms position correction', p['incident'], plan)
    notional = max(float(old['size']) * float(old['entry_price']), want['size'] * want['entry_price'])
    out = dict(changed=False, state='planned', plan=plan, approval_code=code, needs_approval=notional > p['max_notional'],
               notional=notional, old_position=old)
    if done:  # verify reads the book once; nothing changes it here, so it is the book before and after
        return verify(module, pms, out, old, want, done[-1], None, already=True)
    book_before = _pms.book_pnl(pms.positions())
    out['pnl'] = dict(before=book_before)
    fees = _pms.number(old.get('fees')) or 0.0
    if not resuming and abs(fees) > p['pnl_tolerance']:
        module.fail_json(msg='closing position %s at its entry price would book %s of realised P&L (its fees %s): the '
                             'correction would change total P&L - settle the fees in the PMS first; nothing was '
                             'changed' % (pid, _pms.fmt(-fees), _pms.fmt(fees)), **out)
    if module.check_mode:
        return out  # the plan and its code: what an approver is shown
    if out['needs_approval'] and p['approval'] != code:
        module.fail_json(msg='the correction of position %s (notional %s, above max_notional %s) needs the approval '
                             'code of its plan, %s (%s); %s' % (
                                 pid, _pms.fmt(notional), _pms.fmt(p['max_notional']), code, '; '.join(plan),
                                 'the given code %s is not that plan\'s' % p['approval'] if p['approval']
                                 else 'run again with approval=%s once approved' % code) + '; nothing was changed',
                         **out)
    notes = 'CORRECTION: Closing incorrect position entry %s' % tag
    if old['status'] == 'OPEN':
        old = pms.close(pid, _pms.number(old['entry_price']), notes)
    new = next((q for q in pms.positions(status='OPEN') if tag in (q.get('notes') or '')), None)
    if new is None:
        new = pms.open(want['instrument'], want['size'], want['direction'], want['entry_price'],
                       'CORRECTION: correct entry for position %s %s' % (pid, tag))
    content = ('Position %s was recorded incorrectly (%s). Closed at entry price for zero P&L. Correct position '
               'opened as %s (%s). Reason: %s. Incident %s, by %s.' % (
                   pid, describe(old), new['id'], describe(new), p['reason'], p['incident'], p['actor']))
    entry = pms.post_journal('correction', content, related_position_id=old['id'], metadata=dict(
        kind='position_correction', incident=p['incident'], actor=p['actor'], old_position_id=str(pid),
        new_position_id=str(new['id']), old=describe(old), new=describe(new), plan=plan,
        approval_code=p['approval'] if out['needs_approval'] else None))
    out.update(changed=True, state='corrected')
    return verify(module, pms, out, pms.position(pid), want, entry, book_before, already=False)


def verify(module, pms, out, old, want, entry, book_before, already):
    p = module.params
    new_id = (entry.get('metadata') or {}).get('new_position_id')
    new = pms.position(new_id) if new_id else None
    book_after = _pms.book_pnl(pms.positions())
    out.update(old_position=old, new_position=new, journal_entry=entry,
               pnl=dict(before=book_after if already else book_before, after=book_after))
    if already:
        out['state'] = 'already_corrected'
    problems = []
    if old.get('status') != 'CLOSED' or abs(_pms.number(old.get('realized_pnl')) or 0.0) > p['pnl_tolerance']:
        problems.append('position %s is %s with realised P&L %s (expected CLOSED, 0)' % (
            old.get('id'), old.get('status'), old.get('realized_pnl')))
    if new is None or new.get('status') != 'OPEN' or (new['instrument'], new['direction']) != (
            want['instrument'], want['direction']) or abs(float(new['size']) - want['size']) > 1e-9 \
            or abs(float(new['entry_price']) - want['entry_price']) > 1e-9:
        problems.append('the correct position (%s) is not OPEN as %s' % (
            describe(new) + ' ' + str(new.get('status')) if new else 'missing', describe(want)))
    if not already and abs(book_after['realized'] - book_before['realized']) > p['pnl_tolerance']:
        problems.append('the book\'s realised P&L moved from %s to %s' % (book_before['realized'], book_after['realized']))
    if problems:
        module.fail_json(msg='the correction of position %s did not verify: %s. Nothing was deleted; see the journal '
                             'entry and both positions in the PMS' % (old.get('id'), '; '.join(problems)), **out)
    return out


def main():
    module = AnsibleModule(
        argument_spec=_pms.pms_argument_spec(
            position_id=dict(type='str', required=True),
            instrument=dict(type='str', required=True),
            size=dict(type='float', required=True),
            direction=dict(type='str', required=True, choices=['LONG', 'SHORT']),
            entry_price=dict(type='float'),
            reason=dict(type='str', default='recorded incorrectly'),
            max_notional=dict(type='float', default=100000),
            pnl_tolerance=dict(type='float', default=0.01),
        ),
        supports_check_mode=True,
    )
    try:
        pms = _pms.connect(module, ('incident', 'actor', 'position_id', 'instrument'))
        module.exit_json(**correct(module, pms))
    except _pms.PmsError as exc:
        module.fail_json(msg='%s; the correction stopped there (nothing is ever deleted: a re-run resumes it)' % exc,
                         exception=traceback.format_exc())


if __name__ == '__main__':
    main()
