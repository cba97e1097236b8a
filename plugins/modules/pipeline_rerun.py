#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pipeline_rerun
short_description: Re-run a failed pipeline run from its failure (Dagster or Airflow) and wait until it succeeds
version_added: 0.1.0
description:
  - The recovery of runbook 000 scenario 5 ("If pipeline run failed - re-trigger the failed asset") and of runbook
    001's Airflow DAGs, through the orchestrator's API.
  - The run re-executed is O(run_id), or else the job's newest run when it failed or was canceled. Dagster re-executes
    it from its failure (a new run whose parent is the failed one; the steps that succeeded are not run again);
    Airflow clears the run's failed task instances (the same run, queued again), as C(airflow tasks clear
    --only-failed) does.
  - The module then waits for the run to end and fails unless it succeeded, naming the steps that failed again.
  - Idempotent - a job whose newest run succeeded is left alone (nothing to re-run); one whose newest run is queued
    or running is waited for, never launched a second time.
  - Refused, nothing launched - an unknown job or run, a run of another job, a job without any run (launching it
    afresh is not a re-run), a paused Airflow DAG (the cleared run would never start), an orchestrator that does not
    answer or is not healthy (a Dagster daemon or an Airflow scheduler down - the run would never start).
extends_documentation_fragment:
  - tradeops.dr.pipeline
options:
  job:
    description: The job (Dagster) or DAG id (Airflow).
    type: str
    required: true
  run_id:
    description:
      - The failed run to re-execute. Default - the job's newest run, when it failed or was canceled.
    type: str
  reason:
    description:
      - Why (the incident), kept with the run - a Dagster tag C(tradeops.dr/reason), the note of Airflow's clear.
    type: str
    default: re-run by tradeops.dr
  wait_timeout:
    description:
      - Seconds to wait for the run to end (runbook 000 line 350 - a pipeline re-run takes 5-15 minutes). When they
        pass, the module fails and the run goes on.
    type: float
    default: 900
  poll:
    description: The longest pause between two reads of the run's state (seconds; the first reads come sooner).
    type: float
    default: 2
attributes:
  check_mode:
    support: full
    description: Says which run it would re-execute; launches nothing.
  diff_mode:
    support: none
    description: The module reports what it did in its return values.
  idempotent:
    support: full
    description: A job whose newest run succeeded, is queued or runs is not re-run.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Re-run the failed morning pack from its failure and wait (runbook 000 scenario 5)
  tradeops.dr.pipeline_rerun:
    backend: dagster
    url: http://127.0.0.1:3001
    job: morning_pack
    reason: INC-20261206-0615 pipeline failure

- name: Clear the failed tasks of a DAG run in Airflow and wait for it (runbook 001)
  tradeops.dr.pipeline_rerun:
    backend: airflow
    url: http://127.0.0.1:8080
    username: ops
    password: "{{ vault_airflow_password }}"
    job: usdcop_daily
    run_id: scheduled__2026-12-06T05:00:00+00:00
    wait_timeout: 1800
'''

RETURN = r'''
failed_run:
  description: The failed run the module re-executed (or would, in check mode); null when there was none.
  returned: always
  type: dict
  sample: {id: 0f6f6a16-e266-4f0e-b207-889e4d5841bb, job: morning_pack, status: failed, failed_steps: [build_pack]}
run:
  description: The run after the module (the re-execution, the run it waited for, or the newest run left alone).
  returned: always
  type: dict
  sample: {id: 98b81707-dba7-44e4-8fb2-83f3b57a3104, job: morning_pack, status: success, parent: 0f6f6a16-e266-4f0e-b207-889e4d5841bb}
waited:
  description: Seconds spent waiting for the run to end.
  returned: always
  type: float
msg:
  description: What was done, in one line.
  returned: always
  type: str
  sample: "morning_pack: run 0f6f6a16 (failed at build_pack) re-executed from its failure as 98b81707: success after 6.1 s"
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _pipeline


def _short(run):
    return run['id'][:8] if len(run['id']) > 20 and '-' in run['id'][:9] else run['id']


def _where(run):
    return ' at %s' % ', '.join(run['failed_steps']) if run.get('failed_steps') else ''


def main():
    module = AnsibleModule(
        argument_spec=_pipeline.pipeline_argument_spec(
            job=dict(type='str', required=True),
            run_id=dict(type='str'),
            reason=dict(type='str', default='re-run by tradeops.dr'),
            wait_timeout=dict(type='float', default=900),
            poll=dict(type='float', default=2),
        ),
        supports_check_mode=True,
    )
    p = module.params
    job = (p['job'] or '').strip()
    if not job:
        module.fail_json(msg='job is empty: name the job (Dagster) or DAG id (Airflow) to re-run; nothing was launched')
    if p['wait_timeout'] <= 0 or p['poll'] <= 0:
        module.fail_json(msg='wait_timeout and poll are seconds above 0; nothing was launched')
    with _pipeline.connected(module) as backend:
        _rerun(module, backend, job)


def _rerun(module, backend, job):
    p = module.params
    result = dict(changed=False, failed_run=None, run=None, waited=0.0)
    try:
        health = backend.health(p['heartbeat_max_age'])
        if health['problems']:
            module.fail_json(msg='%s at %s is not healthy (%s): a re-run would not start. Restart it first '
                                 '(tradeops.dr.pipeline_recovery does); nothing was launched'
                                 % (p['backend'].capitalize(), backend.url, '; '.join(health['problems'])), **result)
        unknown = _pipeline.unknown_job(backend, health, job)
        if unknown:
            module.fail_json(msg='%s; nothing was launched' % unknown, **result)
        if backend.backend == 'airflow' and backend.check_job(job)['paused']:
            module.fail_json(msg='DAG %s is paused in Airflow at %s: a cleared run would never start. Unpausing is its '
                                 "owner's decision; nothing was launched" % (job, backend.url), **result)
        if p['run_id']:
            target = backend.run(job, p['run_id'])
            if target['job'] != job:
                module.fail_json(msg='run %s is a run of %s, not of %s; nothing was launched'
                                     % (p['run_id'], target['job'], job), **result)
            newest = backend.runs(job, 1)
            if newest and newest[0]['id'] != target['id'] and newest[0]['parent'] == target['id'] \
                    and newest[0]['status'] != 'failed':
                target = newest[0]  # its re-execution exists already: wait for it or report it, never launch another
        else:
            runs = backend.runs(job, 1)
            if not runs:
                module.fail_json(msg='%s has no run in %s at %s: there is nothing to re-run (launching it afresh is not '
                                     'a re-run); nothing was launched' % (job, backend.backend, backend.url), **result)
            target = runs[0]

        if target['status'] == 'success':
            result.update(run=target, msg='%s: run %s succeeded; nothing to re-run' % (job, _short(target)))
            module.exit_json(**result)
        if target['status'] in ('queued', 'running'):
            if module.check_mode:
                result.update(run=target, msg='%s: run %s is %s; it would be waited for, not launched again'
                              % (job, _short(target), target['status']))
                module.exit_json(**result)
            run, waited, ended = _pipeline.wait_for(backend, target, p['wait_timeout'], p['poll'])
            result.update(run=run, waited=waited)
            if not ended:
                module.fail_json(msg='%s: run %s is still %s after %s s; it goes on' % (job, _short(run), run['status'],
                                                                                        waited), **result)
            if run['status'] != 'success':
                module.fail_json(msg='%s: run %s (already running, not launched by this module) ended %s%s'
                                     % (job, _short(run), run['status'], _where(run)), **result)
            result['msg'] = '%s: run %s was already %s; it succeeded after %s s' % (job, _short(run), target['status'],
                                                                                    waited)
            module.exit_json(**result)

        # failed or canceled: re-execute it from its failure
        result.update(changed=True, failed_run=target)
        if module.check_mode:
            result.update(run=target, msg='%s: run %s (%s%s) would be re-executed from its failure'
                          % (job, _short(target), target['status'], _where(target)))
            module.exit_json(**result)
        run = backend.rerun(target, p['reason'])
        run, waited, ended = _pipeline.wait_for(backend, run, p['wait_timeout'], p['poll'])
        result.update(run=run, waited=waited)
        how = 'as %s' % _short(run) if run['id'] != target['id'] else '(its failed tasks cleared)'
        if not ended:
            module.fail_json(msg='%s: run %s re-executed %s is still %s after %s s; it goes on'
                                 % (job, _short(target), how, run['status'], waited), **result)
        if run['status'] != 'success':
            module.fail_json(msg='%s: run %s re-executed %s failed again%s' % (job, _short(target), how, _where(run)),
                             **result)
        result['msg'] = '%s: run %s (%s%s) re-executed from its failure %s: success after %s s' % (
            job, _short(target), target['status'], _where(target), how, waited)
        module.exit_json(**result)
    except _pipeline.PipelineError as e:
        module.fail_json(msg='%s; nothing more was launched' % e, kind=e.kind, exception=traceback.format_exc(),
                         **result)


if __name__ == '__main__':
    main()
