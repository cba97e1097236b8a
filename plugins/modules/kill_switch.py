#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: kill_switch
short_description: Engage, read, verify and reset the trading kill switch in Redis
version_added: 0.1.0
description:
  - V(engage) sets C(policy:kill_switch) atomically (enabled, state, reason, actor, time, incident)
    and appends an event to C(policy:kill_switch:events). Engaging twice keeps the first reason,
    actor and time; only a stricter state (V(reducing) to V(halted)) is applied. If Redis cannot
    be reached, the module fails closed - it writes O(flag_file) and fails loudly; when that file cannot be written
    either, it fails saying the switch is set nowhere (no O(flag_file) in the result).
  - V(status) reads the switch and changes nothing.
  - V(verify_acks) waits until every engine in O(engines) acknowledged the engagement (a hash
    O(ack_key) with C(at_ms) not older than the engagement) and names the silent ones.
  - V(verify_flat) waits until the exposure summed over the position hashes is zero.
  - V(set_drawdown) writes O(drawdown) to O(drawdown_key) (drills simulate a drawdown with it).
  - V(wait_engaged) waits until the switch is engaged (by the engines' own risk logic, in a drill).
  - V(verify_quiet) checks that O(orders_stream) receives no new order for O(quiet_seconds).
  - V(reset) returns the switch to V(active), only with O(confirm) repeating the incident id,
    only while the drawdown is below O(drawdown_threshold) (unless O(force)), and with a second
    approver when O(require_second_approver); who, who approved and why are recorded.
extends_documentation_fragment:
  - tradeops.dr.redis
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [engage, status, verify_acks, verify_flat, reset, set_drawdown, wait_engaged, verify_quiet]
  drawdown:
    description: V(set_drawdown) - the drawdown fraction to write.
    type: float
  orders_stream:
    description: V(verify_quiet) - the stream that must stay quiet.
    type: str
    default: orders.validated
  quiet_seconds:
    description: V(verify_quiet) - seconds without a new order.
    type: float
    default: 2
  state:
    description: Graded state taken by V(engage) - V(halted) (no new orders, working orders cancelled) or V(reducing) (only position-reducing orders).
    type: str
    default: halted
    choices: [halted, reducing]
  reason:
    description: Why (V(engage), V(reset)).
    type: str
  actor:
    description: Who (V(engage), V(reset)).
    type: str
  incident:
    description: Incident id recorded by V(engage); V(reset) must repeat it in O(confirm).
    type: str
  confirm:
    description: V(reset) - the incident id of the engagement (or V(RESET) when none was recorded).
    type: str
  approver:
    description: V(reset) - the second person approving it.
    type: str
  require_second_approver:
    description: V(reset) needs O(approver), another person than O(actor).
    type: bool
    default: false
  force:
    description: V(reset) even while the drawdown is beyond the threshold.
    type: bool
    default: false
  drawdown_key:
    description: Redis key (string) holding the current drawdown as a fraction (V(0.05) is 5%).
    type: str
    default: risk:drawdown
  drawdown_threshold:
    description: V(reset) is refused while the drawdown is at or beyond this fraction.
    type: float
    default: 0.15
  key:
    description: The kill-switch hash.
    type: str
    default: policy:kill_switch
  events_stream:
    description: Stream that receives one event per engage and reset.
    type: str
    default: policy:kill_switch:events
  flag_file:
    description: Local flag file written when Redis cannot be reached during V(engage) (fail closed).
    type: path
    default: /var/lib/tradeops-dr/kill_switch.flag
  engines:
    description: Engines that must acknowledge (V(verify_acks)).
    type: list
    elements: str
    default: []
  ack_key:
    description: Hash an engine writes to acknowledge; C({name}) is replaced by the engine name.
    type: str
    default: "engine:{name}:ack"
  positions_pattern:
    description: Keys of the position hashes (V(verify_flat)).
    type: str
    default: "positions:*"
  quantity_field:
    description: Field of a position hash holding the signed quantity.
    type: str
    default: qty
  timeout:
    description: Seconds to wait for acknowledgements or for a flat book.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    description: V(engage) and V(reset) report what they would do; nothing is written.
  diff_mode:
    support: none
    description: The events stream is the record.
  idempotent:
    support: full
    description: Engaging an engaged switch changes nothing; resetting an active one changes nothing.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Stop trading now (runbook 004, 3.1)
  tradeops.dr.kill_switch:
    action: engage
    reason: broker IBKR disconnected
    actor: "{{ lookup('ansible.builtin.env', 'USER') }}"
    incident: INC-2026-1123-01

- name: Every engine acknowledged within 10 s
  tradeops.dr.kill_switch:
    action: verify_acks
    engines: [momentum, meanrev]
    timeout: 10

- name: Lift it, two people agreeing
  tradeops.dr.kill_switch:
    action: reset
    confirm: INC-2026-1123-01
    actor: alice
    approver: bob
    require_second_approver: true
    reason: broker back, positions reconciled
'''

RETURN = r'''
kill_switch:
  description: The switch after the action.
  returned: when Redis answered
  type: dict
  sample: {enabled: true, state: halted, reason: drawdown 5%, actor: drill, incident: INC-1, engaged_at: "2026-11-23T03:00:00.123Z"}
outcome:
  description: For engage - V(engaged), V(already) (first engagement kept) or V(escalated); for reset - V(reset) or V(already_active).
  returned: for engage and reset
  type: str
  sample: engaged
acked:
  description: Engines that acknowledged, with their ack data.
  returned: for verify_acks
  type: dict
  sample: {momentum: {state: halted, at_ms: "1795000000123"}}
silent:
  description: Engines that did not acknowledge within the timeout.
  returned: for verify_acks
  type: list
  elements: str
  sample: []
exposure:
  description: Sum of absolute quantities and the positions that are not flat.
  returned: for verify_flat
  type: dict
  sample: {total: 0.0, open: {}}
flag_file:
  description: The local flag written because Redis could not be reached.
  returned: when engage failed closed
  type: str
  sample: /var/lib/tradeops-dr/kill_switch.flag
'''

import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _killswitch, _redis
from ansible_collections.tradeops.dr.plugins.module_utils._probe import wait_until


def main():
    argument_spec = _redis.redis_common_argument_spec()
    argument_spec.update(
        action=dict(type='str', required=True, choices=['engage', 'status', 'verify_acks', 'verify_flat', 'reset',
                                                        'set_drawdown', 'wait_engaged', 'verify_quiet']),
        drawdown=dict(type='float'),
        orders_stream=dict(type='str', default='orders.validated'),
        quiet_seconds=dict(type='float', default=2.0),
        state=dict(type='str', default='halted', choices=list(_killswitch.STATES)),
        reason=dict(type='str'), actor=dict(type='str'), incident=dict(type='str'), confirm=dict(type='str'),
        approver=dict(type='str'), require_second_approver=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
        drawdown_key=dict(type='str', default='risk:drawdown', no_log=False),
        drawdown_threshold=dict(type='float', default=0.15),
        key=dict(type='str', default='policy:kill_switch', no_log=False),
        events_stream=dict(type='str', default='policy:kill_switch:events'),
        flag_file=dict(type='path', default='/var/lib/tradeops-dr/kill_switch.flag'),
        engines=dict(type='list', elements='str', default=[]),
        ack_key=dict(type='str', default='engine:{name}:ack', no_log=False),
        positions_pattern=dict(type='str', default='positions:*'),
        quantity_field=dict(type='str', default='qty'),
        timeout=dict(type='float', default=30.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('action', 'engage', ('reason', 'actor')),
                                        ('action', 'set_drawdown', ('drawdown',)),
                                        ('action', 'reset', ('confirm', 'actor', 'reason'))])
    _redis.ensure_library(module)
    p = module.params
    try:
        client = _redis.connect(p)
    except _redis.RedisDRError as exc:
        if p['action'] == 'engage' and not module.check_mode:
            try:
                path = _killswitch.write_flag_file(p['flag_file'], p['reason'], p['actor'], p['incident'], p['state'],
                                                   str(exc))
            except OSError as err:
                module.fail_json(exception=traceback.format_exc(), changed=False, msg=(
                    'KILL SWITCH NOT SET ANYWHERE: Redis: %s; the local flag file %s could not be written either: %s. '
                    'Nothing holds the switch: stop the strategy services, cancel the orders and tell the engines by '
                    'hand.' % (exc, p['flag_file'], err)))
            module.fail_json(exception=traceback.format_exc(), changed=True, flag_file=path, msg=(
                'KILL SWITCH NOT SET IN REDIS: %s. Failed closed: the local flag %s was written; stop the strategy '
                'services and check the engines by hand.' % (exc, path)))
        if p['action'] == 'engage':  # check mode: the plan is the fail-closed path
            module.exit_json(changed=True, outcome='would write the flag file', flag_file=p['flag_file'],
                             kill_switch={}, msg='Redis cannot be reached (%s): an engage would write the local flag '
                                                 '%s and fail loudly' % (exc, p['flag_file']))
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))

    try:
        if p['action'] == 'status':
            module.exit_json(changed=False, kill_switch=_killswitch.status(client, p['key']))
        if p['action'] == 'engage':
            current = _killswitch.status(client, p['key'])
            if module.check_mode:
                would = not current['enabled'] or (
                    _killswitch.STRICTNESS[p['state']] > _killswitch.STRICTNESS.get(current['state'], 0))
                module.exit_json(changed=would, kill_switch=current, outcome='would engage' if would else 'already')
            outcome, _prev = _killswitch.engage(client, p['key'], p['events_stream'], p['state'], p['reason'],
                                                p['actor'], p['incident'])
            module.exit_json(changed=outcome != 'already', outcome=outcome,
                             kill_switch=_killswitch.status(client, p['key']))
        if p['action'] == 'verify_acks':
            current = _killswitch.status(client, p['key'])
            if not current['enabled']:
                module.fail_json(msg='the kill switch is not engaged: nothing to acknowledge', kill_switch=current)
            since = int(current.get('engaged_at_ms') or 0)
            box = {}

            def all_acked():
                box['acked'], box['silent'] = _killswitch.ack_status(client, p['engines'], p['ack_key'], since)
                return not box['silent'], ', '.join(box['silent'])
            res = wait_until(all_acked, p['timeout'], first_delay=0.05, max_delay=0.5)
            if not res['ok']:
                module.fail_json(msg='engine(s) %s did not acknowledge the kill switch within %ss (no %s newer than '
                                 'the engagement)' % (', '.join(box['silent']), p['timeout'], p['ack_key']),
                                 acked=box['acked'], silent=box['silent'], kill_switch=current)
            module.exit_json(changed=False, acked=box['acked'], silent=[], kill_switch=current)
        if p['action'] == 'set_drawdown':
            previous = client.get(p['drawdown_key'])
            if module.check_mode:
                module.exit_json(changed=True, previous=previous)
            client.set(p['drawdown_key'], repr(p['drawdown']))
            module.exit_json(changed=True, previous=previous, drawdown=p['drawdown'])
        if p['action'] == 'wait_engaged':
            started = time.monotonic()
            res = wait_until(lambda: (_killswitch.status(client, p['key'])['enabled'], 'not engaged'), p['timeout'],
                             first_delay=0.02, max_delay=0.25)
            current = _killswitch.status(client, p['key'])
            if not res['ok']:
                module.fail_json(msg='the kill switch was not engaged within %ss' % p['timeout'], kill_switch=current)
            module.exit_json(changed=False, kill_switch=current, waited=round(time.monotonic() - started, 3))
        if p['action'] == 'verify_quiet':
            before = client.xlen(p['orders_stream'])
            time.sleep(p['quiet_seconds'])
            after = client.xlen(p['orders_stream'])
            if after != before:
                module.fail_json(msg='%d new order(s) reached %s in the %ss after the kill switch engaged' % (
                    after - before, p['orders_stream'], p['quiet_seconds']))
            module.exit_json(changed=False, orders=after)
        if p['action'] == 'verify_flat':
            box = {}

            def flat():
                box['total'], box['open'] = _killswitch.exposure(client, p['positions_pattern'], p['quantity_field'])
                return box['total'] == 0, '; '.join('%s %s' % kv for kv in sorted(box['open'].items()))
            res = wait_until(flat, p['timeout'], first_delay=0.05, max_delay=0.5)
            exposure = dict(total=box['total'], open=box['open'])
            if not res['ok']:
                module.fail_json(msg='exposure is not zero after %ss: %s' % (p['timeout'], res['last_detail']),
                                 exposure=exposure)
            module.exit_json(changed=False, exposure=exposure)
        # reset
        raw = client.get(p['drawdown_key'])
        drawdown = float(raw) if raw not in (None, '') else None
        current = _killswitch.status(client, p['key'])
        if module.check_mode:
            module.exit_json(changed=current['enabled'], kill_switch=current,
                             outcome='would reset' if current['enabled'] else 'already_active')
        done, after = _killswitch.reset(client, p['key'], p['events_stream'], p['actor'], p['reason'], p['confirm'],
                                        p['approver'], p['require_second_approver'], drawdown,
                                        p['drawdown_threshold'], p['force'])
        module.exit_json(changed=done, kill_switch=after, outcome='reset' if done else 'already_active')
    except _killswitch.KillSwitchError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    except ValueError as exc:
        module.fail_json(exception=traceback.format_exc(), msg='bad value in Redis: %s' % exc)


if __name__ == '__main__':
    main()
