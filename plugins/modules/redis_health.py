#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: redis_health
short_description: Diagnose a Redis server before and after a recovery
version_added: 0.1.0
description:
  - Read-only diagnosis of runbooks 000 (scenario 2), 001 (scenario 3) and 004 (3.3) -
    PING, INFO (persistence, memory, replication, loading), the length of configured streams
    and the presence of critical keys such as C(policy:kill_switch).
  - Says whether a restart could trigger an uncoordinated failover - the server is a
    replica, or Sentinel watches it (its hello channel, Sentinel client connections, or
    configured Sentinels that know it), or its redis.conf makes it a replica while it is down.
  - An unreachable server is a finding, not a failure (RV(redis.reachable=false) with the
    error). Wrong credentials and keys of the wrong type fail, because no recovery can fix them.
  - When O(min_stream_lengths) or O(keys) are given, RV(redis.shortfalls) lists what is missing.
extends_documentation_fragment:
  - tradeops.dr.redis
options:
  streams:
    description: Streams whose length to report.
    type: list
    elements: str
    default: []
  min_stream_lengths:
    description: Expected minimum length per stream; streams named here are reported too.
    type: dict
    default: {}
  keys:
    description: Keys that must exist.
    type: list
    elements: str
    default: []
  config_file:
    description:
      - The server's redis.conf, read on the host where the module runs. Lets the diagnosis
        find the AOF and a C(replicaof) line while the server is down.
    type: path
  sentinels:
    description: Sentinel endpoints (V(host:port)) to ask whether they know this server.
    type: list
    elements: str
    default: []
  sentinel_password:
    description: Password of the Sentinels, if they require one.
    type: str
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: The module reports what it did in its return values, not as a diff.
  idempotent:
    support: full
    description: Running it again with the same arguments changes nothing.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Diagnose the order-flow Redis
  tradeops.dr.redis_health:
    login_port: 6379
    login_password: "{{ vault_redis_password }}"
    min_stream_lengths:
      orders.validated: 1
      orders.fills: 1
    keys:
      - policy:kill_switch
    config_file: /etc/redis/redis.conf
    sentinels: [10.0.0.5:26379]
  register: redis_diag

- name: Stop when a restart could trigger a failover
  ansible.builtin.assert:
    that: redis_diag.redis.failover_risk | length == 0
    fail_msg: "{{ redis_diag.redis.failover_risk | join('; ') }}"
'''

RETURN = r'''
redis:
  description: The diagnosis.
  returned: always
  type: dict
  contains:
    endpoint:
      description: host:port probed.
      type: str
      sample: 127.0.0.1:6379
    reachable:
      description: Whether PING answered.
      type: bool
      sample: true
    error:
      description: Why the server could not be reached.
      type: str
      returned: when not reachable
      sample: "cannot connect to Redis at 127.0.0.1:6379: Connection refused"
    info:
      description: Selected INFO fields (server, persistence, memory, replication) and keys_total.
      type: dict
      returned: when reachable
      sample: {role: master, aof_enabled: 1, loading: 0, used_memory_human: 1.2M, keys_total: 12}
    streams:
      description: Length of each stream (0 for a missing key).
      type: dict
      returned: when reachable
      sample: {orders.validated: 120, orders.fills: 118}
    keys:
      description: Whether each key exists.
      type: dict
      returned: when reachable
      sample: {"policy:kill_switch": true}
    shortfalls:
      description: Streams shorter than expected and missing keys.
      type: list
      elements: str
      sample: ["stream orders.fills has 0 entries, expected at least 118"]
    config:
      description: Directives read from O(config_file) (port, dir, appendonly, replicaof, ...).
      type: dict
      returned: when config_file is given and readable
      sample: {port: "6380", appendonly: "yes", dir: /srv/redis}
    aof:
      description: Where the append-only files are, from O(config_file).
      type: dict
      returned: when config_file is given and readable
      sample: {data_dir: /srv/redis, appenddirname: appendonlydir, appendfilename: appendonly.aof}
    replica:
      description: Whether the server is (or, while down, is configured as) a replica.
      type: bool
      sample: false
    sentinel:
      description: Evidence that Sentinel watches the server, and Sentinels that could not be asked.
      type: dict
      sample: {watched: false, evidence: [], errors: []}
    failover_risk:
      description: Reasons why restarting this server could trigger an uncoordinated failover.
      type: list
      elements: str
      sample: ["the server is a replica of 10.0.0.4:6379"]
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _redis


CONF_KEYS = ('port', 'bind', 'dir', 'appendonly', 'appenddirname', 'appendfilename', 'replicaof', 'slaveof',
             'aof-load-truncated', 'pidfile')


def diagnose(params):
    diag = dict(endpoint=_redis.endpoint(params), reachable=False, shortfalls=[], replica=False,
                sentinel=dict(watched=False, evidence=[], errors=[]), failover_risk=[])
    conf = None
    if params.get('config_file'):
        try:
            conf = _redis.parse_redis_conf(params['config_file'])
        except (IOError, OSError) as exc:
            diag['config_error'] = 'cannot read %s: %s' % (params['config_file'], exc)
    if conf is not None:
        diag['config'] = dict((k, conf[k]) for k in CONF_KEYS if k in conf)
        data_dir, dirname, filename = _redis.aof_location(conf, params['config_file'])
        diag['aof'] = dict(data_dir=data_dir, appenddirname=dirname, appendfilename=filename,
                           enabled=conf.get('appendonly', 'no') == 'yes')

    streams = list(params['streams']) + [s for s in params['min_stream_lengths'] if s not in params['streams']]
    try:
        client = _redis.connect(params)
    except _redis.RedisUnreachable as exc:
        diag['error'] = str(exc)
        client = None
    if client is not None:
        diag['reachable'] = True
        diag['info'] = _redis.server_facts(client)
        diag['streams'] = _redis.stream_lengths(client, streams)
        diag['keys'] = _redis.keys_exist(client, params['keys'])
        if diag['info'].get('role') == 'slave':
            diag['replica'] = True
            diag['failover_risk'].append('the server is a replica of %s:%s (link %s)' % (
                diag['info'].get('master_host'), diag['info'].get('master_port'),
                diag['info'].get('master_link_status')))
        diag['sentinel']['evidence'] = _redis.sentinel_watchers(client)
        client.close()
        for name, want in params['min_stream_lengths'].items():
            have = diag['streams'].get(name, 0)
            if have < int(want):
                diag['shortfalls'].append('stream %s has %d entries, expected at least %d' % (name, have, int(want)))
        for name, present in diag['keys'].items():
            if not present:
                diag['shortfalls'].append('key %s is missing' % name)
    elif conf is not None and _redis.replica_of(conf):
        diag['replica'] = True
        diag['failover_risk'].append('redis.conf makes the server a replica of %s' % _redis.replica_of(conf))

    if params['sentinels']:
        found, errors = _redis.query_sentinels(params['sentinels'], params['login_host'], params['login_port'],
                                               password=params.get('sentinel_password'))
        diag['sentinel']['evidence'].extend(found)
        diag['sentinel']['errors'] = errors
    if diag['sentinel']['evidence']:
        diag['sentinel']['watched'] = True
        diag['failover_risk'].append('Sentinel watches the server: %s' % '; '.join(diag['sentinel']['evidence']))
    return diag


def main():
    argument_spec = _redis.redis_common_argument_spec()
    argument_spec.update(
        streams=dict(type='list', elements='str', default=[]),
        min_stream_lengths=dict(type='dict', default={}),
        keys=dict(type='list', elements='str', default=[], no_log=False),
        config_file=dict(type='path'),
        sentinels=dict(type='list', elements='str', default=[]),
        sentinel_password=dict(type='str', no_log=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _redis.ensure_library(module)
    for name, want in module.params['min_stream_lengths'].items():
        try:
            if int(want) < 0:
                raise ValueError
        except (TypeError, ValueError):
            module.fail_json(exception=traceback.format_exc(), msg='min_stream_lengths[%s] must be a whole number >= 0, got %r' % (name, want))
    try:
        diag = diagnose(module.params)
    except _redis.RedisDRError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    except Exception as exc:
        module.fail_json(msg='diagnosis of Redis at %s failed: %s' % (_redis.endpoint(module.params), exc),
                         exception=traceback.format_exc())
    module.exit_json(changed=False, redis=diag)


if __name__ == '__main__':
    main()
