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
    description:
      - apprise URLs of the people to tell (runbook 004 section 6), separated by spaces; C(tags=URL) gives a URL to
        audiences - V(ops) (the technical detail), V(risk) (the kill switch, positions, P&L, exposure), V(stakeholders)
        (a summary only) - and to the escalation levels of runbook 002 (V(level2), V(level3), V(level4)); an
        untagged URL serves ops (commas may separate untagged URLs). Empty to skip.
      - During a run of C(full_recovery.yml) (and any playbook that engages the kill switch), stages that change
        trading are told at once, without waiting for the recovery - V(opened) (a P1/P2 incident found broken),
        V(kill switch engaged), V(approval needed) (the plan and its approval code) - and the end, per
        O(notify_on). Each notification and escalation is a line of the record's timeline.
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
  escalate_after:
    description:
      - Runbook 002's escalation ladder - an incident not resolved this fraction of the RTO of what broke after it
        opened is escalated to the V(level2) contacts, after twice that to V(level3), three times to V(level4)
        (the same for each level); a failed recovery escalates to V(level2) at the end. Only with level contacts
        in O(notify_urls).
    type: float
    default: 0.5
    env:
      - name: TRADEOPS_DR_ESCALATE_AFTER
  escalate_seconds:
    description: Each escalation level's time in seconds, instead of O(escalate_after) x the RTO (0 - use the RTO).
    type: float
    default: 0
    env:
      - name: TRADEOPS_DR_ESCALATE_SECONDS
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
import queue
import socket
import threading
import time

from ansible import context
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.callback import CallbackBase
from ansible_collections.tradeops.dr.plugins.module_utils import _manifest, _notify, _severity

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
        # who is told what, and when (module_utils/_notify): the incident as known so far, the stages told,
        # notifications in flight, the escalation timer
        self.lock = threading.Lock()
        self.event = {}
        self.stages = set()
        self.notified = []
        self.escalations = []
        self.outbox = None  # one sender, in order: a person reads the stages as they happened
        self.done = threading.Event()
        self.targets = None

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
        # a task in check mode (the worker's templated fields say so) reports what it would change: a plan, not an
        # action - e.g. a restore that waits for its approval inside a real run
        fields = getattr(result, 'task_fields', None) or getattr(result, '_task_fields', None) or {}
        planned = changed and status == 'ok' and fields.get('check_mode') is True
        changed = changed and not planned
        role = task._role.get_name() if getattr(task, '_role', None) else ''
        if status == 'ok':
            self._watch(res, host)
        self.timeline.append(dict(
            host=host, task=to_text(task.name or task.action), role=role, action=task.action, start=_iso(start), end=_iso(end),
            seconds=round(end - start, 3), status=('changed' if changed and status == 'ok' else
                                                   'planned' if planned else status),
            changed=changed, ignored=bool(getattr(task, 'ignore_errors', False)) and status == 'failed', msg=msg))

    # ---- stages, as data the run sets (facts and stats), never task names ----------------------------
    def _watch(self, res, host):
        facts = res.get('ansible_facts') or {}
        stats = (res.get('ansible_stats') or {}).get('data') or {}
        opened = facts.get('dr_incident')
        if isinstance(opened, dict) and opened.get('classification'):
            self.event.update(classification=opened['classification'], broken=opened.get('broken') or [],
                              rto_seconds=opened.get('rto_seconds'))
            if opened['classification'] in ('P1', 'P2'):
                self._stage('opened')
        if facts.get('dr_destructive'):
            self.event.update(steps=facts['dr_destructive'], code=facts.get('dr_approval_code'))
        if facts.get('dr_approved') is False and self.event.get('steps') and 'diagnose' not in self._tags():
            self._stage('approval needed')
        outcomes = facts.get('dr_outcomes')
        switch = (outcomes.get('kill_switch') or {}) if isinstance(outcomes, dict) else {}
        for per_host in (stats.get('kill_switch') or {}).values():
            if isinstance(per_host, dict) and per_host.get('outcome') in ('engaged', 'escalated'):
                switch = dict(outcome='engaged', message='on %s' % host)
        if str(switch.get('outcome', '')).startswith('engaged'):
            self.event['switch'] = dict(outcome=switch['outcome'], message=to_text(switch.get('message', ''))[:600])
            self._stage('kill switch engaged')

    @staticmethod
    def _tags():
        return context.CLIARGS.get('tags') or ()

    def _targets(self):
        if self.targets is None:
            try:
                self.targets = _notify.parse_targets(self.get_option('notify_urls'))
            except _notify.NotifyError as exc:
                self._display.warning('tradeops.dr.incident: %s; nobody is notified' % exc)
                self.targets = []
        return self.targets

    def _stage(self, stage):
        """Tell the stage's audiences at once (in the background: the recovery does not wait for it)."""
        if stage in self.stages or context.CLIARGS.get('check') or not self._targets():
            return
        self.stages.add(stage)
        self.event.setdefault('incident', self.incident)
        self.event.setdefault('playbook', self.playbook)
        self._send(stage, _notify.STAGE_AUDIENCES[stage], dict(self.event, stage=stage))
        if stage == 'opened':
            self._arm_escalation()

    def _send(self, what, audiences, event):
        """Queue the notifications of a stage for the sender thread (the run does not wait for them)."""
        with self.lock:
            if self.outbox is None:
                self.outbox = queue.Queue()
                self.sender = threading.Thread(target=self._sender, daemon=True)
                self.sender.start()
            for audience in audiences:
                urls = [url for tags, url in self._targets() if audience in tags]
                if urls:
                    title, body = _notify.compose('ops' if audience in _notify.LEVELS else audience, event)
                    self.outbox.put((what, audience, urls, title, body))

    def _sender(self):
        while True:
            job = self.outbox.get()
            if job is None:
                return
            self._deliver(*job)

    def _deliver(self, what, audience, urls, title, body):
        start = time.time()
        try:
            import apprise  # pylint: disable=import-outside-toplevel
            sender = apprise.Apprise()
            for url in urls:
                sender.add(url)
            ok = bool(sender.notify(title=title, body=body))
        except ImportError:
            ok = False
            self._display.warning('tradeops.dr.incident: notify_urls is set but apprise is not installed (pip install apprise)')
        except Exception as exc:  # pylint: disable=broad-except  # a notification never fails the run
            ok = False
            self._display.warning('tradeops.dr.incident: notifying %s failed: %s' % (audience, redact_url(exc)))
        if not ok:
            self._display.warning('tradeops.dr.incident: not every notification was delivered (%s, %s, %d URL(s))'
                                  % (what, audience, len(urls)))
        end = time.time()
        with self.lock:
            self.notified.append(dict(stage=what, audience=audience, at=_iso(start), delivered=ok))
            self.timeline.append(dict(host='localhost', task='Notified %s: %s' % (audience, what), role='',
                                      action='tradeops.dr.incident', start=_iso(start), end=_iso(end),
                                      seconds=round(end - start, 3), status='ok' if ok else 'failed', changed=False,
                                      ignored=False, msg=title))

    def _levels(self):
        return [lvl for lvl in _notify.LEVELS if any(lvl in tags for tags, _url in self._targets())]

    def _arm_escalation(self):
        ladder = _notify.schedule(self.event.get('rto_seconds'), self.get_option('escalate_after'),
                                  self.get_option('escalate_seconds'))
        if not ladder or not self._levels():
            return
        opened = time.time()

        def climb():
            for after, level in ladder:
                if self.done.wait(max(0.0, opened + after - time.time())):
                    return
                self._escalate(level, round(after, 1))

        threading.Thread(target=climb, daemon=True).start()

    def _escalate(self, level, after, why=None):
        with self.lock:
            if any(e['level'] == level for e in self.escalations):
                return
            self.escalations.append(dict(level=level, at=_iso(time.time()), after_seconds=after,
                                         why=why or 'not resolved %s s after it opened' % after))
        self._send('escalated to %s' % level, [level], dict(self.event, stage='escalated', level=level,
                                                            after_seconds=after))

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
        for host, r in (custom.get('fileset_recovery') or {}).items():
            if isinstance(r, dict) and r.get('written') and not r.get('dry_run'):
                loss['files on %s' % host] = '%s s of changes after set %s (the files it replaced kept aside in %s)' % (
                    r.get('data_loss_window_s'), r.get('restored_from'), r.get('pre_restore_backup'))
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
        # in a run in check mode every task is a plan: the record's check_mode says so already
        planned = [] if context.CLIARGS.get('check') else [
            '%s on %s' % (e['task'], e['host']) for e in self.timeline if e['status'] == 'planned']
        inventory = context.CLIARGS.get('inventory') or []
        impact, postmortem = self._aftermath(dr, custom, status, classification, severity_reasons, symptoms, loss)
        return dict(
            id=self.incident or incident_id({}, os.environ, self.started), entry_type='incident',
            playbook=self.playbook, plays=self.plays, user=getpass.getuser(), control_node=socket.gethostname(),
            inventory=list(inventory), limit=context.CLIARGS.get('subset'), check_mode=bool(context.CLIARGS.get('check')),
            started=_iso(self.started), ended=_iso(ended), duration_seconds=round(ended - self.started, 2),
            status=status, reason=dr.get('reason', ''), classification=classification,
            classification_reasons=severity_reasons, symptoms=symptoms,
            actions=actions, planned=planned, recovery_seconds=dr.get('recovery_seconds', round(ended - self.started, 2)),
            components=components,
            data_loss=loss or ('none known' if status in ('recovered', 'healthy', 'ok') else 'unknown'),
            hosts=summary, root_cause='', prevention='', lessons_learned='',
            trigger=custom.get('dr_trigger') or None, impact=impact, postmortem=postmortem,
            approved_by=dr.get('approved_by'), timeline=self.timeline)

    @staticmethod
    def _aftermath(dr, custom, status, classification, reasons, symptoms, loss):
        """The incident report's impact (runbook 003) and the postmortem's times (trigger, detection, time to
        detect / mitigate / resolve, action items): what the run knows, the rest left for a person (None)."""
        trigger = custom.get('dr_trigger') or {}
        engaged = [e.get('seconds') for e in ((dr.get('components') or {}).get('kill_switch') or {}).values()
                   if str(e.get('outcome', '')).startswith('engaged') and e.get('seconds') is not None]
        resolved = status in ('recovered', 'healthy')
        if engaged:
            trading = 'halted by the kill switch %s s after the run started; halted until the operator resets it' % (
                min(engaged))
        elif classification in ('P1', 'P2'):
            trading = 'affected (%s)' % ', '.join(reasons)
        else:
            trading = 'not known to be affected'
        impact = dict(trading=trading, financial=None, data='; '.join('%s: %s' % kv for kv in sorted(loss.items())) or None,
                      downtime_seconds=(dr.get('recovery_seconds') if symptoms and resolved else None))
        postmortem = dict(
            trigger=('alert %s (%s)' % (trigger.get('name'), trigger.get('component'))) if trigger else 'a person started the run',
            detected=trigger.get('starts_at_iso'), time_to_detect_seconds=trigger.get('detection_delay_seconds'),
            time_to_mitigate_seconds=min(engaged) if engaged else None,
            time_to_resolve_seconds=dr.get('recovery_seconds') if resolved and dr else None,
            action_items=[dict(item=None, owner=None)])
        return impact, postmortem

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
        out_impact = CallbackModule._impact_markdown(rec)
        out += ['- %s' % s for s in rec['symptoms']] or ['- none found']
        out += ['', '## Recovery per component', '', '| component | host | before | after | outcome | seconds | RTO |',
                '|---|---|---|---|---|---|---|']
        for name, per_host in sorted(rec['components'].items()):
            for host, e in sorted(per_host.items()):
                out.append('| %s | %s | %s | %s | %s | %s | %s |' % (name, host, e['before'], e['after'], e['outcome'],
                                                                     e['seconds'], e['rto_seconds'] or '-'))
        out += out_impact
        out += ['', '## Actions taken', '']
        out += ['- %s' % a for a in rec['actions']] or ['- nothing was changed']
        if rec['planned']:
            out += ['', '## Planned, not done (waiting for approval)', '']
            out += ['- %s' % a for a in rec['planned']]
        out += ['', '## Timeline (tasks that ran; skipped ones are in the JSON record)', '',
                '| start | end | host | task | status | message |', '|---|---|---|---|---|---|']
        for e in rec['timeline']:
            if e['status'] != 'skipped':
                task = '%s : %s' % (e['role'], e['task']) if e['role'] else e['task']
                msg = e['msg'].replace('|', '\\|').replace('\n', ' ')[:300]
                out.append('| %s | %s | %s | %s | %s | %s |' % (e['start'][11:], e['end'][11:], e['host'], task,
                                                                e['status'], msg))
        if rec.get('notifications') or rec.get('escalations'):
            out += ['', '## Who was told', '']
            out += ['- %s %s: %s%s' % (n['at'], n['audience'], md_text(n['stage']), '' if n['delivered'] else ' (NOT delivered)')
                    for n in rec.get('notifications') or []]
            out += ['- %s escalated to %s: %s' % (e['at'], e['level'], md_text(e['why'])) for e in rec.get('escalations') or []]
        out += ['', '## Root cause', '', '_(for a person to fill in)_', '', '## Prevention', '', '- [ ] _(action item)_', '',
                '## Lessons learned', '', '_(for a person to fill in)_', '']
        return '\n'.join(out)

    @staticmethod
    def _impact_markdown(rec):
        person = '_(for a person to fill in)_'
        impact, pm = rec.get('impact') or {}, rec.get('postmortem') or {}

        def secs(value, none=person):
            return none if value is None else '%s s' % value
        out = ['', '## Impact (runbook 003 incident report)', '', '| | |', '|---|---|',
               '| Trading | %s |' % md_text(impact.get('trading') or person),
               '| Downtime | %s |' % (('at least %s s (from the run\'s start until every component held)'
                                       % impact['downtime_seconds']) if impact.get('downtime_seconds') is not None
                                      else person),
               '| Financial | %s |' % (impact.get('financial') or person),
               '| Data | %s |' % md_text(impact.get('data') or 'none known'),
               '', '## Postmortem', '', '| | |', '|---|---|',
               '| Trigger | %s |' % md_text(pm.get('trigger') or person),
               '| Detected | %s |' % (pm.get('detected') or person),
               '| Time to detect | %s |' % secs(pm.get('time_to_detect_seconds')),
               '| Time to mitigate | %s |' % secs(pm.get('time_to_mitigate_seconds'), 'nothing mitigated by this run'),
               '| Time to resolve | %s |' % secs(pm.get('time_to_resolve_seconds'), 'not resolved by this run'),
               '', '| Action item | Owner |', '|---|---|']
        out += ['| %s | %s |' % (md_text(a.get('item') or person), md_text(a.get('owner') or person))
                for a in pm.get('action_items') or [{}]]
        return out

    def v2_playbook_on_stats(self, stats):
        rec = self._record(stats)
        folder = os.path.expanduser(self.get_option('incidents_dir'))
        base = os.path.join(folder, '%s_%s' % (file_stem(rec['id']), _stamp(self.started)))
        # people first (the end, a failed recovery's escalation); the record then holds what they were told
        self._notify(rec, base + '.md')
        with self.lock:
            rec.update(notifications=list(self.notified), escalations=list(self.escalations),
                       timeline=list(self.timeline))
        md = self.markdown(rec)
        try:
            if not os.path.isdir(folder):
                os.makedirs(folder, 0o700)
            for path, text in ((base + '.json', json.dumps(rec, indent=2, default=str)), (base + '.md', md)):
                _manifest.write_text_atomic(path, text + '\n', mode=0o600)
        except (IOError, OSError) as exc:
            self._display.warning('tradeops.dr.incident: the incident record could not be written to %s: %s' % (folder, exc))
            return
        self._display.display('incident record: %s.md (and .json)' % base)
        self._point(rec, base)
        self._post(rec, md)

    def _point(self, rec, base):
        pointer = self.get_option('record_pointer')
        if not pointer:
            return
        try:
            _manifest.write_text_atomic(os.path.expanduser(pointer), json.dumps(dict(
                id=rec['id'], json=base + '.json', markdown=base + '.md')), mode=0o600)
        except (IOError, OSError) as exc:
            self._display.warning('tradeops.dr.incident: where the record is could not be written to %s: %s' % (pointer, exc))

    def _post(self, rec, md):
        url = self.get_option('journal_url')
        if not url:
            return
        headers = {'Content-Type': 'application/json'}
        if self.get_option('journal_token'):
            headers['Authorization'] = 'Bearer %s' % self.get_option('journal_token')
        # the Decision Journal's own shape (runbook 000: entry_type, content), the record's fields beside it
        body = dict(rec, title='Incident %s: %s' % (rec['id'], rec['status']), content=md, body=md)
        # imported here, not with the plugin: ansible.module_utils.urls (ssl, http.client) took 42 ms of every
        # ansible-playbook start, and a journal is posted to at most once a run
        from ansible.module_utils.urls import open_url

        try:
            open_url(url, data=json.dumps(body, default=str), headers=headers, method='POST', timeout=10)
        except Exception as exc:  # pylint: disable=broad-except
            self._display.warning('tradeops.dr.incident: the Decision Journal at %s did not take the record: %s'
                                  % (redact_url(url), redact_url(exc)))

    def _notify(self, rec, md_path):
        self.done.set()  # the ladder stops: the run ended
        self.event.update(incident=rec['id'], playbook=rec['playbook'],
                          classification=self.event.get('classification') or rec['classification'])
        if rec['status'] == 'failed' and 'level2' in self._levels() and not context.CLIARGS.get('check'):
            self._escalate('level2', rec['duration_seconds'], why='the recovery failed (runbook 002 level 2)')
        if self._targets() and rec['status'] in self.get_option('notify_on'):
            event = dict(self.event, stage='end', incident=rec['id'], classification=rec['classification'],
                         playbook=rec['playbook'], status=rec['status'], reason=rec['reason'],
                         recovery_seconds=rec['recovery_seconds'], components=rec['components'], record=md_path,
                         halted='switch' in self.event)
            self._send(rec['status'], _notify.AUDIENCES, event)
        with self.lock:
            outbox = self.outbox
        if outbox is not None:
            outbox.put(None)  # after everything queued: the sender ends once it is delivered
            self.sender.join(120)
