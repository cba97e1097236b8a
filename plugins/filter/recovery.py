# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of playbooks/full_recovery.yml: one diagnosis row as a table line, and the run's
summary (status, per-component outcome against the runbooks' recovery time objectives,
classification P1-P4 of runbook 004, the report printed at the end)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleFilterError
from ansible_collections.tradeops.dr.plugins.module_utils import _approval

OK_STATES = ('healthy', 'active', 'engaged')  # a kill switch's state is reported, never repaired


def table_row(row):
    if not isinstance(row, dict):
        raise AnsibleFilterError('table_row expects a diagnosis row (a dict), got %r' % (row,))
    return '%-11s %-22s %-10s %s' % (row.get('component', '?'), row.get('host', '?'),
                                     str(row.get('state', '?')).upper() if row.get('state') not in OK_STATES
                                     else row.get('state'), row.get('evidence', ''))


def destructive_plan(diagnosis):
    """The destructive steps a diagnosis plans, one 'host: step' line each, sorted: what an approval approves."""
    if not isinstance(diagnosis, list):
        raise AnsibleFilterError('destructive_plan expects the list of diagnosis rows, got %r' % (diagnosis,))
    return sorted('%s: %s' % (row.get('host', '?'), step) for row in diagnosis
                  if isinstance(row, dict) and row.get('state') == 'broken' for step in row.get('destructive') or [])


def approval_code(incident, diagnosis):
    """A short code naming one plan: the digest of the incident id and its destructive steps with their hosts.
    An approval gives it back; a plan with other steps or hosts (or another incident) has another code."""
    if not incident or not isinstance(incident, str):
        raise AnsibleFilterError('approval_code needs the incident id, got %r' % (incident,))
    return _approval.code('approval', incident, destructive_plan(diagnosis))


def approval_refused(given, code, steps, spent=None, requester='', second_required=False, approver='',
                     switch_refusal=''):
    """Why the approval given does not let this plan's destructive steps run, or '' (module_utils _approval)."""
    if not isinstance(steps, list):
        raise AnsibleFilterError('approval_refused expects the list of destructive steps, got %r' % (steps,))
    return _approval.refusal('' if given is None else str(given), code, steps, spent_codes=list(spent or []),
                             requester='' if requester is None else str(requester),
                             second_required=bool(second_required), approver='' if approver is None else str(approver),
                             switch_refusal=switch_refusal or '')


def _get(hostvars, host, name, default):
    try:
        value = hostvars[host].get(name)
    except KeyError:
        return default
    return default if value is None else value


def lock_groups(hosts, hostvars):
    """The hosts of a run grouped by the machine and folder their recovery locks live in: [{host, names}], host
    being the first of its group (the one the lock module runs on for all of them). Hosts reached with a local
    connection are all this control node; others are one machine when address, port and user agree. Hosts that
    become another account, or keep their locks in another folder, are apart."""
    if not isinstance(hosts, list):
        raise AnsibleFilterError('lock_groups expects the list of the run\'s hosts, got %r' % (hosts,))
    groups = {}
    for host in hosts:
        connection = str(_get(hostvars, host, 'ansible_connection', 'ssh'))
        if connection == 'local':
            machine = ('local',)
        else:
            machine = (connection, str(_get(hostvars, host, 'ansible_host', host)),
                       str(_get(hostvars, host, 'ansible_port', '')), str(_get(hostvars, host, 'ansible_user', '')))
        # the same account writes the locks of a group: another become, another group
        key = machine + (str(_get(hostvars, host, 'ansible_become', '')), str(_get(hostvars, host, 'ansible_become_user', '')),
                         str(_get(hostvars, host, 'dr_lock_dir', '')))
        groups.setdefault(key, []).append(host)
    return [dict(host=names[0], names=names) for names in groups.values()]


def _entry(catalog, name):
    entry = catalog.get(name) if isinstance(catalog, dict) else None
    if not isinstance(entry, dict):
        raise AnsibleFilterError('recovery_summary: %r is not in the component catalog (dr_catalog)' % (name,))
    return entry


def incident_opened(diagnosis, catalog):
    """What the incident is as soon as the diagnosis is known (the incident callback tells people at once):
    {classification (runbook 004's priority of the worst component found broken), rto_seconds (the shortest
    RTO among them: the escalation ladder counts from it), broken [{component, host, evidence}]}; {} when
    nothing is broken. The kill switch is control state, never counted broken."""
    broken = [r for r in diagnosis or [] if r.get('state') == 'broken'
              and _entry(catalog, r.get('component')).get('stage') != 'capital']
    if not broken:
        return {}
    entries = [_entry(catalog, r['component']) for r in broken]
    return dict(classification='P%d' % min(int(e.get('priority', 4)) for e in entries),
                rto_seconds=min(int(e.get('rto') or 0) for e in entries) or None,
                broken=[dict(component=r['component'], host=r.get('host'), evidence=r.get('evidence', '')) for r in broken])


def recovery_summary(hosts, hostvars, catalog, stop, check_mode, recovering, started):
    """The run's outcome from every host's diagnosis before and after and its outcomes. The catalog
    (dr_catalog) gives each component's RTO, its priority (runbook 004's P1-P4 when broken) and its
    stage: the capital stage (the kill switch) is control state - reported, never repaired."""
    components = {}
    broken_before, unhealthy_after, failed, waiting = [], [], [], []
    for host in hosts:
        before = {r['component']: r for r in _get(hostvars, host, 'dr_before', [])}
        after = {r['component']: r for r in _get(hostvars, host, 'dr_after', [])}
        outcomes = _get(hostvars, host, 'dr_outcomes', {})
        for name, row in before.items():
            out = dict(outcomes.get(name) or {})
            entry = dict(before=row.get('state'), evidence_before=row.get('evidence'),
                         after=(after.get(name) or {}).get('state'), evidence_after=(after.get(name) or {}).get('evidence'),
                         outcome=out.get('outcome') or ('not run' if row.get('state') == 'broken' else 'skipped: healthy'),
                         seconds=out.get('seconds', 0), message=out.get('message', ''),
                         rto_seconds=_entry(catalog, name).get('rto', 0))
            control = _entry(catalog, name).get('stage') == 'capital'
            components.setdefault(name, {})[host] = entry
            label = '%s on %s' % (name, host)
            # the kill switch is control state: reported (unreadable while Redis is down), never repaired
            if row.get('state') not in OK_STATES and not control:
                broken_before.append((name, label))
            # a switch that does not protect everything (orders maybe open, engines silent) fails the run
            if entry['outcome'] in ('failed', 'engaged, unconfirmed'):
                failed.append('%s: %s' % (label, entry['message']))
            if entry['outcome'] == 'approval needed':
                waiting.append('%s: %s' % (label, entry['message']))
            if not out.get('outcome') and control:
                entry['outcome'] = 'left as it was'
            if recovering and not check_mode and not stop and entry['after'] not in OK_STATES:
                unhealthy_after.append('%s is %s after recovery (%s)' % (
                    label, entry['after'] or 'not diagnosed', entry['evidence_after'] or 'no diagnosis'))
    # runbook 004 section 1: an engaged kill switch is P1 by itself - control state is never counted broken,
    # but it is what happened to trading
    engaged_controls = [name for name, per_host in components.items() if _entry(catalog, name).get('stage') == 'capital'
                        and any((e['after'] or e['before']) == 'engaged' for e in per_host.values())]
    priority = min([int(_entry(catalog, name).get('priority', 4)) for name, _label in broken_before]
                   + [int(_entry(catalog, name).get('priority', 1)) for name in engaged_controls] or [0])
    if stop:
        status = 'refused' if stop.startswith('REFUSED') else 'stopped'
        reason = stop
    elif check_mode:
        status, reason = 'planned', 'check mode: %d broken, nothing was changed' % len(broken_before)
    elif not recovering:
        status = 'broken' if broken_before else 'diagnosed'
        reason = ('broken: ' + ', '.join(lab for _name, lab in broken_before)) if broken_before else 'every component is healthy'
    elif failed or unhealthy_after:
        status = 'approval needed' if waiting and not failed else 'failed'
        reason = '; '.join(waiting + failed + unhealthy_after)
    elif not broken_before:
        status, reason = 'healthy', 'every component was healthy; nothing was touched'
    else:
        status, reason = 'recovered', 'recovered %s; every component holds' % ', '.join(lab for _name, lab in broken_before)
    engaged = sorted(h for name, per_host in components.items() if _entry(catalog, name).get('stage') == 'capital'
                     for h, e in per_host.items() if (e['after'] or e['before']) == 'engaged')
    if engaged and status in ('recovered', 'healthy', 'failed', 'approval needed', 'diagnosed', 'broken'):
        reason += ('. The kill switch is ENGAGED (%s) and stays so until the operator resets it: '
                   'playbooks/kill_switch.yml -e kill_switch_action=reset' % ', '.join(engaged))
    seconds = round(time.time() - float(started), 2)
    report = ['%-11s %-22s %-10s %-10s %-18s %8s %8s' % (
        'COMPONENT', 'HOST', 'BEFORE', 'AFTER', 'OUTCOME', 'SECONDS', 'RTO')]
    for name in sorted(components):
        for host, e in sorted(components[name].items()):
            report.append('%-11s %-22s %-10s %-10s %-18s %8s %8s' % (name, host, e['before'], e['after'] or '-',
                                                                     e['outcome'], e['seconds'], e['rto_seconds'] or '-'))
            if e['message']:
                report.append('    ' + e['message'])
    report.append('%s in %.1f s: %s' % (status.upper(), seconds, reason))
    return dict(status=status, reason=reason, components=components, recovery_seconds=seconds,
                classification=('P%d' % priority) if priority else 'none', report=report)


class FilterModule(object):
    def filters(self):
        return dict(table_row=table_row, recovery_summary=recovery_summary, destructive_plan=destructive_plan,
                    approval_code=approval_code, approval_refused=approval_refused,
                    incident_opened=incident_opened, lock_groups=lock_groups)
