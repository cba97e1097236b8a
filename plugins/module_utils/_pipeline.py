# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""The data pipelines' orchestrator (runbook 000 scenario 5: Dagster; runbook 001: Airflow), one interface over two
backends, each through the client its project publishes:

- Dagster through its GraphQL API with ``dagster_graphql.DagsterGraphQLClient``. The client's public methods cover
  launching a job and reading one run's status; listing a job's runs, re-executing a run from its failure and reading
  the daemon's health are GraphQL queries of the same API (``runsOrError``, ``launchPipelineReexecution``,
  ``instance.daemonHealth``, ``workspaceOrError``) sent through the client's own transport (its ``_execute``: the
  client's error handling and headers, no second HTTP stack).
- Airflow (3.x) through its stable REST API (``/api/v2``) with ``airflow_client.client`` (apache-airflow-client):
  ``MonitorApi.get_health``, ``DAGApi.get_dag``, ``DagRunApi.get_dag_runs/get_dag_run/clear_dag_run``,
  ``TaskInstanceApi.get_task_instances``. A user and password are exchanged for a token at ``POST /auth/token``
  (Airflow 3's auth managers); a token can be given instead.

Runs are normalised to ``{id, job, status, started, ended, parent, failed_steps}`` with ``status`` one of queued,
running, success, failed, canceled. Errors are PipelineError with a kind: unreachable (no answer: the orchestrator
is down), auth, not_found (no such job or run), refused (the orchestrator answered no), error. A password or token is
never part of a message."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import json
import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible.module_utils.urls import open_url

try:
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlparse
except ImportError:  # pragma: no cover - Python 2 is not supported
    pass


def dagster_library():
    """dagster_graphql (it imports dagster: a second and more), imported only by a module that asks Dagster."""
    import dagster_graphql  # pylint: disable=import-outside-toplevel
    return dagster_graphql


def airflow_library():
    """The parts of apache-airflow-client the Airflow backend uses, imported only by a module that asks Airflow."""
    # pylint: disable=import-outside-toplevel
    from airflow_client import client
    from airflow_client.client.api.dag_api import DAGApi
    from airflow_client.client.api.dag_run_api import DagRunApi
    from airflow_client.client.api.monitor_api import MonitorApi
    from airflow_client.client.api.task_instance_api import TaskInstanceApi
    from airflow_client.client.exceptions import ApiException
    from airflow_client.client.models.dag_run_clear_body import DAGRunClearBody
    return dict(client=client, DAGApi=DAGApi, DagRunApi=DagRunApi, MonitorApi=MonitorApi,
                TaskInstanceApi=TaskInstanceApi, ApiException=ApiException, DAGRunClearBody=DAGRunClearBody)


BACKENDS = ('dagster', 'airflow')
# Dagster's daemons beat every 30 s at most: three missed beats and more is a daemon that does not run
DAEMON_HEARTBEAT_MAX_AGE = 120
TERMINAL = ('success', 'failed', 'canceled')
TOOL = 'tradeops.dr'

# Dagster's DagsterRunStatus and Airflow's DagRunState, normalised
_DAGSTER_STATUS = {
    'QUEUED': 'queued', 'NOT_STARTED': 'queued', 'MANAGED': 'queued', 'STARTING': 'queued',
    'STARTED': 'running', 'CANCELING': 'running',
    'SUCCESS': 'success', 'FAILURE': 'failed', 'CANCELED': 'canceled',
}
_AIRFLOW_STATUS = {'queued': 'queued', 'running': 'running', 'success': 'success', 'failed': 'failed'}

_DAGSTER_RUN_FIELDS = 'runId jobName status startTime endTime parentRunId stepStats { stepKey status }'
_DAGSTER_RUNS = '''query TradeopsRuns($job: String!, $limit: Int) {
  runsOrError(filter: {pipelineName: $job}, limit: $limit) {
    __typename
    ... on Runs { results { %s } }
    ... on PythonError { message }
    ... on InvalidPipelineRunsFilterError { message }
  }
}''' % _DAGSTER_RUN_FIELDS
_DAGSTER_RUN = '''query TradeopsRun($id: ID!) {
  runOrError(runId: $id) {
    __typename
    ... on Run { %s }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}''' % _DAGSTER_RUN_FIELDS
_DAGSTER_HEALTH = '''query TradeopsHealth {
  version
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required lastHeartbeatTime } } }
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { repositories { name jobs { name } } }
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}'''
_DAGSTER_REEXECUTE = '''mutation TradeopsReexecute($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConflict { message }
    ... on PipelineNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on UnauthorizedError { message }
  }
}'''


class PipelineError(Exception):
    """An orchestrator that cannot be asked (kind unreachable), refuses (auth, not_found, refused) or errs."""

    def __init__(self, msg, kind='error'):
        super(PipelineError, self).__init__(msg)
        self.kind = kind


def pipeline_argument_spec(**extra):
    """The options of the doc fragment tradeops.dr.pipeline, and the module's own."""
    spec = dict(
        backend=dict(type='str', required=True, choices=list(BACKENDS)),
        url=dict(type='str', required=True),
        username=dict(type='str'),
        password=dict(type='str', no_log=True, fallback=(env_fallback, ['PIPELINE_API_PASSWORD'])),
        token=dict(type='str', no_log=True, fallback=(env_fallback, ['PIPELINE_API_TOKEN'])),
        timeout=dict(type='float', default=10),
        validate_certs=dict(type='bool', default=True),
        heartbeat_max_age=dict(type='float', default=DAEMON_HEARTBEAT_MAX_AGE),
    )
    spec.update(extra)
    return spec


def connect(module):
    """The backend of a module's options; a missing client library or a malformed URL fails the module."""
    p = module.params
    url = (p['url'] or '').strip().rstrip('/')
    parsed = urlparse(url)
    if parsed.scheme not in ('http', 'https') or not parsed.hostname:
        module.fail_json(msg='url=%r is not the http(s) URL of the orchestrator (for example http://127.0.0.1:3001 for '
                             "Dagster's webserver, http://127.0.0.1:8080 for Airflow's API server); nothing was asked"
                             % p['url'])
    if p['backend'] == 'dagster':
        try:
            lib = dagster_library()
        except ImportError:
            module.fail_json(msg=missing_required_lib('dagster-graphql'), exception=traceback.format_exc())
        return Dagster(lib, url, p['token'], p['timeout'], p['validate_certs'])
    try:
        lib = airflow_library()
    except ImportError:
        module.fail_json(msg=missing_required_lib('apache-airflow-client'), exception=traceback.format_exc())
    if p['password'] and not p['username']:
        module.fail_json(msg='password is set but username is not: Airflow exchanges both for a token; nothing was asked')
    return Airflow(lib, url, p['username'], p['password'], p['token'], p['timeout'], p['validate_certs'])


def unknown_job(backend, health, job):
    """Why `job` is not one the orchestrator knows (a Dagster health lists the jobs of its code locations), or None."""
    if health['jobs'] is None or job in health['jobs']:
        return None
    return '%s is not a job of any code location of Dagster at %s (its jobs: %s)' % (
        job, backend.url, ', '.join(health['jobs']) or 'none')


@contextlib.contextmanager
def connected(module):
    """The backend of a module's options (connect), closed after (its HTTP connections)."""
    backend = connect(module)
    try:
        yield backend
    finally:
        backend.close()


def _iso(value):
    """An ISO 8601 UTC string of an epoch number or a datetime (None stays None)."""
    if value is None or value == '':
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).isoformat()
    return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc).isoformat()


def _first_line(text):
    return str(text or '').strip().splitlines()[0][:300] if str(text or '').strip() else ''


def wait_for(backend, run, timeout, poll=1.0, clock=time.monotonic, sleep=time.sleep):
    """Poll a run until it ends or `timeout` seconds pass: (run, seconds waited, ended?)."""
    start = clock()
    delay = min(poll, 0.5)
    while run['status'] not in TERMINAL:
        if clock() - start >= timeout:
            return run, round(clock() - start, 1), False
        sleep(delay)
        delay = min(delay * 1.5, poll)
        run = backend.run(run['job'], run['id'])
    return run, round(clock() - start, 1), True


class Dagster(object):
    """Dagster's webserver (its GraphQL API at <url>/graphql)."""

    backend = 'dagster'

    def __init__(self, lib, url, token, timeout, validate_certs):
        self.url = url
        self._error = lib.DagsterGraphQLClientError
        parsed = urlparse(url)
        headers = {'Dagster-Cloud-Api-Token': token} if token else None
        self._client = lib.DagsterGraphQLClient(
            parsed.hostname, port_number=parsed.port, use_https=parsed.scheme == 'https',
            timeout=max(1, int(round(timeout))), headers=headers, path_prefix=parsed.path.rstrip('/'))
        if parsed.scheme == 'https' and not validate_certs:
            self._client._transport.verify = False  # pylint: disable=protected-access

    def _execute(self, query, variables=None):
        try:
            return self._client._execute(query, variables)  # pylint: disable=protected-access
        except self._error as e:
            cause = e.__cause__
            text = '%s: %s' % (type(cause).__name__, _first_line(cause)) if cause is not None else _first_line(e)
            # requests' ConnectionError (gql 3), gql 4's TransportConnectionFailed, a read timeout: no answer
            unreachable = any(w in type(cause).__name__ for w in ('Connection', 'Timeout')) or \
                'Error when connecting' in str(e)
            kind = 'unreachable' if unreachable else ('auth' if ' 401' in text or ' 403' in text else 'error')
            raise PipelineError('Dagster at %s: %s' % (self.url, text), kind)

    def close(self):
        self._client._transport.close()  # pylint: disable=protected-access

    def health(self, heartbeat_max_age=DAEMON_HEARTBEAT_MAX_AGE, now=None):
        """{up, healthy, version, problems: [...], jobs: [names the code locations hold]}. A required daemon is not
        running when Dagster says so, or when its newest heartbeat is older than heartbeat_max_age seconds (Dagster
        itself waits 1800 s before it calls a silent daemon unhealthy: runs stay queued that long)."""
        data = self._execute(_DAGSTER_HEALTH)
        problems, jobs = [], []
        now = time.time() if now is None else now
        for daemon in (((data.get('instance') or {}).get('daemonHealth') or {}).get('allDaemonStatuses') or []):
            if not daemon.get('required'):
                continue
            beat = daemon.get('lastHeartbeatTime')
            if not beat:
                problems.append('daemon %s has no heartbeat (dagster-daemon is not running)' % daemon.get('daemonType'))
            elif not daemon.get('healthy') or now - beat > heartbeat_max_age:
                problems.append('daemon %s silent: last heartbeat %d s ago (dagster-daemon is not running)'
                                % (daemon.get('daemonType'), now - beat))
        workspace = data.get('workspaceOrError') or {}
        if workspace.get('__typename') != 'Workspace':
            problems.append('workspace: %s' % _first_line(workspace.get('message')))
        for entry in workspace.get('locationEntries') or []:
            loaded = entry.get('locationOrLoadError') or {}
            if loaded.get('__typename') == 'PythonError':
                problems.append('code location %s does not load: %s' % (entry.get('name'), _first_line(loaded.get('message'))))
            for repo in loaded.get('repositories') or []:
                jobs.extend(j['name'] for j in repo.get('jobs') or [] if not j['name'].startswith('__'))
        return dict(up=True, healthy=not problems, version=data.get('version'), problems=problems, jobs=sorted(set(jobs)))

    @staticmethod
    def _run(node):
        return dict(
            id=node['runId'], job=node['jobName'], status=_DAGSTER_STATUS.get(node['status'], node['status'].lower()),
            started=_iso(node.get('startTime')), ended=_iso(node.get('endTime')), parent=node.get('parentRunId'),
            failed_steps=sorted(s['stepKey'] for s in node.get('stepStats') or [] if s.get('status') == 'FAILURE'))

    def runs(self, job, limit):
        """The job's newest runs, newest first."""
        result = self._execute(_DAGSTER_RUNS, {'job': job, 'limit': int(limit)})['runsOrError']
        if result['__typename'] != 'Runs':
            raise PipelineError('Dagster at %s: the runs of %s: %s' % (self.url, job, _first_line(result.get('message'))))
        return [self._run(r) for r in result['results']]

    def run(self, job, run_id):
        result = self._execute(_DAGSTER_RUN, {'id': run_id})['runOrError']
        if result['__typename'] != 'Run':
            raise PipelineError('Dagster at %s: run %s: %s' % (self.url, run_id, _first_line(result.get('message'))),
                                'not_found' if result['__typename'] == 'RunNotFoundError' else 'error')
        return self._run(result)

    def rerun(self, run, note):
        """Re-execute a failed run from its failure (its succeeded steps are not run again): the new run."""
        params = dict(parentRunId=run['id'], strategy='FROM_FAILURE',
                      extraTags=[dict(key='tradeops.dr/reason', value=note[:255])])
        result = self._execute(_DAGSTER_REEXECUTE, {'params': params})['launchPipelineReexecution']
        if result['__typename'] != 'LaunchRunSuccess':
            raise PipelineError('Dagster at %s refused to re-execute run %s of %s: %s %s' % (
                self.url, run['id'], run['job'], result['__typename'],
                _first_line(result.get('message') or result.get('invalidStepKey'))), 'refused')
        return self.run(run['job'], result['run']['runId'])


class Airflow(object):
    """Airflow 3's API server (its stable REST API under <url>/api/v2)."""

    backend = 'airflow'

    def __init__(self, lib, url, username, password, token, timeout, validate_certs):
        self.url, self.timeout = url, timeout
        self._lib = lib
        self._login = (username, password)
        self._token = token
        self._validate_certs = validate_certs
        self._api = None

    def close(self):
        if self._api is not None:
            self._api.rest_client.pool_manager.clear()

    def _client(self):
        if self._api is None:
            token = self._token
            if not token and self._login[0]:
                token = self._get_token()
            conf = self._lib['client'].Configuration(host=self.url, access_token=token)
            conf.verify_ssl = self._validate_certs
            self._api = self._lib['client'].ApiClient(conf)
        return self._api

    def _get_token(self):
        """Airflow 3: POST /auth/token {username, password} -> {access_token} (the simple and FAB auth managers)."""
        body = json.dumps({'username': self._login[0], 'password': self._login[1]})
        try:
            answer = open_url(self.url + '/auth/token', data=body, method='POST', timeout=self.timeout,
                              headers={'Content-Type': 'application/json'}, validate_certs=self._validate_certs)
            try:
                return json.loads(answer.read())['access_token']
            finally:
                answer.close()
        except HTTPError as e:
            e.close()
            raise PipelineError('Airflow at %s refused the login of %s: HTTP %s' % (self.url, self._login[0], e.code),
                                'auth')
        except (URLError, OSError) as e:
            raise PipelineError('Airflow at %s does not answer: %s' % (self.url, getattr(e, 'reason', e)), 'unreachable')
        except (ValueError, KeyError):
            raise PipelineError('Airflow at %s answered its /auth/token without an access_token' % self.url, 'auth')

    def _call(self, what, fn, *args, **kwargs):
        kwargs['_request_timeout'] = self.timeout
        try:
            return fn(*args, **kwargs)
        except self._lib['ApiException'] as e:
            status = getattr(e, 'status', None)
            detail = ''
            try:
                detail = json.loads(e.body or '{}').get('detail', '')
            except (TypeError, ValueError, AttributeError):
                detail = ''
            kind = {401: 'auth', 403: 'auth', 404: 'not_found', 409: 'refused'}.get(status, 'error')
            raise PipelineError('Airflow at %s: %s: HTTP %s %s' % (self.url, what, status, _first_line(detail)).rstrip(),
                                kind)
        except Exception as e:  # urllib3's connection errors (MaxRetryError, NewConnectionError, timeouts)
            if type(e).__module__.startswith('urllib3') or isinstance(e, OSError):
                raise PipelineError('Airflow at %s does not answer (%s): %s' % (self.url, what, _first_line(e)),
                                    'unreachable')
            raise

    def health(self, heartbeat_max_age=None, now=None):  # pylint: disable=unused-argument
        """GET /api/v2/monitor/health (no login needed): the metadatabase, scheduler and DAG processor must be healthy;
        then the DAGs the login can read."""
        answer = self._call('GET /api/v2/monitor/health', self._lib['MonitorApi'](self._client()).get_health)
        problems = []
        for part in ('metadatabase', 'scheduler', 'dag_processor'):
            info = getattr(answer, part, None)
            status = getattr(info, 'status', None)
            if status != 'healthy':
                beat = getattr(info, 'latest_%s_heartbeat' % part, None)
                since = ' (last heartbeat %s)' % beat if beat else ''
                problems.append('%s %s%s' % (part.replace('_', ' '), status or 'not running', since))
        return dict(up=True, healthy=not problems, version=None, problems=problems, jobs=None)

    def check_job(self, job):
        dag = self._call('DAG %s' % job, self._lib['DAGApi'](self._client()).get_dag, job)
        return dict(paused=bool(dag.is_paused))

    def _run(self, job, node, failed_steps=None):
        state = getattr(node.state, 'value', node.state)
        return dict(id=node.dag_run_id, job=job, status=_AIRFLOW_STATUS.get(str(state), str(state)),
                    started=_iso(node.start_date), ended=_iso(node.end_date), parent=None,
                    failed_steps=failed_steps if failed_steps is not None else [])

    def _failed_tasks(self, job, run_id):
        tis = self._call('task instances of %s %s' % (job, run_id), self._lib['TaskInstanceApi'](self._client()).get_task_instances,
                         job, run_id, state=['failed', 'upstream_failed'])
        return sorted(ti.task_id for ti in tis.task_instances)

    def runs(self, job, limit):
        answer = self._call('DAG runs of %s' % job, self._lib['DagRunApi'](self._client()).get_dag_runs, job,
                            order_by=['-run_after'], limit=int(limit))
        runs = [self._run(job, r) for r in answer.dag_runs]
        for r in runs[:1]:
            if r['status'] == 'failed':
                r['failed_steps'] = self._failed_tasks(job, r['id'])
        return runs

    def run(self, job, run_id):
        node = self._call('DAG run %s of %s' % (run_id, job), self._lib['DagRunApi'](self._client()).get_dag_run, job, run_id)
        run = self._run(job, node)
        if run['status'] == 'failed':
            run['failed_steps'] = self._failed_tasks(job, run_id)
        return run

    def rerun(self, run, note):
        """Clear the failed task instances of the run (Airflow's re-run from failure): the same run, queued again."""
        self._call('clear DAG run %s of %s' % (run['id'], run['job']), self._lib['DagRunApi'](self._client()).clear_dag_run,
                   run['job'], run['id'], self._lib['DAGRunClearBody'](dry_run=False, only_failed=True, note=note[:1000]))
        return self.run(run['job'], run['id'])
