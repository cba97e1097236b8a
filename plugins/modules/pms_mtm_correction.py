#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pms_mtm_correction
short_description: Re-run the PMS's mark-to-market with manual price overrides, journaled and verified
version_added: 0.1.0
description:
  - Runbook 000 scenario 4 (incorrect mark-to-market). Finds the open positions of the instruments named
    (C(GET /api/v1/pms/book/positions) - their C(current_price) and C(unrealized_pnl)), re-runs the MTM with the correct prices
    as manual overrides (C(POST /api/v1/pms/book/mtm), C(manual_prices)), posts one Decision Journal entry per
    instrument (old price, new price, source) and verifies every affected position's unrealised P&L against the
    runbook's manual calculation, size x (price - entry) signed by direction, within O(pnl_tolerance).
  - Refused with nothing changed - an instrument without a price; an instrument with no open position; a price
    further than O(max_deviation) from the second source in O(reference_prices) (another feed, the exchange read
    through the collection's ccxt layer, a file) unless the approval code of the plan is given.
  - Idempotent - instruments already marked at the given price, with their journal entry for this incident, are not
    marked or journaled again.
extends_documentation_fragment:
  - tradeops.dr.pms
options:
  prices:
    description: The correct price of each instrument whose mark is wrong (instrument -> price).
    type: dict
    required: true
  instruments:
    description: The affected instruments; default - the keys of O(prices). Each must have a price.
    type: list
    elements: str
    default: []
  source:
    description: Where the correct prices are from (V(Bloomberg), V(broker), V(exchange)); part of every journal entry.
    type: str
    required: true
  reference_prices:
    description: A second source's price per instrument; a price further than O(max_deviation) from it needs the
      approval code of the plan. An instrument without a reference is reported as unchecked.
    type: dict
    default: {}
  reference_source:
    description: What O(reference_prices) are (recorded with them).
    type: str
    default: second source
  max_deviation:
    description: Largest relative difference (0.02 = 2 %) between a price and its reference accepted without approval.
    type: float
    default: 0.02
  pnl_tolerance:
    description: Largest difference between a position's unrealised P&L and the manual calculation.
    type: float
    default: 0.01
attributes:
  check_mode:
    support: full
    description: Returns the affected positions, the plan and its approval code; changes nothing.
  diff_mode:
    support: none
    description: The plan is returned instead.
  idempotent:
    support: full
    description: Instruments already marked at their price and journaled for the incident are left alone.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: The feed marked ETH-PERP at 300 instead of 3000 (runbook 000 scenario 4)
  tradeops.dr.pms_mtm_correction:
    url: http://pms.internal:8000
    token: "{{ vault_pms_token }}"
    prices: {ETH-PERP: 3000.5}
    source: Bloomberg
    reference_prices: {ETH-PERP: 3001.0}
    reference_source: exchange (binanceusdm last price)
    incident: INC-4712
    actor: "{{ ansible_user_id }}"
'''

RETURN = r'''
state:
  description: V(corrected), V(already_corrected) or V(planned) (check mode).
  returned: always
  type: str
plan:
  description: One line per instrument re-marked (what the approval code names).
  returned: always
  type: list
  elements: str
  sample: ["mark ETH-PERP at 3000.5 (was 300, 2 open positions)"]
approval_code:
  description: The code that approves this plan under this incident.
  returned: always
  type: str
needs_approval:
  description: Instruments whose price is further than O(max_deviation) from its reference.
  returned: always
  type: list
  elements: str
unchecked:
  description: Instruments without a reference price.
  returned: always
  type: list
  elements: str
affected:
  description: The affected open positions before the correction.
  returned: always
  type: list
  elements: dict
positions:
  description: The affected positions after the correction, each with the manual calculation (C(expected_pnl)).
  returned: when corrected or already corrected
  type: list
  elements: dict
journal_entries:
  description: The Decision Journal entries of the correction (written or found).
  returned: always
  type: list
  elements: dict
pnl:
  description: The book's P&L (realized, unrealized, total) before and after.
  returned: always
  type: dict
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _approval, _pms


def own_entry(entry, incident, instrument, price):
    meta = entry.get('metadata') or {}
    return meta.get('tool') == _pms.TOOL and meta.get('kind') == 'mtm_correction' and meta.get('incident') == incident \
        and meta.get('instrument') == instrument and _pms.number(meta.get('price')) == price


def correct(module, pms):
    p = module.params
    try:
        prices = dict((str(k), float(v)) for k, v in p['prices'].items())
        refs = dict((str(k), float(v)) for k, v in p['reference_prices'].items())
    except (TypeError, ValueError) as exc:
        module.fail_json(msg='prices and reference_prices map instruments to numbers (%s); nothing was changed' % exc,
                         exception=traceback.format_exc())
    instruments = sorted(p['instruments'] or prices)
    unpriced = [i for i in instruments if i not in prices]
    if unpriced:
        module.fail_json(msg='no price given for %s: an affected instrument is re-marked only at a price someone gave; '
                             'nothing was changed' % ', '.join(unpriced))
    bad = [i for i in instruments if prices[i] <= 0]
    if bad:
        module.fail_json(msg='the price of %s is not positive; nothing was changed' % ', '.join(bad))
    book = pms.positions()
    open_positions = [q for q in book if q.get('status') == 'OPEN']
    affected = [q for q in open_positions if q['instrument'] in instruments]
    held = set(q['instrument'] for q in affected)
    missing = [i for i in instruments if i not in held]
    if missing:
        module.fail_json(msg='no open position in %s: nothing of the book is marked at its price (a misspelt '
                             'instrument?); nothing was changed' % ', '.join(missing))
    entries = pms.journal(entry_type='correction')
    todo, done = [], []
    for instrument in instruments:
        at_price = all(_pms.number(q.get('current_price')) == prices[instrument] for q in affected
                       if q['instrument'] == instrument)
        journaled = [e for e in entries if own_entry(e, p['incident'], instrument, prices[instrument])]
        (done if at_price and journaled else todo).append(instrument)
    previous = dict((i, sorted(set(_pms.number(q.get('current_price')) for q in affected if q['instrument'] == i),
                               key=lambda x: (x is None, x))) for i in instruments)
    was = dict((i, ', '.join('none' if x is None else _pms.fmt(x) for x in previous[i])) for i in instruments)
    plan = ['mark %s at %s (was %s, %d open position(s))' % (
        i, _pms.fmt(prices[i]), was[i], sum(1 for q in affected if q['instrument'] == i)) for i in todo]
    code = _approval.code('pms mtm correction', p['incident'], plan)
    deviating = [i for i in todo if i in refs and abs(prices[i] - refs[i]) > p['max_deviation'] * abs(refs[i])]
    out = dict(changed=False, state='planned' if todo else 'already_corrected', plan=plan, approval_code=code,
               needs_approval=deviating, unchecked=[i for i in todo if i not in refs], affected=affected,
               journal_entries=[e for e in entries if any(own_entry(e, p['incident'], i, prices[i]) for i in done)],
               pnl=dict(before=_pms.book_pnl(book)))
    if not todo:
        return verify(module, pms, out, instruments, prices)
    if module.check_mode:
        return out  # the plan and its code: what an approver is shown
    if deviating and p['approval'] != code:
        module.fail_json(msg='%s: further than max_deviation %s from %s; the plan (%s) needs its approval code %s%s; '
                             'nothing was changed' % (
                                 ', '.join('%s %s vs %s' % (i, _pms.fmt(prices[i]), _pms.fmt(refs[i])) for i in deviating),
                                 _pms.fmt(p['max_deviation']), p['reference_source'], '; '.join(plan), code,
                                 ' (the given code %s is not this plan\'s)' % p['approval'] if p['approval'] else ''),
                         **out)
    if p['approval'] and deviating and _approval.spent(entries, p['approval']):
        module.fail_json(msg='approval %s was already spent on another correction (the Decision Journal shows it); '
                             'nothing was changed' % p['approval'], **out)
    answer = pms.mtm(dict((i, prices[i]) for i in todo))
    for instrument in todo:
        content = 'MTM corrected for %s. Previous price: %s. Correct price: %s. Source: %s.%s Incident %s, by %s.' % (
            instrument, was[instrument], _pms.fmt(prices[instrument]), p['source'],
            (' Checked against %s: %s.' % (p['reference_source'], _pms.fmt(refs[instrument]))) if instrument in refs else
            ' Not checked against a second source.', p['incident'], p['actor'])
        out['journal_entries'].append(pms.post_journal('correction', content, metadata=dict(
            kind='mtm_correction', incident=p['incident'], actor=p['actor'], instrument=instrument,
            previous_price=previous[instrument], price=prices[instrument], source=p['source'],
            reference_price=refs.get(instrument), reference_source=p['reference_source'] if instrument in refs else None,
            approval_code=p['approval'] if instrument in deviating else None, mtm_timestamp=answer.get('timestamp'))))
    out.update(changed=True, state='corrected')
    return verify(module, pms, out, instruments, prices)


def verify(module, pms, out, instruments, prices):
    p = module.params
    book = pms.positions()
    after = [q for q in book if q.get('status') == 'OPEN' and q['instrument'] in instruments]
    problems = []
    for q in after:
        expected = _pms.unrealized(q, prices[q['instrument']])
        q['expected_pnl'] = round(expected, 8)
        if _pms.number(q.get('current_price')) != prices[q['instrument']]:
            problems.append('position %s (%s) is marked at %s, not %s' % (
                q['id'], q['instrument'], q.get('current_price'), _pms.fmt(prices[q['instrument']])))
        elif abs((_pms.number(q.get('unrealized_pnl')) or 0.0) - expected) > p['pnl_tolerance']:
            problems.append('position %s (%s) shows unrealised P&L %s; size x (price - entry) is %s' % (
                q['id'], q['instrument'], q.get('unrealized_pnl'), _pms.fmt(expected)))
    out.update(positions=after)
    out['pnl']['after'] = _pms.book_pnl(book)
    if problems:
        module.fail_json(msg='the MTM correction did not verify: %s' % '; '.join(problems), **out)
    return out


def main():
    module = AnsibleModule(
        argument_spec=_pms.pms_argument_spec(
            prices=dict(type='dict', required=True),
            instruments=dict(type='list', elements='str', default=[]),
            source=dict(type='str', required=True),
            reference_prices=dict(type='dict', default={}),
            reference_source=dict(type='str', default='second source'),
            max_deviation=dict(type='float', default=0.02),
            pnl_tolerance=dict(type='float', default=0.01),
        ),
        supports_check_mode=True,
    )
    try:
        pms = _pms.connect(module, ('incident', 'actor', 'source'))
        module.exit_json(**correct(module, pms))
    except _pms.PmsError as exc:
        module.fail_json(msg='%s; nothing else was changed (a re-run finds what was done)' % exc,
                         exception=traceback.format_exc())


if __name__ == '__main__':
    main()
