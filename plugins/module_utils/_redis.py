# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Redis connection settings shared by every Redis module, error messages that say what was
tried without ever showing the password, server facts (INFO, streams, keys), the offline
reading of redis.conf, and the detection of replication and Sentinel before a restart."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shlex

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    HAS_REDIS = True
    REDIS_IMP_ERR = None
except ImportError:  # pragma: no cover - exercised only where the library is absent
    import traceback
    HAS_REDIS = False
    REDIS_IMP_ERR = traceback.format_exc()


class RedisDRError(Exception):
    """A Redis operation failed; the message is safe to show (no secrets)."""


class RedisUnreachable(RedisDRError):
    """Nothing answered at the endpoint (down, wrong port, firewall)."""


def redis_common_argument_spec():
    """Connection options of every Redis module (doc fragment tradeops.dr.redis)."""
    return dict(
        login_host=dict(type='str', default='127.0.0.1', fallback=(env_fallback, ['REDIS_HOST'])),
        login_port=dict(type='int', default=6379, fallback=(env_fallback, ['REDIS_PORT'])),
        login_user=dict(type='str', fallback=(env_fallback, ['REDIS_USER'])),
        login_password=dict(type='str', no_log=True, fallback=(env_fallback, ['REDISCLI_AUTH'])),
        db=dict(type='int', default=0),
        tls=dict(type='bool', default=False),
        ca_cert=dict(type='path'),
        connect_timeout=dict(type='float', default=3.0),
    )


def ensure_library(module):
    if not HAS_REDIS:
        module.fail_json(msg=missing_required_lib('redis'), exception=REDIS_IMP_ERR)


def endpoint(params):
    return '%s:%s' % (params['login_host'], params['login_port'])


def no_retry():
    """redis-py 6+ retries a refused connection with backoff by default: a diagnosis must
    answer at once, and the readiness probes have their own deadline and backoff."""
    return Retry(NoBackoff(), 0)


def connect(params):
    """Open a client and prove it with PING. Raises RedisDRError with a clear message."""
    kwargs = dict(host=params['login_host'], port=params['login_port'], db=params.get('db') or 0,
                  username=params.get('login_user') or None, password=params.get('login_password') or None,
                  socket_timeout=params.get('connect_timeout') or 3.0,
                  socket_connect_timeout=params.get('connect_timeout') or 3.0,
                  decode_responses=True, retry=no_retry())
    if params.get('tls'):
        kwargs.update(ssl=True, ssl_ca_certs=params.get('ca_cert'))
    client = redis.Redis(**kwargs)
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise RedisDRError('authentication to Redis at %s failed%s (password not shown): %s' % (
            endpoint(params), ' as user %s' % params['login_user'] if params.get('login_user') else '', exc))
    except redis.exceptions.ResponseError as exc:
        if 'NOAUTH' in str(exc) or 'WRONGPASS' in str(exc):
            raise RedisDRError('Redis at %s requires authentication: %s (set login_password)' % (endpoint(params), exc))
        raise RedisDRError('Redis at %s answered PING with an error: %s' % (endpoint(params), exc))
    except redis.exceptions.BusyLoadingError as exc:
        raise RedisDRError('Redis at %s is still loading its dataset: %s' % (endpoint(params), exc))
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise RedisUnreachable('cannot connect to Redis at %s: %s' % (endpoint(params), exc))
    return client


# --------------------------------------------------------------------------- facts

INFO_KEYS = {
    'server': ('redis_version', 'redis_mode', 'process_id', 'tcp_port', 'uptime_in_seconds', 'config_file',
               'executable'),
    'persistence': ('loading', 'aof_enabled', 'aof_rewrite_in_progress', 'aof_last_write_status',
                    'aof_last_bgrewrite_status', 'rdb_last_bgsave_status', 'rdb_changes_since_last_save',
                    'rdb_last_save_time', 'async_loading'),
    'memory': ('used_memory', 'used_memory_human', 'maxmemory', 'maxmemory_human', 'maxmemory_policy',
               'mem_fragmentation_ratio'),
    'replication': ('role', 'master_host', 'master_port', 'master_link_status', 'connected_slaves',
                    'master_failover_state'),
}


def server_facts(client):
    facts = {}
    for section, keys in INFO_KEYS.items():
        info = client.info(section)
        for key in keys:
            if key in info:
                facts[key] = info[key]
    keyspace = client.info('keyspace')
    facts['keys_total'] = sum(int(v.get('keys', 0)) for v in keyspace.values() if isinstance(v, dict))
    return facts


def stream_lengths(client, names):
    """XLEN of each stream; a missing key has length 0, a key of another type is an error."""
    out = {}
    for name in names:
        kind = client.type(name)
        if kind not in ('stream', 'none'):
            raise RedisDRError('key %s is a %s, not a stream' % (name, kind))
        out[name] = client.xlen(name) if kind == 'stream' else 0
    return out


def keys_exist(client, names):
    return dict((name, bool(client.exists(name))) for name in names)


def sentinel_watchers(client):
    """Evidence that Sentinel watches this server: Sentinels publish on __sentinel__:hello
    on every server they monitor, and connect with client names starting with sentinel-."""
    evidence = []
    try:
        channels = client.pubsub_channels('__sentinel__:*')
    except redis.exceptions.ResponseError:
        channels = []
    if channels:
        evidence.append('Sentinel hello channel subscribed: %s' % ', '.join(sorted(channels)))
    try:
        clients = client.client_list()
    except redis.exceptions.ResponseError:
        clients = []
    names = sorted(set(c.get('name', '') for c in clients if str(c.get('name', '')).startswith('sentinel-')))
    if names:
        evidence.append('%d Sentinel connection(s): %s' % (len(names), ', '.join(names[:6])))
    return evidence


def query_sentinels(sentinels, host, port, timeout=2.0, password=None):
    """Ask configured Sentinels (host:port strings) whether they know host:port as a master
    or a replica. Unreachable Sentinels are reported, not fatal."""
    found, errors = [], []
    for item in sentinels or []:
        s_host, _sep, s_port = str(item).rpartition(':')
        try:
            client = redis.Redis(host=s_host or '127.0.0.1', port=int(s_port), password=password or None,
                                 socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True,
                                 retry=no_retry())
            masters = client.sentinel_masters()
            for mname, master in masters.items():
                if _same(master.get('ip'), master.get('port'), host, port):
                    found.append('Sentinel %s monitors it as master %s' % (item, mname))
                    continue
                for rep in client.sentinel_slaves(mname):
                    if _same(rep.get('ip'), rep.get('port'), host, port):
                        found.append('Sentinel %s knows it as a replica of master %s' % (item, mname))
            client.close()
        except (redis.exceptions.RedisError, OSError, ValueError) as exc:
            errors.append('Sentinel %s: %s' % (item, exc))
    return found, errors


def _same(ip, port, host, want_port):
    local = ('127.0.0.1', 'localhost', '::1')
    same_host = str(ip) == str(host) or (str(ip) in local and str(host) in local)
    return same_host and int(port or 0) == int(want_port)


# --------------------------------------------------------------------------- redis.conf

def parse_redis_conf(path, _seen=None):
    """Directives of a redis.conf (last one wins, include followed), lower-cased names."""
    seen = _seen if _seen is not None else set()
    real = os.path.realpath(path)
    if real in seen:
        return {}
    seen.add(real)
    conf = {}
    with open(path) as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith('#'):
                continue
            try:
                parts = shlex.split(line)
            except ValueError:
                parts = line.split()
            name, args = parts[0].lower(), parts[1:]
            if name == 'include' and args:
                inc = args[0] if os.path.isabs(args[0]) else os.path.join(os.path.dirname(path), args[0])
                conf.update(parse_redis_conf(inc, seen))
                continue
            conf[name] = ' '.join(args)
    return conf


def replica_of(conf):
    """'host port' when redis.conf makes the server a replica, else None."""
    return conf.get('replicaof') or conf.get('slaveof') or None


def aof_location(conf, conf_path=None):
    """(dir, appenddirname, appendfilename) from redis.conf, with Redis 7 defaults. A
    relative dir is relative to the server's working directory, which we cannot know from
    the file alone: the directory holding redis.conf is assumed then."""
    data_dir = conf.get('dir', '.')
    if not os.path.isabs(data_dir):
        base = os.path.dirname(os.path.abspath(conf_path)) if conf_path else os.getcwd()
        data_dir = os.path.normpath(os.path.join(base, data_dir))
    return data_dir, conf.get('appenddirname', 'appendonlydir'), conf.get('appendfilename', 'appendonly.aof')
