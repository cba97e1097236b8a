#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pipeline_info
short_description: Read the health of a data-pipeline orchestrator (Dagster or Airflow) and the last runs of its jobs
version_added: 0.1.0
description:
  - The diagnosis of runbook 000 scenario 5 ("Dagster UI shows failed run") and of runbook 001's Airflow, through the
    orchestrator's own API rather than its UI or a port.
  - "Dagster: the GraphQL API answers, every required daemon has a fresh heartbeat (a dead C(dagster-daemon) leaves
    runs queued for ever), every code location loads; the jobs asked for exist in a code location."
  - "Airflow: C(GET /api/v2/monitor/health) - the metadatabase, the scheduler and the DAG processor are healthy; the
    DAGs asked for exist and are not paused."
  - For each job (a Dagster job, an Airflow DAG) the newest runs, newest first, with the steps (ops, tasks) that
    failed in the newest one.
  - An orchestrator that does not answer is a result (RV(orchestrator.up) false), not a failure; a job the
    orchestrator does not know, a refused login or a missing client library fail the module.
  - With O(wait), the module asks again until the orchestrator answers and is healthy (after a restart), at most
    that many seconds.
  - Read only.
extends_documentation_fragment:
  - tradeops.dr.pipeline
options:
  jobs:
    description: The jobs (Dagster) or DAG ids (Airflow) whose runs are read. Empty reads the orchestrator only.
    type: list
    elements: str
    default: []
  limit:
    description: How many of each job's newest runs are returned.
    type: int
    default: 5
  wait:
    description:
      - Seconds to keep asking until the orchestrator answers and is healthy (0 asks once). The module waits for
        the API itself, not for a port.
    type: float
    default: 0
attributes:
  check_mode:
    support: full
    description: Read only; the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
  idempotent:
    support: full
    description: Read only.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Read Dagster and the morning pack job (runbook 000 scenario 5)
  tradeops.dr.pipeline_info:
    backend: dagster
    url: http://127.0.0.1:3001
    jobs: [morning_pack]
  register: pipeline

- name: Wait up to two minutes for Airflow's API after a restart (runbook 001)
  tradeops.dr.pipeline_info:
    backend: airflow
    url: http://127.0.0.1:8080
    username: ops
    password: "{{ vault_airflow_password }}"
    jobs: [usdcop_daily]
    wait: 120
'''

RETURN = r'''
orchestrator:
  description: The orchestrator's state.
  returned: always
  type: dict
  contains:
    backend:
      description: V(dagster) or V(airflow).
      type: str
    url:
      description: The URL asked.
      type: str
    up:
      description: Whether the API answered.
      type: bool
    healthy:
      description: Whether it answered and nothing in RV(orchestrator.problems).
      type: bool
    version:
      description: The orchestrator's version, where its API tells it (Dagster).
      type: str
    problems:
      description: What is wrong (a daemon without heartbeat, a code location that does not load, a scheduler down,
        a paused DAG).
      type: list
      elements: str
    evidence:
      description: One line for a report.
      type: str
      sample: "Dagster 1.13.28: daemon QUEUED_RUN_COORDINATOR not healthy (no heartbeat: dagster-daemon is not running)"
    waited:
      description: Seconds spent waiting (O(wait)).
      type: float
jobs:
  description: Per job or DAG id, its newest runs.
  returned: when the orchestrator answered
  type: dict
  sample:
    morning_pack:
      latest: {id: 0f6f6a16-e266-4f0e-b207-889e4d5841bb, job: morning_pack, status: failed,
               started: "2026-12-06T06:00:01+00:00", ended: "2026-12-06T06:00:03+00:00", parent: null,
               failed_steps: [build_pack]}
      failed: true
      runs: []
failed_jobs:
  description: The jobs whose newest run failed or was canceled.
  returned: always
  type: list
  elements: str
'''

import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _pipeline


def _read(backend, jobs, limit, heartbeat_max_age):
    """(orchestrator, {job: ...}) or raise PipelineError."""
    health = backend.health(heartbeat_max_age)
    result = {}
    for job in jobs:
        unknown = _pipeline.unknown_job(backend, health, job)
        if unknown:
            if health['problems']:  # a code location that does not load holds no job: that is the diagnosis
                result[job] = dict(latest=None, runs=[], failed=False)
                continue
            raise _pipeline.PipelineError(unknown, 'not_found')
        if backend.backend == 'airflow' and backend.check_job(job)['paused']:
            health['problems'].append('DAG %s is paused (its runs do not start)' % job)
            health['healthy'] = False
        runs = backend.runs(job, limit)
        latest = runs[0] if runs else None
        result[job] = dict(latest=latest, runs=runs,
                           failed=bool(latest and latest['status'] in ('failed', 'canceled')))
    return health, result


def main():
    module = AnsibleModule(
        argument_spec=_pipeline.pipeline_argument_spec(
            jobs=dict(type='list', elements='str', default=[]),
            limit=dict(type='int', default=5),
            wait=dict(type='float', default=0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    jobs = [j.strip() for j in p['jobs'] if j and j.strip()]
    if p['limit'] < 1:
        module.fail_json(msg='limit=%d: at least the newest run is read' % p['limit'])
    if p['wait'] < 0:
        module.fail_json(msg='wait=%s: seconds to wait cannot be negative' % p['wait'])
    with _pipeline.connected(module) as backend:
        _diagnose(module, backend, jobs)


def _diagnose(module, backend, jobs):
    p = module.params
    name = p['backend'].capitalize()
    start = time.monotonic()
    delay = 0.5
    while True:
        try:
            health, result = _read(backend, jobs, p['limit'], p['heartbeat_max_age'])
            error = None
        except _pipeline.PipelineError as e:
            if e.kind != 'unreachable':
                module.fail_json(msg=str(e), kind=e.kind, exception=traceback.format_exc())
            health, result, error = None, {}, str(e)
        waited = round(time.monotonic() - start, 1)
        if (health and health['healthy']) or waited >= p['wait']:
            break
        time.sleep(min(delay, max(0.1, p['wait'] - waited)))
        delay = min(delay * 1.5, 3.0)
    if health is None:
        orchestrator = dict(backend=p['backend'], url=backend.url, up=False, healthy=False, version=None,
                            problems=['the API does not answer'], evidence='%s does not answer: %s' % (name, error))
    else:
        label = '%s %s' % (name, health['version']) if health['version'] else name
        orchestrator = dict(backend=p['backend'], url=backend.url, up=True, healthy=health['healthy'],
                            version=health['version'], problems=health['problems'],
                            evidence='%s: %s' % (label, '; '.join(health['problems']) if health['problems']
                                                 else 'healthy'))
    orchestrator['waited'] = waited
    module.exit_json(changed=False, orchestrator=orchestrator, jobs=result,
                     failed_jobs=sorted(j for j, r in result.items() if r['failed']))


if __name__ == '__main__':
    main()
