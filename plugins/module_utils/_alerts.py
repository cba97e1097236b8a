# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""The guardrails of automatic responses to alerts (extensions/eda/rulebooks/tradeops_dr_alerts.yml).

An alert is one entry of Alertmanager's webhook post (labels, annotations, startsAt, fingerprint,
status), as ansible-rulebook's event_splitter hands it over. Before anything runs:

- the alert must be a firing tradeops.dr alert (alertname, component, response, severity);
- a protective response (kill_switch, dead_man) is always admitted: capital comes first, and
  engaging twice changes nothing;
- a recovery is refused while the maintenance flag exists (what it says is the reason), for an
  alert already handled (same fingerprint and startsAt: Alertmanager re-sends a firing alert at
  every repeat_interval), and past max_runs_per_hour automatic runs of the same component (a
  flapping service is a person's problem, not a loop's).

Every admitted run is appended to <state_dir>/runs.jsonl (0600, O_APPEND|O_NOFOLLOW) under an
exclusive flock held from the read to the write, so two alerts arriving together are counted both."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import fcntl
import json
import os
import re
import stat
import time

from ansible_collections.tradeops.dr.plugins.module_utils import _manifest

RESPONSES = ('kill_switch', 'dead_man', 'recover', 'notify')
PROTECTIVE = ('kill_switch', 'dead_man')
HISTORY = 'runs.jsonl'


class AlertError(Exception):
    """The alert or the guard's folder is not usable; the message says which field or path and why."""


def _epoch(text):
    """Alertmanager's RFC 3339 time (2026-12-05T12:00:00.123456789Z or +01:00) as epoch seconds."""
    m = re.match(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$', text or '')
    if not m:
        raise AlertError('startsAt %r is not an RFC 3339 time' % (text,))
    seconds = calendar.timegm(time.strptime(m.group(1), '%Y-%m-%dT%H:%M:%S')) + float(m.group(2) or 0)
    if m.group(3) != 'Z':
        sign = 1 if m.group(3)[0] == '+' else -1
        hours, minutes = m.group(3)[1:].split(':')
        seconds -= sign * (int(hours) * 3600 + int(minutes) * 60)
    return seconds


def parse(alert):
    """The fields the guard and the record use, or AlertError naming what is missing."""
    if not isinstance(alert, dict):
        raise AlertError('the alert must be a mapping (one alert of an Alertmanager webhook post), got %s'
                         % type(alert).__name__)
    labels = alert.get('labels') or {}
    missing = [k for k in ('alertname', 'component', 'response', 'severity') if not labels.get(k)]
    if missing:
        raise AlertError('the alert has no %s label: not a tradeops.dr alert (extensions/monitoring/prometheus)'
                         % ', '.join(missing))
    if labels['response'] not in RESPONSES:
        raise AlertError('the alert\'s response label is %r; known: %s' % (labels['response'], ', '.join(RESPONSES)))
    if alert.get('status', 'firing') != 'firing':
        raise AlertError('the alert %s is %s, not firing: nothing to respond to' % (labels['alertname'], alert['status']))
    starts = _epoch(alert.get('startsAt'))
    fingerprint = alert.get('fingerprint') or ''
    if not re.match(r'^[0-9a-f]{1,64}$', fingerprint):
        raise AlertError('the alert has no fingerprint (Alertmanager sends one per alert), got %r' % (fingerprint,))
    annotations = alert.get('annotations') or {}
    return dict(name=labels['alertname'], component=labels['component'], response=labels['response'],
                severity=labels['severity'], fingerprint=fingerprint, starts_at=starts,
                starts_at_iso=_manifest.utc_iso(starts), starts_at_sent=str(alert.get('startsAt')),
                summary=annotations.get('summary', ''),
                runbook=annotations.get('runbook', ''), labels=dict((k, str(v)) for k, v in labels.items()))


def state_dir_ready(state_dir):
    """Create the guard's folder (0750 with its missing parents) or refuse one another account can write."""
    _manifest.private_dirs(state_dir)
    st = os.lstat(state_dir)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise AlertError('%s is not a folder (a link is not followed)' % state_dir)
    if st.st_mode & 0o022 or st.st_uid not in (0, os.geteuid()):
        raise AlertError('%s can be written by another account (mode %o, owner uid %d): the guard keeps its '
                         'history only in a folder this account alone writes' % (state_dir, st.st_mode & 0o777,
                                                                                 st.st_uid))
    return state_dir


def read_history(path):
    """The admitted runs so far (a missing file is none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))
    except FileNotFoundError:
        return []
    with os.fdopen(fd) as handle:
        text = handle.read()
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line torn by a crash: the next runs are still counted
    return out


def admit(state_dir, alert, max_runs_per_hour=3, maintenance_file=None, record=True, now=None):
    """(admitted, reason, facts): whether the response to this alert may start now, and why."""
    now = time.time() if now is None else now
    a = parse(alert)
    state_dir_ready(state_dir)
    maintenance_file = maintenance_file or os.path.join(state_dir, 'maintenance')
    path = os.path.join(state_dir, HISTORY)
    fd = _manifest.create_private(path, 0o600, append=True)
    with os.fdopen(fd, 'a') as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # held until the file is closed
        runs = read_history(path)
        hour = [r for r in runs if r.get('component') == a['component'] and now - r.get('at', 0) < 3600
                and r.get('response') not in PROTECTIVE]
        facts = dict(alert=a, runs_last_hour=len(hour), detection_delay_seconds=round(max(0.0, now - a['starts_at']), 3),
                     received_at=_manifest.utc_iso(now), max_runs_per_hour=max_runs_per_hour)
        same = [r for r in runs if r.get('fingerprint') == a['fingerprint'] and r.get('starts_at') == a['starts_at']]
        admitted, reason = True, ''
        if a['response'] == 'notify':
            admitted, reason = False, 'the alert %s asks for people, not for an automatic run' % a['name']
        elif same:
            admitted, reason = False, 'the alert %s (fingerprint %s, firing since %s) was handled already at %s' % (
                a['name'], a['fingerprint'], a['starts_at_iso'], same[-1].get('received_at'))
        elif a['response'] in PROTECTIVE:
            reason = 'a protective response (%s) always runs: capital first' % a['response']
        elif os.path.lexists(maintenance_file):
            try:
                with open(maintenance_file) as flag:
                    why = flag.read(300).strip()
            except (IOError, OSError):
                why = ''
            admitted, reason = False, 'the maintenance flag %s is set%s: no automatic recovery runs' % (
                maintenance_file, (' (%s)' % why) if why else '')
        elif len(hour) >= max_runs_per_hour:
            admitted, reason = False, ('%d automatic runs for %s in the last hour (the limit is %d): a component '
                                       'that keeps breaking needs a person - escalate' % (
                                           len(hour), a['component'], max_runs_per_hour))
        else:
            reason = 'admitted: %d of %d automatic runs for %s in the last hour' % (
                len(hour) + 1, max_runs_per_hour, a['component'])
        if admitted and record:
            handle.write(json.dumps(dict(at=now, received_at=facts['received_at'], name=a['name'],
                                         component=a['component'], response=a['response'],
                                         fingerprint=a['fingerprint'], starts_at=a['starts_at']),
                                    sort_keys=True) + '\n')
            handle.flush()
            os.fsync(handle.fileno())
    return admitted, reason, facts
