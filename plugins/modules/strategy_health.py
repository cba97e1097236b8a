#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: strategy_health
short_description: Diagnose a trading strategy - heartbeat, price freshness, errors and reconnects in its log
version_added: 0.1.0
description:
  - Read-only diagnosis of runbook 003 sections 1 and 3. Reads the strategy's heartbeat file (JSON with the time of
    the last loop and of the last price it received), and the last lines of its log - from a file, or from its Docker
    container through the Docker SDK - for error lines, reconnect attempts and a reconnect that gave up.
  - RV(strategy.state) is V(healthy) (fresh heartbeat and fresh prices), V(no_heartbeat) (no file, or older than
    O(max_age) - stopped, hung or crashed), V(disconnected) (alive but no fresh price - the connection to the exchange is
    lost) or V(stale) (a heartbeat older than O(since) - nothing since the restart yet).
options:
  heartbeat_file:
    description: The strategy's heartbeat file (JSON).
    type: path
    required: true
  time_field:
    description: Field of the heartbeat with the epoch time of the last loop.
    type: str
    default: ts
  price_field:
    description: Field with the epoch time of the last price received.
    type: str
    default: price_ts
  max_age:
    description: Seconds the heartbeat and the last price may be old.
    type: float
    default: 30
  since:
    description: Epoch seconds (a restart) - the heartbeat and the last price must be newer than this.
    type: float
    default: 0
  log_file:
    description: The strategy's log file.
    type: path
  container:
    description: The strategy's Docker container (its logs are read through the Docker SDK) when there is no log file.
    type: str
  docker_host:
    description: Docker daemon for O(container) (default - the environment, E(DOCKER_HOST)).
    type: str
  log_lines:
    description: How many of the last log lines to read.
    type: int
    default: 100
  error_pattern:
    description: Regular expression of error lines.
    type: str
    default: (?i)(error|exception|traceback|fatal|critical)
  reconnect_pattern:
    description: Regular expression of a reconnect attempt.
    type: str
    default: (?i)reconnect(ing)? attempt
  gave_up_pattern:
    description: Regular expression of a reconnect that gave up.
    type: str
    default: (?i)(giving up|gave up|reconnect failed)
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: Nothing is changed.
  idempotent:
    support: full
    description: Running it again changes nothing.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Is the strategy alive and does it receive prices? (runbook 003, sections 1 and 3)
  tradeops.dr.strategy_health:
    heartbeat_file: /var/lib/trading/momentum/heartbeat.json
    log_file: /var/log/trading/momentum.log
    max_age: 15
  register: strat
'''

RETURN = r'''
strategy:
  description: The diagnosis.
  returned: always
  type: dict
  contains:
    state:
      description: V(healthy), V(no_heartbeat), V(disconnected) or V(stale).
      type: str
      sample: disconnected
    heartbeat_age:
      description: Seconds since the last loop (null without a heartbeat).
      type: float
      sample: 0.4
    price_age:
      description: Seconds since the last price (null when none was ever received).
      type: float
      sample: 41.2
    heartbeat:
      description: The heartbeat file's content.
      type: dict
      sample: {ts: 1795628912.3, price_ts: 1795628871.1, connected: false}
    errors:
      description: The last error lines of the log (at most 10).
      type: list
      elements: str
      sample: ["RuntimeError: position manager state corrupt"]
    reconnect_attempts:
      description: Reconnect attempts in the lines read.
      type: int
      sample: 3
    gave_up:
      description: Whether the log says the reconnects gave up.
      type: bool
      sample: true
    log_tail:
      description: The last 20 lines read.
      type: list
      elements: str
      sample: ["2026-11-25T18:01:02Z reconnect attempt 3/3"]
'''

import json
import os
import re
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils._scrub import scrub_log_line


def _tail(path, lines):
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            return handle.read().decode('utf-8', 'replace').splitlines()[-lines:]
    except (IOError, OSError):
        return []


def _container_logs(name, lines, docker_host):
    try:
        import docker
    except ImportError:
        raise RuntimeError('the docker Python SDK is required to read the logs of container %s' % name)
    client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
    try:
        return client.containers.get(name).logs(tail=lines).decode('utf-8', 'replace').splitlines()
    finally:
        client.close()


def main():
    module = AnsibleModule(argument_spec=dict(
        heartbeat_file=dict(type='path', required=True),
        time_field=dict(type='str', default='ts'),
        price_field=dict(type='str', default='price_ts'),
        max_age=dict(type='float', default=30),
        since=dict(type='float', default=0),
        log_file=dict(type='path'),
        container=dict(type='str'),
        docker_host=dict(type='str'),
        log_lines=dict(type='int', default=100),
        error_pattern=dict(type='str', default=r'(?i)(error|exception|traceback|fatal|critical)'),
        reconnect_pattern=dict(type='str', default=r'(?i)reconnect(ing)? attempt'),
        gave_up_pattern=dict(type='str', default=r'(?i)(giving up|gave up|reconnect failed)'),
    ), supports_check_mode=True, mutually_exclusive=[('log_file', 'container')])
    p = module.params
    try:
        patterns = dict((k, re.compile(p[k])) for k in ('error_pattern', 'reconnect_pattern', 'gave_up_pattern'))
    except re.error as exc:
        module.fail_json(exception=traceback.format_exc(), msg='a log pattern is not a regular expression: %s' % exc)
    now = time.time()
    heartbeat = {}
    try:
        with open(p['heartbeat_file']) as handle:
            heartbeat = json.load(handle)
    except (IOError, OSError, ValueError):
        heartbeat = {}
    ts = heartbeat.get(p['time_field'])
    price_ts = heartbeat.get(p['price_field'])
    hb_age = round(now - float(ts), 3) if ts else None
    price_age = round(now - float(price_ts), 3) if price_ts else None
    lines = []
    try:
        if p['log_file']:
            lines = _tail(p['log_file'], p['log_lines'])
        elif p['container']:
            lines = _container_logs(p['container'], p['log_lines'], p['docker_host'])
    except Exception as exc:  # the docker SDK raises many kinds
        module.fail_json(exception=traceback.format_exc(), msg='cannot read the logs of container %s: %s' % (p['container'], exc))
    if hb_age is None or hb_age > p['max_age']:
        state = 'no_heartbeat'
    elif p['since'] and float(ts) < p['since']:
        state = 'stale'
    elif price_age is None or price_age > p['max_age'] or (p['since'] and float(price_ts) < p['since']):
        state = 'disconnected'
    else:
        state = 'healthy'
    # a strategy's log can hold what the results and artifacts must not: scrubbed as exchange errors are
    lines = [scrub_log_line(line) for line in lines]
    reconnects = [line for line in lines if patterns['reconnect_pattern'].search(line)]
    module.exit_json(changed=False, strategy=dict(
        state=state, heartbeat_age=hb_age, price_age=price_age, heartbeat=heartbeat,
        errors=[line for line in lines if patterns['error_pattern'].search(line)][-10:],
        reconnect_attempts=len(reconnects), gave_up=any(patterns['gave_up_pattern'].search(x) for x in lines),
        log_tail=lines[-20:]))


if __name__ == '__main__':
    main()
