# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Who is told what, and when: runbook 004 section 6 (notify the ops team, the risk officer and the
stakeholders - summary only) and runbook 002's escalation levels (the incident callback sends what this
composes, through apprise).

Targets are apprise URLs with the audiences they serve - ``ops=json://... risk,stakeholders=mailto://...``
(entries separated by spaces; an untagged URL serves ops; commas may separate untagged URLs) - and
the escalation levels' contacts are tagged ``level2``, ``level3``, ``level4``.

Stages: ``opened`` (an incident of P1/P2 found broken - before the recovery), ``kill switch engaged``,
``approval needed`` (a destructive step waits: the plan and its approval code), ``escalated`` (not
resolved within the level's time), and the end (the run's status)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

AUDIENCES = ('ops', 'risk', 'stakeholders')
LEVELS = ('level2', 'level3', 'level4')
# who hears of each stage during the run (the end goes to every audience)
STAGE_AUDIENCES = {
    'opened': ('ops', 'risk', 'stakeholders'),
    'kill switch engaged': ('ops', 'risk'),
    'approval needed': ('ops', 'risk'),
}

_TAGS = re.compile(r'^([A-Za-z0-9_-]+(?:,[A-Za-z0-9_-]+)*)=([A-Za-z][A-Za-z0-9+.-]*://\S*)$')
_URL = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://\S*$')


class NotifyError(ValueError):
    pass


def parse_targets(text):
    """[(tags, url)] from the notify_urls setting; an entry that is not an apprise URL is refused
    (NotifyError, naming its position, never its text: it may hold a token)."""
    out = []
    for n, token in enumerate((text or '').split(), 1):
        match = _TAGS.match(token)
        if match:
            out.append((tuple(t.lower() for t in match.group(1).split(',')), match.group(2)))
            continue
        for url in token.split(','):
            if not url:
                continue
            if not _URL.match(url):
                raise NotifyError('notify_urls entry %d is not an apprise URL (scheme://...) nor tags=URL' % n)
            out.append((('ops',), url))
    return out


def schedule(rto_seconds, after=0.5, seconds=0):
    """[(seconds after the incident opened, level)]: each level's time is `seconds`, or `after` x the
    RTO of what broke (runbook 002's levels 2-4 after 1, 2, 3 such times); [] without a time."""
    step = float(seconds or 0) or float(after or 0) * float(rto_seconds or 0)
    if step <= 0:
        return []
    return [(step * (i + 1), level) for i, level in enumerate(LEVELS)]


def _lines(items, empty='none'):
    return '\n'.join('- %s' % i for i in items) if items else '- %s' % empty


def compose(audience, event):
    """(title, body) of one stage (event['stage']) for one audience. The event carries what is known
    at that moment: incident, classification, playbook, broken [{component, host, evidence}], switch
    {outcome, message}, steps and code (approval), level and after_seconds (escalation), and at the
    end status, reason, recovery_seconds, components {name: {host: {before, after, outcome}}},
    record (the Markdown path), exposure (risk records)."""
    stage = event.get('stage', 'end')
    incident, cls = event.get('incident', '?'), event.get('classification') or '?'
    what = {'end': event.get('status', 'ended'), 'escalated': 'escalated to %s' % event.get('level')}.get(stage, stage)
    title = '[%s] incident %s: %s' % (cls, incident, what)
    broken = event.get('broken') or []
    switch = event.get('switch') or {}
    if audience == 'stakeholders':  # summary only: what it means for trading, no hosts, no evidence
        if stage == 'opened':
            body = '%d system(s) down or damaged; the recovery is running%s.' % (
                len(broken), ' and trading is halted' if switch.get('outcome', '').startswith('engaged') else '')
        elif stage == 'end':
            body = 'The incident is %s after %s s.%s' % (
                event.get('status'), event.get('recovery_seconds'),
                ' Trading stays halted until the operator resets the kill switch.' if event.get('halted') else '')
        else:
            body = 'Incident %s: %s.' % (incident, what)
        return title, body
    if audience == 'risk':  # the switch, positions, P&L, exposure
        note = (' - %s' % switch['message']) if switch.get('message') else ''
        parts = ['Kill switch: %s%s' % (switch.get('outcome') or 'not touched', note)]
        if broken:
            parts.append('Trading depends on what broke:\n' + _lines(
                '%s on %s' % (b.get('component'), b.get('host')) for b in broken))
        if event.get('exposure') is not None:
            parts.append('Exposure: %s' % event['exposure'])
        if event.get('pnl') is not None:
            parts.append('P&L: %s' % event['pnl'])
        if stage == 'approval needed':
            parts.append('Destructive steps wait for approval (code %s):\n%s' % (event.get('code'),
                                                                                 _lines(event.get('steps') or [])))
        if stage == 'end':
            parts.append('Status: %s - %s' % (event.get('status'), event.get('reason', '')))
        return title, '\n\n'.join(parts)
    # ops (and the escalation levels): the technical detail
    parts = ['Playbook %s, incident %s, classification %s.' % (event.get('playbook', '?'), incident, cls)]
    if broken:
        parts.append('Broken:\n' + _lines('%s on %s: %s' % (b.get('component'), b.get('host'), b.get('evidence', ''))
                                          for b in broken))
    if switch:
        parts.append('Kill switch: %s %s' % (switch.get('outcome', ''), switch.get('message', '')))
    if stage == 'approval needed':
        parts.append('Waiting for approval - give this plan\'s code %s with the same incident to run them:\n%s' % (
            event.get('code'), _lines(event.get('steps') or [])))
    if stage == 'escalated':
        parts.append('Escalated to %s: not resolved %s s after it opened (runbook 002).' % (
            event.get('level'), event.get('after_seconds')))
    if stage == 'end':
        parts.append('%s: %s (%s s)' % (event.get('status'), event.get('reason', ''), event.get('recovery_seconds')))
        rows = []
        for name, per_host in sorted((event.get('components') or {}).items()):
            for host, e in sorted(per_host.items()):
                rows.append('%s on %s: %s -> %s, %s' % (name, host, e.get('before'), e.get('after'), e.get('outcome')))
        if rows:
            parts.append(_lines(rows))
        if event.get('record'):
            parts.append('Record: %s' % event['record'])
    return title, '\n\n'.join(parts)
