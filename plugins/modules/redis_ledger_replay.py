#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: redis_ledger_replay
short_description: Bring back what Redis lost by replaying the trading ledger, exactly once
version_added: 0.1.0
description:
  - Runbook 004 (3.3) replays Redis from the ledger after a crash. This module reads the
    SQLite ledger on the host that runs it, validates every row, compares the ledger with
    Redis and writes only what is missing.
  - "Ledger table (name set by O(table)): C(seq) INTEGER PRIMARY KEY (order), C(op) TEXT
    (V(xadd), V(hset) or V(set)), C(key) TEXT, C(entry_id) TEXT (stream entry ID C(<ms>-<seq>),
    required for xadd), C(payload) TEXT (a JSON object of fields for xadd and hset, a JSON
    string or number for set)."
  - Adds only what Redis lacks - stream entries keep their ledger IDs and present ones are
    skipped; hashes and strings are folded to their final ledger state and only fields (and
    strings) that Redis does not have are written (C(HSETNX), C(SET NX)). A live value that
    differs from the ledger is newer than it or was set on purpose - it is reported in
    RV(replay.diverged), never overwritten. Replaying twice writes nothing the second time.
  - Control state is never written - keys matching O(protected_keys) (by default the kill switch,
    its events, risk limits and the active broker) are left as they are, present or not, and
    reported in RV(replay.protected), so that a replay can never lower the protection of an
    engaged kill switch or bring back an older broker or limit.
  - Nothing is written when any row is malformed, when a key has another type in Redis, or
    when missing stream entries are older than the stream's newest entry (they could not be
    inserted in order); the message names the rows or keys.
  - The module only adds or updates; it never deletes a key, a field or a stream entry.
extends_documentation_fragment:
  - tradeops.dr.redis
options:
  ledger_path:
    description: Path of the SQLite ledger (for example C(ledger.db)).
    type: path
    required: true
  table:
    description: Ledger table.
    type: str
    default: ledger
  batch_size:
    description: Operations per MULTI/EXEC transaction.
    type: int
    default: 500
  protected_keys:
    description: Glob patterns (C(fnmatch)) of control keys the replay never writes.
    type: list
    elements: str
    default: ["policy:kill_switch", "policy:kill_switch:*", "risk:*", "broker:active", "broker:events"]
attributes:
  check_mode:
    support: full
    description: Validates and plans; reports how many entries would be written; writes nothing.
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
- name: Replay what Redis lost from the ledger
  tradeops.dr.redis_ledger_replay:
    login_port: 6379
    login_password: "{{ vault_redis_password }}"
    ledger_path: /srv/trading/ledger.db
  register: replay

- name: Report it
  ansible.builtin.debug:
    msg: "wrote {{ replay.replay.written }} of {{ replay.replay.ledger_entries }} ledger entries"
'''

RETURN = r'''
replay:
  description: What the ledger holds, what Redis lacked and what was written.
  returned: always
  type: dict
  contains:
    ledger_entries:
      description: Rows in the ledger.
      type: int
      sample: 240
    written:
      description: Operations written (stream entries added, plus one per hash or string key changed).
      type: int
      sample: 118
    stream_entries_written:
      description: Stream entries added.
      type: int
      sample: 115
    keys_written:
      description: Hash and string keys whose missing fields or value were brought back.
      type: list
      elements: str
      sample: ["positions:EURUSD", "strategy:mode"]
    diverged:
      description: Live values that differ from the ledger's final state, left as they are.
      type: list
      elements: str
      sample: ["hash positions:EURUSD field qty: live '12', ledger '10'"]
    protected:
      description: Control keys of the ledger, never written, with whether Redis has them (V(present) or
        V(missing)); a missing one must be set by a person (the kill_switch role).
      type: dict
      sample: {"policy:kill_switch": present}
    protected_ledger:
      description: For each missing control key, its last value in the ledger (a hash's fields or a string), for a
        person to confirm before setting it again.
      type: dict
      sample: {"risk:drawdown": {"max": "0.15"}}
    streams:
      description: Per stream - entries in the ledger, present before, missing.
      type: dict
      sample: {orders.fills: {ledger: 118, present: 3, missing: 115}}
    hashes:
      description: Per hash - fields in the ledger state, how many Redis lacked and how many differ.
      type: dict
      sample: {"positions:EURUSD": {fields: 2, missing: 2, diverged: 0}}
    strings:
      description: Per string key - whether Redis lacked it or holds another value.
      type: dict
      sample: {"strategy:mode": {missing: false, diverged: false}}
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _ledger, _redis


def main():
    argument_spec = _redis.redis_common_argument_spec()
    argument_spec.update(
        ledger_path=dict(type='path', required=True),
        table=dict(type='str', default='ledger'),
        batch_size=dict(type='int', default=500),
        protected_keys=dict(type='list', elements='str', default=list(_ledger.PROTECTED), no_log=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _redis.ensure_library(module)
    p = module.params
    if p['batch_size'] < 1:
        module.fail_json(msg='batch_size must be at least 1, got %d' % p['batch_size'])
    try:
        entries = _ledger.validate(_ledger.read_ledger(p['ledger_path'], p['table']))
        client = _redis.connect(p)
        report = _ledger.plan(client, entries, p['protected_keys'])
    except (_ledger.LedgerError, _redis.RedisDRError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    except Exception as exc:
        module.fail_json(msg='ledger replay to Redis at %s failed before writing: %s' % (_redis.endpoint(p), exc),
                         exception=traceback.format_exc())

    writes = report.pop('writes')
    conflicts = report.pop('conflicts')
    result = dict(report, ledger_entries=len(entries), written=0,
                  stream_entries_written=0, keys_written=[], would_write=len(writes))
    if conflicts:
        module.fail_json(msg='the ledger cannot be replayed into Redis at %s, nothing was written: %s' % (
            _redis.endpoint(p), '; '.join(conflicts)), replay=result)
    if module.check_mode or not writes:
        module.exit_json(changed=bool(writes), replay=result)
    try:
        result['written'] = _ledger.apply(client, writes, p['batch_size'])
    except Exception as exc:
        module.fail_json(msg='ledger replay to Redis at %s stopped after a failed batch (completed batches are '
                         'kept; run again to finish, replay is idempotent): %s' % (_redis.endpoint(p), exc),
                         replay=result, exception=traceback.format_exc())
    result['stream_entries_written'] = sum(1 for w in writes if w[0] == 'xadd')
    result['keys_written'] = [w[1] for w in writes if w[0] != 'xadd']
    module.exit_json(changed=True, replay=result)


if __name__ == '__main__':
    main()
