#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: broker_failover
short_description: Switch the active broker adapter along a chain and prove the order flow through it
version_added: 0.1.0
description:
  - Runbook 004 (3.1) reroutes orders through a backup adapter (IBKR to Zerodha to Paper) and
    checks the order streams. The active adapter is a Redis key (O(active_key)) that the users'
    order router reads; every switch is appended to O(events_stream).
  - V(switch) makes O(target) (default - the adapter after the active one in O(chain)) active.
  - V(verify) sends a test order (C(test=true), a unique C(order_id)) to O(orders_stream) and
    waits for its fill in O(fills_stream); the users' router must fill test orders of the active
    adapter. The role switches back when verification fails.
extends_documentation_fragment:
  - tradeops.dr.redis
options:
  action:
    description: V(switch) or V(verify).
    type: str
    required: true
    choices: [switch, verify]
  chain:
    description: Adapters in failover order, for example V([ibkr, zerodha, paper]).
    type: list
    elements: str
    required: true
  target:
    description: Adapter to make active (V(switch)); default - the next one in O(chain).
    type: str
  reason:
    description: Why, recorded in the event.
    type: str
    default: failover
  active_key:
    description: Redis key naming the active adapter.
    type: str
    default: broker:active
  events_stream:
    description: Stream that receives one event per switch.
    type: str
    default: broker:events
  orders_stream:
    description: Stream of validated orders (runbook 004 - orders.validated).
    type: str
    default: orders.validated
  fills_stream:
    description: Stream of fills (runbook 004 - orders.fills).
    type: str
    default: orders.fills
  test_symbol:
    description: Symbol of the test order.
    type: str
    default: TEST
  timeout:
    description: Seconds to wait for the test order's fill.
    type: float
    default: 15
attributes:
  check_mode:
    support: full
    description: V(switch) reports the adapter it would activate; V(verify) sends nothing.
  diff_mode:
    support: none
    description: The events stream is the record.
  idempotent:
    support: partial
    description: Switching to the adapter already active changes nothing; V(verify) always sends a test order.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Fail over to the next adapter
  tradeops.dr.broker_failover:
    action: switch
    chain: [ibkr, zerodha, paper]
    reason: IBKR disconnected
  register: switch

- name: Prove orders flow through it
  tradeops.dr.broker_failover:
    action: verify
    chain: [ibkr, zerodha, paper]
'''

RETURN = r'''
previous:
  description: The adapter active before the switch.
  returned: for switch
  type: str
  sample: ibkr
active:
  description: The adapter active now.
  returned: always
  type: str
  sample: zerodha
test_order:
  description: The test order sent and the fill that answered it.
  returned: for verify
  type: dict
  sample: {order_id: dr-test-1795000000123, fill_id: 1795000000456-0, seconds: 0.12}
'''

import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _redis
from ansible_collections.tradeops.dr.plugins.module_utils._killswitch import now


def main():
    argument_spec = _redis.redis_common_argument_spec()
    argument_spec.update(
        action=dict(type='str', required=True, choices=['switch', 'verify']),
        chain=dict(type='list', elements='str', required=True),
        target=dict(type='str'),
        reason=dict(type='str', default='failover'),
        active_key=dict(type='str', default='broker:active', no_log=False),
        events_stream=dict(type='str', default='broker:events'),
        orders_stream=dict(type='str', default='orders.validated'),
        fills_stream=dict(type='str', default='orders.fills'),
        test_symbol=dict(type='str', default='TEST'),
        timeout=dict(type='float', default=15.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _redis.ensure_library(module)
    p = module.params
    if len(set(p['chain'])) != len(p['chain']) or not p['chain']:
        module.fail_json(msg='chain must list each adapter once, got %s' % p['chain'])
    try:
        client = _redis.connect(p)
    except _redis.RedisDRError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    active = client.get(p['active_key'])

    if p['action'] == 'switch':
        if p['target']:
            if p['target'] not in p['chain']:
                module.fail_json(msg='target %s is not in the chain %s' % (p['target'], ', '.join(p['chain'])))
            target = p['target']
        else:
            if active not in p['chain']:
                module.fail_json(msg='the active adapter %r (%s) is not in the chain %s: name the target' % (
                    active, p['active_key'], ', '.join(p['chain'])))
            pos = p['chain'].index(active)
            if pos + 1 >= len(p['chain']):
                module.fail_json(msg='no backup adapter left after %s in the chain %s' % (active, ', '.join(p['chain'])))
            target = p['chain'][pos + 1]
        if target == active:
            module.exit_json(changed=False, previous=active, active=active)
        if not module.check_mode:
            _ms, iso = now()
            pipe = client.pipeline(transaction=True)
            pipe.set(p['active_key'], target)
            pipe.xadd(p['events_stream'], {'event': 'switch', 'from': active or '', 'to': target, 'reason': p['reason'],
                                           'at': iso})
            pipe.execute()
        module.exit_json(changed=True, previous=active, active=target)

    # verify
    if module.check_mode:
        module.exit_json(changed=False, active=active, test_order=dict(skipped='check mode: no test order sent'))
    ms, iso = now()
    order_id = 'dr-test-%d' % ms
    last = client.xrevrange(p['fills_stream'], count=1)
    cursor = last[0][0] if last else '0-0'
    client.xadd(p['orders_stream'], {'order_id': order_id, 'test': 'true', 'broker': active or '',
                                     'symbol': p['test_symbol'], 'side': 'buy', 'qty': '1', 'at': iso})
    started = time.monotonic()
    deadline = started + p['timeout']
    while time.monotonic() < deadline:
        block = max(1, int((deadline - time.monotonic()) * 1000))
        for _stream, entries in client.xread({p['fills_stream']: cursor}, block=min(block, 500)) or []:
            for entry_id, fields in entries:
                cursor = entry_id
                if fields.get('order_id') == order_id:
                    module.exit_json(changed=True, active=active, test_order=dict(
                        order_id=order_id, fill_id=entry_id, fill=fields, seconds=round(time.monotonic() - started, 3)))
    module.fail_json(active=active, test_order=dict(order_id=order_id), msg=(
        'order flow through %s not verified: test order %s got no fill in %s within %ss' % (
            active, order_id, p['fills_stream'], p['timeout'])))


if __name__ == '__main__':
    main()
