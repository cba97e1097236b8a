# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""One service-control interface for every role: stop, start, restart and status of a
service through a manager chosen per host (process, systemd, docker, compose), and
readiness probes (_probe: Redis PING, pg_isready, HTTP status, TCP connect, a command) that are
retried with exponential backoff until a deadline, never a fixed sleep."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import subprocess
import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.tradeops.dr.plugins.module_utils import _manifest
# the probes and the waiting live in _probe (a module that only waits imports that, not this)
from ansible_collections.tradeops.dr.plugins.module_utils._probe import (
    PROBE_TYPES, ProbeError, make_probe, pid_alive, pidfile_pid, split_command, wait_until)

MANAGERS = ('process', 'systemd', 'docker', 'compose', 'kubernetes')

# A service could not be controlled, or its probe could not be made; the message says what was tried.
ServiceError = ProbeError


def service_argument_spec():
    """Options shared by every module that controls a service (see doc fragment service)."""
    return dict(
        name=dict(type='str', required=True),
        manager=dict(type='str', required=True, choices=list(MANAGERS)),
        start_command=dict(type='raw'),
        foreground=dict(type='bool', default=False),
        pidfile=dict(type='path'),
        workdir=dict(type='path'),
        log_file=dict(type='path'),
        stop_timeout=dict(type='float', default=30.0),
        unit=dict(type='str'),
        container=dict(type='str'),
        docker_host=dict(type='str', fallback=(env_fallback, ['DOCKER_HOST'])),
        compose_project=dict(type='str'),
        compose_files=dict(type='list', elements='path', default=[]),
        compose_service=dict(type='str'),
        compose_project_dir=dict(type='path'),
        namespace=dict(type='str'),
        replicas=dict(type='int', default=1),
        probe=dict(type='dict', default={}, options=dict(
            type=dict(type='str', default='none', choices=list(PROBE_TYPES)),
            host=dict(type='str', default='127.0.0.1'),
            port=dict(type='int'),
            username=dict(type='str'),
            password=dict(type='str', no_log=True),
            database=dict(type='str'),
            url=dict(type='str'),
            status_code=dict(type='int', default=200),
            command=dict(type='raw'),
            probe_timeout=dict(type='float', default=2.0),
        )),
        ready_timeout=dict(type='float', default=60.0),
    )


# --------------------------------------------------------------------------- managers

class Manager(object):
    """status() -> dict(running, pid, detail); start(); stop(); restart()."""

    kind = None

    def __init__(self, params, runner):
        self.params = params
        self.name = params['name']
        # runner(argv, data=None) -> (rc, out, err); AnsibleModule.run_command fits.
        self.run = runner

    def restart(self):
        self.stop()
        self.start()

    def _run_checked(self, argv, what, data=None):
        rc, out, err = self.run(argv, data=data)
        if rc != 0:
            raise ServiceError('%s failed (rc=%s): %s: %s' % (what, rc, ' '.join(argv), (err or out).strip()[-500:]))
        return out


_DETACHED = []


def _reap(pid):
    """Collect the exit status of a service we started ourselves in this process."""
    for proc in list(_DETACHED):
        if proc.pid == pid:
            proc.poll()
            _DETACHED.remove(proc)


class ProcessManager(Manager):
    """A plain process: a start command and the pidfile it (or we) write."""

    kind = 'process'

    def __init__(self, params, runner):
        super(ProcessManager, self).__init__(params, runner)
        if not params.get('pidfile'):
            raise ServiceError('manager process needs pidfile for service %s' % self.name)
        self.pidfile = params['pidfile']

    def _pid(self):
        return pidfile_pid(self.pidfile)

    @staticmethod
    def _alive(pid):
        return pid_alive(pid)

    def _running(self):
        st = self.status()
        return st['running'], st['detail']

    def status(self):
        pid = self._pid()
        if pid is None:
            return dict(running=False, pid=None, detail='no pid in %s' % self.pidfile)
        if self._alive(pid):
            return dict(running=True, pid=pid, detail='pid %d from %s is alive' % (pid, self.pidfile))
        return dict(running=False, pid=None, detail='stale pidfile %s (pid %d is gone)' % (self.pidfile, pid))

    def start(self):
        argv = split_command(self.params.get('start_command'))
        if not argv:
            raise ServiceError('manager process needs start_command to start service %s' % self.name)
        log_path = self.params.get('log_file') or os.devnull
        # the log may sit in a folder the service's account writes: never opened through a planted link
        log_fd = os.open(os.devnull, os.O_WRONLY) if log_path == os.devnull else \
            _manifest.create_private(log_path, 0o640, append=True)
        with open(os.devnull, 'rb') as devnull, os.fdopen(log_fd, 'ab') as log:
            try:
                proc = subprocess.Popen(argv, cwd=self.params.get('workdir') or None, stdin=devnull,
                                        stdout=log, stderr=log, close_fds=True, start_new_session=True)
            except OSError as exc:
                raise ServiceError('could not run start command %s: %s' % (' '.join(argv), exc))
        if self.params.get('foreground'):
            # The command is the service: it stays detached in its own session and its pid
            # goes to the pidfile. Keep the Popen object so that it is reaped, not warned about.
            time.sleep(0.2)
            rc = proc.poll()
            if rc is not None:
                raise ServiceError('start command %s exited at once with rc=%d%s' % (
                    ' '.join(argv), rc, '' if log_path == os.devnull else '; see %s' % log_path))
            _DETACHED.append(proc)
            _manifest.write_text_atomic(self.pidfile, '%d\n' % proc.pid, 0o644)
            return
        # A daemonizing command (redis-server with daemonize yes, pg_ctl start) forks the
        # service, which writes its own pidfile, and exits.
        timeout = float(self.params.get('ready_timeout') or 60)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise ServiceError('start command %s did not exit within %ss; a command that stays in the foreground '
                               'needs foreground: true' % (' '.join(argv), timeout))
        if rc != 0:
            raise ServiceError('start command %s exited with rc=%d%s' % (
                ' '.join(argv), rc, '' if log_path == os.devnull else '; see %s' % log_path))
        # The daemon writes its pidfile after it forked, a moment after the command exited:
        # until then the pidfile may still name the pid of the process that died.
        res = wait_until(self._running, timeout)
        if not res['ok']:
            raise ServiceError('start command %s exited 0 but no live pid appeared in %s within %ss (%s)' % (
                ' '.join(argv), self.pidfile, timeout, res['last_detail']))

    def stop(self):
        pid = self._pid()
        if not self._alive(pid):
            return
        timeout = float(self.params.get('stop_timeout') or 30)
        os.kill(pid, signal.SIGTERM)
        waited = wait_until(lambda: (not self._alive(pid), 'pid %d alive' % pid), timeout)
        if not waited['ok']:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: (not self._alive(pid), 'pid %d alive' % pid), 5)
        _reap(pid)
        if not waited['ok']:
            raise ServiceError('service %s (pid %d) ignored SIGTERM for %ss and was killed' % (self.name, pid, timeout))


class SystemdManager(Manager):
    kind = 'systemd'

    def _unit(self):
        return self.params.get('unit') or self.name

    def status(self):
        out = self._run_checked(['systemctl', 'show', '--property=ActiveState,SubState,MainPID', self._unit()],
                                'systemctl show')
        props = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
        running = props.get('ActiveState') in ('active', 'reloading')
        pid = int(props.get('MainPID') or 0) or None
        return dict(running=running, pid=pid,
                    detail='%s: %s/%s' % (self._unit(), props.get('ActiveState'), props.get('SubState')))

    def start(self):
        self._run_checked(['systemctl', 'start', self._unit()], 'systemctl start')

    def stop(self):
        self._run_checked(['systemctl', 'stop', self._unit()], 'systemctl stop')

    def restart(self):
        self._run_checked(['systemctl', 'restart', self._unit()], 'systemctl restart')


class DockerManager(Manager):
    """A container by name through the Docker SDK; waits for its health status when the
    image defines a HEALTHCHECK."""

    kind = 'docker'

    def __init__(self, params, runner):
        super(DockerManager, self).__init__(params, runner)
        try:
            import docker
        except ImportError:
            raise ServiceError('manager docker needs the Python library docker (the Docker SDK)')
        self._docker = docker
        kwargs = {}
        if params.get('docker_host'):
            kwargs['base_url'] = params['docker_host']
        try:
            self.client = docker.DockerClient(**kwargs) if kwargs else docker.from_env()
        except docker.errors.DockerException as exc:
            raise ServiceError('cannot reach the Docker engine%s: %s' % (
                ' at %s' % params['docker_host'] if params.get('docker_host') else '', exc))

    def _container(self):
        name = self.params.get('container') or self.name
        try:
            return self.client.containers.get(name)
        except self._docker.errors.NotFound:
            raise ServiceError('no container named %s' % name)

    def status(self):
        cont = self._container()
        cont.reload()
        state = cont.attrs.get('State', {})
        health = (state.get('Health') or {}).get('Status')
        return dict(running=state.get('Running', False), pid=state.get('Pid') or None, health=health,
                    detail='container %s: %s%s' % (cont.name, cont.status, ', health %s' % health if health else ''))

    def start(self):
        self._container().start()
        self._wait_healthy()

    def stop(self):
        self._container().stop(timeout=int(self.params.get('stop_timeout') or 30))

    def restart(self):
        self._container().restart(timeout=int(self.params.get('stop_timeout') or 30))
        self._wait_healthy()

    def _wait_healthy(self):
        def check():
            st = self.status()
            if st.get('health') is None:
                return st['running'], st['detail']
            return st.get('health') == 'healthy', st['detail']
        res = wait_until(check, float(self.params.get('ready_timeout') or 60))
        if not res['ok']:
            raise ServiceError('container did not become healthy within %ss: %s' % (
                self.params.get('ready_timeout'), res['last_detail']))


class ComposeManager(DockerManager):
    """A service of a docker compose project; the CLI does start/stop, the SDK reads state."""

    kind = 'compose'

    def _cli(self):
        rc, _out, _err = self.run(['docker', 'compose', 'version'])
        base = ['docker', 'compose'] if rc == 0 else ['docker-compose']
        if self.params.get('compose_project'):
            base += ['-p', self.params['compose_project']]
        for path in self.params.get('compose_files') or []:
            base += ['-f', path]
        if self.params.get('compose_project_dir'):
            base += ['--project-directory', self.params['compose_project_dir']]
        return base

    def _service(self):
        return self.params.get('compose_service') or self.name

    def _container(self):
        try:
            out = self._run_checked(self._cli() + ['ps', '-a', '-q', self._service()], 'compose ps').strip()
        except ServiceError as exc:
            if 'no such service' in str(exc).lower():
                raise ServiceError('compose service %s is not defined in the compose project (%s)' % (
                    self._service(), ', '.join(self.params.get('compose_files') or []) or 'its default files'))
            raise
        if not out:
            raise ServiceError('compose service %s has no container (is the project up?)' % self._service())
        return self.client.containers.get(out.splitlines()[0])

    def start(self):
        self._run_checked(self._cli() + ['up', '-d', '--no-deps', self._service()], 'compose up')
        self._wait_healthy()

    def stop(self):
        self._run_checked(self._cli() + ['stop', self._service()], 'compose stop')

    def restart(self):
        self._run_checked(self._cli() + ['restart', self._service()], 'compose restart')
        self._wait_healthy()


class KubernetesManager(Manager):
    """A Deployment through kubectl (runbook 004: kubectl rollout restart deploy/ws-gateway):
    restart is a rollout restart followed by rollout status; stop and start scale it."""

    kind = 'kubernetes'

    def _kubectl(self, *args):
        base = ['kubectl']
        if self.params.get('namespace'):
            base += ['-n', self.params['namespace']]
        return base + list(args)

    def _deploy(self):
        return 'deployment/%s' % self.name

    def status(self):
        out = self._run_checked(self._kubectl('get', self._deploy(), '-o',
                                              'jsonpath={.status.readyReplicas}/{.spec.replicas}'), 'kubectl get')
        ready, _sep, wanted = out.strip().partition('/')
        ready = int(ready or 0)
        detail = '%s: %d of %s replicas ready' % (self._deploy(), ready, wanted or '?')
        return dict(running=ready > 0, pid=None, detail=detail)

    def _rollout_status(self):
        self._run_checked(self._kubectl('rollout', 'status', self._deploy(), '--timeout=%ds' % int(
            float(self.params.get('ready_timeout') or 60))), 'kubectl rollout status')

    def start(self):
        self._run_checked(self._kubectl('scale', self._deploy(), '--replicas=%d' % int(
            self.params.get('replicas') or 1)), 'kubectl scale')
        self._rollout_status()

    def stop(self):
        self._run_checked(self._kubectl('scale', self._deploy(), '--replicas=0'), 'kubectl scale')

    def restart(self):
        self._run_checked(self._kubectl('rollout', 'restart', self._deploy()), 'kubectl rollout restart')
        self._rollout_status()


_MANAGER_CLASSES = dict((cls.kind, cls) for cls in (ProcessManager, SystemdManager, DockerManager, ComposeManager,
                                                    KubernetesManager))


def get_manager(params, runner):
    kind = params.get('manager')
    if kind not in _MANAGER_CLASSES:
        raise ServiceError('unknown service manager %r for service %s; use one of %s' % (
            kind, params.get('name'), ', '.join(MANAGERS)))
    return _MANAGER_CLASSES[kind](params, runner)


def ensure_state(params, state, runner, check_mode=False):
    """Bring a service to state (started, stopped, restarted, status) and, unless stopped,
    wait for its readiness probe. Returns a result dict; raises ServiceError on failure."""
    manager = get_manager(params, runner)
    probe, probe_desc = make_probe(params.get('probe'))
    timeout = float(params.get('ready_timeout') or 60)
    before = manager.status()
    actions = []
    if state == 'stopped':
        if before['running']:
            actions.append('stop')
    elif state == 'restarted':
        actions.append('restart' if before['running'] else 'start')
    elif state == 'started' and not before['running']:
        actions.append('start')

    result = dict(name=params['name'], manager=manager.kind, state=state, running_before=before['running'],
                  status_before=before['detail'], actions=actions, changed=bool(actions), probe=probe_desc)
    if check_mode or state == 'status':
        result['running'] = before['running']
        result['pid'] = before.get('pid')
        return result

    started = time.monotonic()
    for action in actions:
        getattr(manager, action)()
    after = manager.status() if actions else before
    result['running'] = after['running']
    result['pid'] = after.get('pid')
    result['status'] = after['detail']
    if state != 'stopped':
        if not after['running']:
            raise ServiceError('service %s is not running after %s: %s' % (
                params['name'], ', '.join(actions) or 'no action', after['detail']))
        if probe is not None:
            res = wait_until(probe, timeout)
            result['ready'] = res
            if not res['ok']:
                raise ServiceError('service %s: %s; readiness probe %s did not pass within %ss '
                                   '(%d attempts, last error: %s)' % (
                                       params['name'], after['detail'], probe_desc, timeout,
                                       res['attempts'], res['last_detail']))
    result['elapsed'] = round(time.monotonic() - started, 3)
    return result
