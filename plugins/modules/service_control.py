#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: service_control
short_description: Stop, start, restart or read a service and wait until it really answers
version_added: 0.1.0
description:
  - One interface to the services a recovery touches, whatever runs them on the host
    (a plain process with a pidfile, systemd, a Docker container, a compose service).
  - After a start or restart the module waits for a real readiness probe (Redis PING,
    C(pg_isready), an HTTP status, a TCP connect or a command) with exponential backoff,
    never a fixed sleep, and fails with the last probe error when the deadline passes.
  - A service that runs but does not answer its probe is reported as such; the module does
    not restart it unless O(state=restarted).
extends_documentation_fragment:
  - tradeops.dr.service
options:
  service:
    description:
      - The per-host service definition of a role (for example C(redis_restart_service)) - a dict
        with any of the options O(name), O(manager), O(start_command), O(foreground), O(pidfile),
        O(workdir), O(log_file), O(stop_timeout), O(unit), O(container), O(docker_host),
        O(compose_project), O(compose_files), O(compose_service), O(compose_project_dir), O(namespace),
        O(replicas).
      - Options given directly to the module take precedence. The merged set is validated like
        the direct options; an unknown key is refused.
    type: dict
  state:
    description:
      - V(started) starts the service when it is not running, then waits for the probe.
      - V(restarted) stops and starts it (or starts it when it is down), then waits for the probe.
      - V(stopped) stops it when it runs.
      - V(status) only reports; it never changes anything.
    type: str
    default: started
    choices: [started, stopped, restarted, status]
attributes:
  check_mode:
    support: full
    description: Reports the actions it would take from the current status; changes nothing.
  diff_mode:
    support: none
    description: The module reports what it did in its return values, not as a diff.
  idempotent:
    support: partial
    description: V(started), V(stopped) and V(status) are idempotent; V(restarted) always restarts.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Start the sandbox Redis and wait for PONG
  tradeops.dr.service_control:
    name: redis
    manager: process
    start_command: [redis-server, /srv/sandbox/redis/redis.conf]
    pidfile: /srv/sandbox/redis/redis.pid
    probe:
      type: redis
      port: 6380
    ready_timeout: 30

- name: Restart the TimescaleDB container and wait for its health check and pg_isready
  tradeops.dr.service_control:
    name: timescaledb
    manager: docker
    state: restarted
    probe:
      type: postgres
      port: 5432

- name: Restart a compose service (runbook 003, strategy crash)
  tradeops.dr.service_control:
    name: strategy
    manager: compose
    compose_files: [/opt/trading/docker-compose.staging.yml]
    state: restarted
    probe:
      type: http
      url: http://127.0.0.1:3001/api/health

- name: Start the service a role describes per host
  tradeops.dr.service_control:
    service: "{{ redis_restart_service }}"
    state: started
    probe:
      type: redis
      port: "{{ redis_restart_port }}"

- name: Read the status only
  tradeops.dr.service_control:
    name: redis-server
    manager: systemd
    state: status
'''

RETURN = r'''
service:
  description: What was found and done.
  returned: always
  type: dict
  contains:
    name:
      description: Service name.
      type: str
      sample: redis
    manager:
      description: Manager used.
      type: str
      sample: process
    running_before:
      description: Whether the service ran before the module acted.
      type: bool
      sample: false
    status_before:
      description: The manager's description of the status before.
      type: str
      sample: stale pidfile /srv/redis.pid (pid 4242 is gone)
    actions:
      description: Actions taken (or, in check mode, that would be taken).
      type: list
      elements: str
      sample: [start]
    running:
      description: Whether the service runs now.
      type: bool
      sample: true
    pid:
      description: Main pid when the manager knows it.
      type: int
      sample: 4321
    probe:
      description: The readiness probe used.
      type: str
      sample: redis PING 127.0.0.1:6380
    ready:
      description: Probe outcome after a start; attempts, elapsed seconds and the last answer.
      type: dict
      returned: when the service was started or checked with a probe
      sample: {ok: true, attempts: 3, elapsed: 0.21, last_detail: PONG}
    elapsed:
      description: Seconds spent acting and waiting.
      type: float
      sample: 0.35
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.tradeops.dr.plugins.module_utils._service import (
    ServiceError, ensure_state, service_argument_spec,
)


SERVICE_KEYS = ('name', 'manager', 'start_command', 'foreground', 'pidfile', 'workdir', 'log_file', 'stop_timeout',
                'unit', 'container', 'docker_host', 'compose_project', 'compose_files', 'compose_service',
                'compose_project_dir', 'namespace', 'replicas')


def merged_params(module):
    """Direct options over the service dict, validated with the same spec."""
    service = module.params.get('service') or {}
    unknown = sorted(set(service) - set(SERVICE_KEYS))
    if unknown:
        module.fail_json(msg='unknown service option(s) %s; known: %s' % (', '.join(unknown), ', '.join(SERVICE_KEYS)))
    spec = service_argument_spec()
    given = dict((k, v) for k, v in service.items() if v is not None)
    for key in spec:
        if key in SERVICE_KEYS and module.params.get(key) not in (None, [], spec[key].get('default')):
            given[key] = module.params[key]
    given['probe'] = module.params['probe']
    given['ready_timeout'] = module.params['ready_timeout']
    result = ArgumentSpecValidator(spec).validate(given)
    if result.error_messages:
        module.fail_json(msg='service %s: %s' % (given.get('name', '?'), '; '.join(result.error_messages)))
    return result.validated_parameters


def main():
    argument_spec = service_argument_spec()
    argument_spec['name']['required'] = False
    argument_spec['manager']['required'] = False
    argument_spec.update(
        service=dict(type='dict'),
        state=dict(type='str', default='started', choices=['started', 'stopped', 'restarted', 'status']))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_one_of=[('name', 'service')])
    params = merged_params(module)

    def runner(argv, data=None):
        return module.run_command(argv, data=data)

    try:
        result = ensure_state(params, module.params['state'], runner, check_mode=module.check_mode)
    except ServiceError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    except Exception as exc:  # an unexpected fault still says which service and why
        module.fail_json(msg='service %s (%s): %s' % (params['name'], params['manager'], exc),
                         exception=traceback.format_exc())
    changed = result.pop('changed')
    module.exit_json(changed=changed, service=result)


if __name__ == '__main__':
    main()
