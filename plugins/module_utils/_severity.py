# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""How severe an incident is, from what happened - not from which playbook ran (runbook 004 section 1):

    P1  trading halted, broker disconnected, Redis or the database down, kill switch engaged
    P2  data feed degraded, latency over 100 ms, partial broker disconnect
    P3  dashboards unavailable, a minor worker crash
    P4  cosmetic, non-trading

`signals(stats, timeline)` reads what the roles exported (set_stats) and which roles changed or
failed something; `classify(signals)` gives the level and the reasons. The incident callback uses
both for every playbook; full_recovery.yml's own classification (its catalog's priorities, the
switch included) is one more input, never overridden downwards. No Ansible imports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# signal -> (level, what runbook 004 calls it)
SIGNALS = {
    'kill_switch_engaged': (1, 'kill switch engaged'),
    'broker_disconnected': (1, 'broker disconnected'),
    'redis_down': (1, 'Redis down'),
    'database_down': (1, 'the database down'),
    'feed_degraded': (2, 'data feed degraded'),
    'partial_broker_disconnect': (2, 'partial broker disconnect'),
    # not named by 004; placed by what they do to trading: a stopped strategy halts part of it, wrong
    # positions are wrong exposure, a failing model feeds wrong signals
    'strategy_down': (2, 'a strategy stopped trading (a partial halt)'),
    'positions_wrong': (2, 'positions disagree with the exchange'),
    'model_failing': (2, 'model inference degraded (the strategies trade on its signals)'),
    'config_damaged': (3, 'a configuration damaged (minor: restored from git)'),
    'worker_crash': (3, 'a minor worker crash'),
    'non_trading': (4, 'cosmetic or non-trading'),
}
ENGAGED = ('engaged', 'already', 'escalated')
# roles without a record of their own: a change or failure of theirs is the signal
ROLE_SIGNALS = {'broker_failover': 'broker_disconnected', 'feed_failover': 'feed_degraded',
                'fileset_recovery': 'non_trading'}


def _hosts(stats, key):
    value = (stats or {}).get(key) or {}
    return [r for r in value.values() if isinstance(r, dict)] if isinstance(value, dict) else []


def _true(value):
    """A record's boolean, as set_stats may have templated it (True, 'True', 'true')."""
    return value is True or (isinstance(value, str) and value.lower() == 'true')


def signals(stats, timeline=()):
    """The set of SIGNALS names that the run's exported records and its timeline show."""
    out = set()
    for r in _hosts(stats, 'kill_switch'):
        if r.get('outcome') in ENGAGED or _true((r.get('switch') or {}).get('enabled')):
            out.add('kill_switch_engaged')
    if _hosts(stats, 'risk_breach'):
        out.add('kill_switch_engaged')
    for r in _hosts(stats, 'redis_recovery'):
        if (r.get('was_reachable') is not None and not _true(r.get('was_reachable'))) or _true(r.get('restarted')) \
                or int(r.get('replayed_entries') or 0) > 0:
            out.add('redis_down')
    for r in _hosts(stats, 'database_recovery'):
        if _true(r.get('started')) or _true(r.get('restored')):
            out.add('database_down')
    for key in ('questdb_recovery', 'questdb_restore'):
        for r in _hosts(stats, key):
            if _true(r.get('started')) or r.get('resumed') or r.get('backup'):
                out.add('feed_degraded')
    for r in _hosts(stats, 'model_recovery'):
        if (r.get('file_was_ok') is not None and not _true(r.get('file_was_ok'))) or _true(r.get('reloaded')) \
                or _true(r.get('restarted')):
            out.add('model_failing')
    for r in _hosts(stats, 'config_recovery'):
        if r.get('invalid_before') or r.get('restored'):
            out.add('config_damaged')
    for r in _hosts(stats, 'strategy_recovery'):
        if r.get('action') == 'disconnect':
            out.add('broker_disconnected' if _true(r.get('exchange_down')) else 'partial_broker_disconnect')
        elif r.get('action') == 'crash' and (r.get('before') or {}).get('state') not in (None, 'healthy'):
            out.add('strategy_down')
    for r in _hosts(stats, 'position_reconcile'):
        if r.get('mismatches'):
            out.add('positions_wrong')
    for e in timeline or ():
        signal = ROLE_SIGNALS.get((e.get('role') or '').split('.')[-1])
        if signal and (e.get('changed') or e.get('status') == 'failed') and not e.get('ignored'):
            out.add(signal)
    return out


def classify(names, floor=None):
    """('P1'..'P4' or 'none', [reasons]) - the most severe of the signals, and a classification
    already made (floor: full_recovery.yml's) that this never lowers."""
    levels = [(SIGNALS[n][0], SIGNALS[n][1]) for n in sorted(names or ()) if n in SIGNALS]
    best = min([lvl for lvl, _what in levels] or [9])
    if floor and str(floor).startswith('P') and str(floor)[1:].isdigit():
        best = min(best, int(str(floor)[1:]))
    if best == 9:
        return 'none', []
    return 'P%d' % best, [what for lvl, what in sorted(levels)]
