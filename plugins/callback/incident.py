# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: incident
type: aggregate
short_description: Write an incident record of every run (JSON for machines, Markdown for people)
version_added: 0.1.0
description:
  - Records every run of a playbook as an incident (runbooks 000 and 003, "Incident Logging"), in O(incidents_dir) as
    C(<id>_<UTC stamp>.json) and C(.md). The record holds the incident id, who ran it from where, the inventory,
    the playbook, the timeline of every task (host, start, end, status, changed, message), the symptoms the
    diagnosis found, the actions taken (every task that changed something), the recovery time per component
    next to its runbook objective and overall, the data-loss window where a role reported one, the classification
    P1-P4 of runbook 004 by what happened (an engaged switch, a store down, the exchange down...), and the
    template fields a person fills in (root cause, prevention, lessons learned).
  - The incident id is C(dr_incident_id), else C(TRADEOPS_DR_INCIDENT_ID) from the environment,
    else a new one (C(INC-<UTC stamp>)). The plugin puts it into C(TRADEOPS_DR_INCIDENT_ID) for the run, so that
    the playbook and the record name the same incident.
  - Honours C(no_log) - a censored task appears as C(hidden (no_log)) - and never records module arguments, only
    each result's C(msg).
  - Optional, off by default - posting the record to a Decision Journal endpoint (C(entry_type=incident)) and
    notifying people through L(apprise,https://github.com/caronc/apprise) URLs (Slack, Teams, Telegram, e-mail,
    PagerDuty and others). Neither failing ever fails the run; both are reported as warnings.
  - Works beside other aggregate callbacks such as ARA's C(ara_default) (enable both in C(callbacks_enabled)).
requirements:
  - apprise (only for O(notify_urls))
options:
  incidents_dir:
    description: Folder of the records (created 0700; records are 0600).
    type: path
    default: ~/.local/share/tradeops-dr/incidents
    env:
      - name: TRADEOPS_DR_INCIDENTS_DIR
    ini:
      - section: callback_tradeops_incident
        key: incidents_dir
  journal_url:
    description: Decision Journal endpoint the record is POSTed to as JSON (C(entry_type=incident)); empty to skip.
    type: str
    default: ''
    env:
      - name: TRADEOPS_DR_JOURNAL_URL
    ini:
      - section: callback_tradeops_incident
        key: journal_url
  journal_token:
    description: Bearer token for O(journal_url). Never written to the record.
    type: str
    default: ''
    env:
      - name: TRADEOPS_DR_JOURNAL_TOKEN
  notify_urls:
    description: apprise URLs (comma or space separated) notified with the record's summary; empty to skip.
    type: str
    default: ''
    env:
      - name: TRADEOPS_DR_NOTIFY_URLS
    ini:
      - section: callback_tradeops_incident
        key: notify_urls
  record_pointer:
    description:
      - A file this callback writes (0600, replaced) with the paths of the run's record - C({"id", "json", "markdown"}) -
        so that a caller (the tradeops_dr Python API) reads where the record is as data, not from the output. Empty to
        skip.
    type: str
    default: ''
    env:
      - name: TRADEOPS_DR_RECORD_POINTER
  notify_on:
    description: >-
      The run statuses that notify (V(not admitted): an automatic response to an alert that its guardrails refused -
      maintenance, the hourly limit - which people must then handle).
    type: list
    elements: str
    default: [failed, approval needed, refused, stopped, recovered, broken, not admitted]
    env:
      - name: TRADEOPS_DR_NOTIFY_ON
    ini:
      - section: callback_tradeops_incident
        key: notify_on
'''

import datetime
import getpass
import hashlib
import json
import os
import re
import socket
import time

from ansible import context
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import open_url
from ansible.plugins.callback import CallbackBase
from ansible_collections.tradeops.dr.plugins.module_utils import _manifest, _severity

# runbook 004, section 1, by what a playbook recovers
HIDDEN = 'hidden (no_log)'


def _iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')[:-4] + 'Z'


def _stamp(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')


_USERINFO = re.compile(r'(://)[^/@\s]+@')


def redact_url(text):
    """A URL (or a message holding one) without its user info (user:password@)."""
    return _USERINFO.sub(r'\1***@', to_text(text))


def md_text(text):
    """A value from outside (an incident id, a reason) as one line of Markdown: no line break that starts a
    heading or a list, no table separator, no HTML."""
    text = re.sub(r'[\r\n\x00-\x1f]+', ' ', to_text(text))
    return text.replace('|', '\\|').replace('<', '&lt;').replace('>', '&gt;').replace('#', '\\#')


def file_stem(incident):
    """The incident id as a file name: safe characters only, at most 64 of them; an id that had to change
    gets a digest of the whole id, so two long ids never share a record."""
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in incident).lstrip('.')
    if safe != incident or len(safe) > 64:
        safe = '%s-%s' % (safe[:64], hashlib.sha256(incident.encode('utf-8')).hexdigest()[:10])
    return safe


def incident_id(extra_vars, environ, now):
    # never the approval (dr_approve): an approval code names a plan, not the incident
    for value in (extra_vars.get('dr_incident_id'), environ.get('TRADEOPS_DR_INCIDENT_ID')):
        if value:
            return to_text(value)
    return 'INC-' + _stamp(now)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'tradeops.dr.incident'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self.started = time.time()
        self.playbook = ''
        self.incident = None
        self.extra_vars = {}
        self.timeline = []
        self.task_started = {}
        self.host_started = {}
        self.plays = []

    # ---- collecting ----------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(to_text(playbook._file_name))

    def v2_playbook_on_play_start(self, play):
        self.plays.append(to_text(play.get_name()))
        if self.incident is None:
            try:
                self.extra_vars = dict(play.get_variable_manager().extra_vars)
            except Exception:  # pylint: disable=broad-except
                self.extra_vars = {}
            self.incident = incident_id(self.extra_vars, os.environ, self.started)
            # the playbook reads the same id (forked workers inherit this environment)
            os.environ['TRADEOPS_DR_INCIDENT_ID'] = self.incident

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.task_started[task._uuid] = time.time()

    def v2_runner_on_start(self, host, task):
        self.host_started[(host.get_name(), task._uuid)] = time.time()

    def _add(self, result, status):
        task, host = result._task, result._host.get_name()
        end = time.time()
        start = self.host_started.pop((host, task._uuid), self.task_started.get(task._uuid, end))
        res = result._result
        if res.get('censored') or task.no_log is True:
            msg = HIDDEN
        else:
            msg = res.get('msg') or ''
            if not msg and status == 'failed':
                msg = res.get('stderr') or res.get('reason') or ''
            msg = to_text(msg if isinstance(msg, (str, bytes)) else json.dumps(msg, default=str))[:2000]
        changed = bool(res.get('changed'))
        role = task._role.get_name() if getattr(task, '_role', None) else ''
        self.timeline.append(dict(
            host=host, task=to_text(task.name or task.action), role=role, action=task.action, start=_iso(start), end=_iso(end),
            seconds=round(end - start, 3), status=('changed' if changed and status == 'ok' else status), changed=changed,
            ignored=bool(getattr(task, 'ignore_errors', False)) and status == 'failed', msg=msg))

    def v2_runner_on_ok(self, result):
        self._add(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._add(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._add(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._add(result, 'unreachable')

    # ---- the record ----------------------------------------------------------------------------
    def _record(self, stats):
        ended = time.time()
        custom = (getattr(stats, 'custom', None) or {}).get('_run', {})
        dr = custom.get('dr_recovery') or {}
        hosts = sorted(stats.processed.keys())
        summary = dict((h, stats.summarize(h)) for h in hosts)
        failed = sum(s['failures'] + s['unreachable'] for s in summary.values())
        changed = sum(s['changed'] for s in summary.values())
        status = dr.get('status') or ('failed' if failed else ('changed' if changed else 'ok'))
        components, symptoms = {}, []
        for name, per_host in (dr.get('components') or {}).items():
            for host, e in per_host.items():
                components.setdefault(name, {})[host] = dict(
                    outcome=e.get('outcome'), seconds=e.get('seconds'), rto_seconds=e.get('rto_seconds'),
                    before=e.get('before'), after=e.get('after'))
                if e.get('before') not in ('healthy', 'active', 'engaged'):
                    symptoms.append('%s on %s: %s (%s)' % (name, host, e.get('before'), e.get('evidence_before')))
        for key, rec in custom.items():  # records the roles exported (database_recovery, redis_recovery, ...)
            if key.endswith('_recovery') and key != 'dr_recovery' and isinstance(rec, dict):
                for host, r in rec.items():
                    if isinstance(r, dict) and r.get('problems_found'):
                        symptoms.append('%s on %s: %s' % (key, host, '; '.join(map(to_text, r['problems_found']))))
        loss = {}
        for host, r in (custom.get('database_recovery') or {}).items():
            if isinstance(r, dict) and r.get('restored'):
                loss['postgres on %s' % host] = '%s s of writes after the backup (kept aside in %s)' % (
                    r.get('data_loss_window_s'), r.get('aside'))
        for host, r in (custom.get('redis_recovery') or {}).items():
            aof = isinstance(r, dict) and r.get('aof') or {}
            if isinstance(aof, dict) and aof.get('bytes_lost'):
                loss['redis on %s' % host] = '%s bytes cut from the AOF (copy kept aside)' % aof['bytes_lost']
        # what happened, not which playbook ran (runbook 004 section 1); full_recovery.yml's own
        # classification is a floor this never lowers
        classification, severity_reasons = _severity.classify(_severity.signals(custom, self.timeline),
                                                              floor=dr.get('classification'))
        if classification == 'none' and failed and status not in ('bad input', 'not admitted'):
            classification, severity_reasons = 'P4', ['the run failed; what it means for trading is not known']
        actions = ['%s on %s: %s' % (e['task'], e['host'], e['msg'] or 'changed') for e in self.timeline if e['changed']]
        inventory = context.CLIARGS.get('inventory') or []
        return dict(
            id=self.incident or incident_id({}, os.environ, self.started), entry_type='incident',
            playbook=self.playbook, plays=self.plays, user=getpass.getuser(), control_node=socket.gethostname(),
            inventory=list(inventory), limit=context.CLIARGS.get('subset'), check_mode=bool(context.CLIARGS.get('check')),
            started=_iso(self.started), ended=_iso(ended), duration_seconds=round(ended - self.started, 2),
            status=status, reason=dr.get('reason', ''), classification=classification,
            classification_reasons=severity_reasons, symptoms=symptoms,
            actions=actions, recovery_seconds=dr.get('recovery_seconds', round(ended - self.started, 2)),
            components=components,
            data_loss=loss or ('none known' if status in ('recovered', 'healthy', 'ok') else 'unknown'),
            hosts=summary, root_cause='', prevention='', lessons_learned='',
            trigger=custom.get('dr_trigger') or None,
            approved_by=dr.get('approved_by'), timeline=self.timeline)

    @staticmethod
    def markdown(rec):
        out = ['# Incident %s - %s' % (md_text(rec['id']), rec['status'].upper()), '',
               '| | |', '|---|---|',
               '| Date | %s |' % rec['started'], '| Playbook | %s |' % rec['playbook'],
               '| Run by | %s on %s |' % (rec['user'], rec['control_node']),
               '| Inventory | %s |' % ', '.join(rec['inventory']),
               '| Classification | %s (runbook 004)%s |' % (rec['classification'], (': ' + md_text(
                   ', '.join(rec.get('classification_reasons') or []))) if rec.get('classification_reasons') else ''),
               '| Recovery time | %s s |' % rec['recovery_seconds'],
               '| Data loss | %s |' % (
                   rec['data_loss'] if isinstance(rec['data_loss'], str)
                   else '; '.join('%s: %s' % kv for kv in rec['data_loss'].items())),
               '| Check mode | %s |' % rec['check_mode']]
        trigger = rec.get('trigger')
        if trigger:
            keys = ('name', 'severity', 'component', 'starts_at_iso', 'detection_delay_seconds', 'reason')
            out.append('| Trigger | alert %s (%s, %s) firing since %s, run after %s s: %s |' % tuple(
                md_text(str(trigger.get(k, ''))) for k in keys))
        out += ['', rec['reason'], '', '## Symptoms', '']
        out += ['- %s' % s for s in rec['symptoms']] or ['- none found']
        out += ['', '## Recovery per component', '', '| component | host | before | after | outcome | seconds | RTO |',
                '|---|---|---|---|---|---|---|']
        for name, per_host in sorted(rec['components'].items()):
            for host, e in sorted(per_host.items()):
                out.append('| %s | %s | %s | %s | %s | %s | %s |' % (name, host, e['before'], e['after'], e['outcome'],
                                                                     e['seconds'], e['rto_seconds'] or '-'))
        out += ['', '## Actions taken', '']
        out += ['- %s' % a for a in rec['actions']] or ['- nothing was changed']
        out += ['', '## Timeline (tasks that ran; skipped ones are in the JSON record)', '',
                '| start | end | host | task | status | message |', '|---|---|---|---|---|---|']
        for e in rec['timeline']:
            if e['status'] != 'skipped':
                task = '%s : %s' % (e['role'], e['task']) if e['role'] else e['task']
                msg = e['msg'].replace('|', '\\|').replace('\n', ' ')[:300]
                out.append('| %s | %s | %s | %s | %s | %s |' % (e['start'][11:], e['end'][11:], e['host'], task,
                                                                e['status'], msg))
        out += ['', '## Root cause', '', '_(for a person to fill in)_', '', '## Prevention', '', '- [ ] _(action item)_', '',
                '## Lessons learned', '', '_(for a person to fill in)_', '']
        return '\n'.join(out)

    def v2_playbook_on_stats(self, stats):
        rec = self._record(stats)
        folder = os.path.expanduser(self.get_option('incidents_dir'))
        try:
            if not os.path.isdir(folder):
                os.makedirs(folder, 0o700)
            base = os.path.join(folder, '%s_%s' % (file_stem(rec['id']), _stamp(self.started)))
            for path, text in ((base + '.json', json.dumps(rec, indent=2, default=str)), (base + '.md', self.markdown(rec))):
                _manifest.write_text_atomic(path, text + '\n', mode=0o600)
        except (IOError, OSError) as exc:
            self._display.warning('tradeops.dr.incident: the incident record could not be written to %s: %s' % (folder, exc))
            return
        self._display.display('incident record: %s.md (and .json)' % base)
        self._point(rec, base)
        self._post(rec)
        self._notify(rec, base + '.md')

    def _point(self, rec, base):
        pointer = self.get_option('record_pointer')
        if not pointer:
            return
        try:
            _manifest.write_text_atomic(os.path.expanduser(pointer), json.dumps(dict(
                id=rec['id'], json=base + '.json', markdown=base + '.md')), mode=0o600)
        except (IOError, OSError) as exc:
            self._display.warning('tradeops.dr.incident: where the record is could not be written to %s: %s' % (pointer, exc))

    def _post(self, rec):
        url = self.get_option('journal_url')
        if not url:
            return
        headers = {'Content-Type': 'application/json'}
        if self.get_option('journal_token'):
            headers['Authorization'] = 'Bearer %s' % self.get_option('journal_token')
        body = dict(rec, title='Incident %s: %s' % (rec['id'], rec['status']), body=self.markdown(rec))
        try:
            open_url(url, data=json.dumps(body, default=str), headers=headers, method='POST', timeout=10)
        except Exception as exc:  # pylint: disable=broad-except
            self._display.warning('tradeops.dr.incident: the Decision Journal at %s did not take the record: %s'
                                  % (redact_url(url), redact_url(exc)))

    def _notify(self, rec, md_path):
        urls = [u for u in self.get_option('notify_urls').replace(',', ' ').split() if u]
        if not urls or rec['status'] not in self.get_option('notify_on'):
            return
        try:
            import apprise  # pylint: disable=import-outside-toplevel
        except ImportError:
            self._display.warning('tradeops.dr.incident: notify_urls is set but apprise is not installed (pip install apprise)')
            return
        sender = apprise.Apprise()
        for url in urls:
            sender.add(url)
        body = '%s\n%s %s, %s s, run by %s on %s\nrecord: %s' % (
            rec['reason'], rec['playbook'], rec['classification'], rec['recovery_seconds'], rec['user'], rec['control_node'],
            md_path)
        if not sender.notify(title='[%s] incident %s: %s' % (rec['classification'], md_text(rec['id'])[:120], rec['status']),
                             body=body):
            self._display.warning('tradeops.dr.incident: not every notification was delivered (%d URL(s))' % len(urls))
