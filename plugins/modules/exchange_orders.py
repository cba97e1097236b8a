#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: exchange_orders
short_description: Cancel every open order on an exchange, or arm its dead-man's switch, through ccxt
version_added: 0.1.0
description:
  - V(cancel_all) cancels the open orders of O(symbols) (empty - every instrument that has one), then reads the open
    orders again until none is left or O(timeout) passes; the run fails naming the orders still open. The orders it
    cancelled are returned as they were. Where the venue's cancel-all takes no instrument (Kraken's C(CancelAll)
    cancels every order of the account), a cancel-all limited to O(symbols) cancels their orders one by one.
  - V(arm_dead_man) arms the exchange's cancel-all-after timer (Binance futures C(countdownCancelAll) per symbol,
    the unified C(cancelAllOrdersAfter) of Bybit, OKX, Kraken and others) so that the exchange cancels every order
    by itself if nobody renews it within O(dead_man_seconds) - runbook 003 section 3, an exchange that is down - and
    V(disarm_dead_man) stops it. An account-wide timer is reported as symbol C(*) - it covers every instrument, whatever
    O(symbols) says. Kraken counts whole seconds.
  - Positions are never closed by this module (flattening is the users' command, see the kill_switch role).
extends_documentation_fragment:
  - tradeops.dr.exchange
options:
  action:
    description: What to do.
    type: str
    choices: [cancel_all, arm_dead_man, disarm_dead_man]
    required: true
  symbols:
    description: Instruments (unified, the exchange's ids, or a Kraken pair's short name such as C(XBTUSD)); unknown
      ones are refused before anything is sent.
    type: list
    elements: str
    default: []
  dead_man_seconds:
    description: Seconds after which the exchange cancels every order unless armed again (V(arm_dead_man)).
    type: float
    default: 120
  timeout:
    description: Seconds to wait, after cancelling, for the exchange to show no open order.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: Reads the open orders and reports what would be cancelled or armed; sends no change.
  diff_mode:
    support: none
    description: No diff.
  idempotent:
    support: full
    description: With no open order left, V(cancel_all) changes nothing; arming again only renews the timer.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Cancel every open order (kill switch engaged)
  tradeops.dr.exchange_orders:
    exchange: binanceusdm
    action: cancel_all

- name: The exchange is down - let it cancel our orders if we cannot (runbook 003, section 3)
  tradeops.dr.exchange_orders:
    exchange: binanceusdm
    action: arm_dead_man
    symbols: [BTCUSDT, ETHUSDT]
    dead_man_seconds: 120
'''

RETURN = r'''
cancelled:
  description: The open orders before cancelling (V(cancel_all)); in check mode, the orders that would be cancelled.
  returned: always
  type: list
  elements: dict
  sample: [{id: "1002", client_order_id: "momentum-7", symbol: "BTC/USDT:USDT", side: buy, amount: 0.1, price: 50000.0}]
still_open:
  description: Open orders read after cancelling (empty on success).
  returned: always
  type: list
  elements: dict
  sample: []
armed:
  description: The timers armed (or disarmed, seconds 0), per symbol or V(*) for an account-wide timer.
  returned: always
  type: list
  elements: dict
  sample: [{symbol: "BTC/USDT:USDT", seconds: 120}]
seconds:
  description: From the first cancel request to an empty order book read back.
  returned: always
  type: float
  sample: 0.21
'''

import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tradeops.dr.plugins.module_utils import _exchange, _probe


def main():
    spec = _exchange.exchange_argument_spec()
    spec.update(
        action=dict(type='str', required=True, choices=['cancel_all', 'arm_dead_man', 'disarm_dead_man']),
        symbols=dict(type='list', elements='str', default=[]),
        dead_man_seconds=dict(type='float', default=120),
        timeout=dict(type='float', default=10),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if not _exchange.HAS_CCXT:
        module.fail_json(msg=missing_required_lib('ccxt'), exception=_exchange.CCXT_IMPORT_ERROR)
    p = module.params
    if p['action'] == 'arm_dead_man' and p['dead_man_seconds'] <= 0:
        module.fail_json(msg='dead_man_seconds must be above 0 to arm; use action=disarm_dead_man to stop the timer')
    out = dict(changed=False, cancelled=[], still_open=[], armed=[], seconds=0.0)
    try:
        ex = _exchange.connect(p)
        symbols = _exchange.resolve_symbols(ex, p, p['symbols'])
        if p['action'] == 'cancel_all':
            if module.check_mode:
                out['cancelled'] = _exchange.open_orders(ex, p, symbols)
                out['changed'] = bool(out['cancelled'])
                module.exit_json(**out)
            start = time.time()
            before, after = _exchange.cancel_all(ex, p, symbols)
            deadline = start + p['timeout']
            if after:
                left = {}

                def none_open():
                    left['orders'] = _exchange.open_orders(ex, p, symbols)
                    return not left['orders'], len(left['orders'])
                _probe.wait_until(none_open, max(0.0, deadline - time.time()), first_delay=0.2, max_delay=0.5)
                after = left['orders']
            out.update(cancelled=before, still_open=after, changed=bool(before), seconds=round(time.time() - start, 3))
            if after:
                module.fail_json(msg='%d order(s) still open on %s %.1f s after cancel-all: %s' % (
                    len(after), ex.id, p['timeout'], ', '.join('%s %s' % (o['symbol'], o['id']) for o in after)), **out)
            module.exit_json(**out)
        seconds = p['dead_man_seconds'] if p['action'] == 'arm_dead_man' else 0
        targets = _exchange.dead_man_targets(ex, p, symbols)
        if module.check_mode:
            out.update(changed=bool(targets), armed=[dict(symbol=t, seconds=seconds) for t in targets])
            module.exit_json(**out)
        out['armed'] = _exchange.dead_man(ex, p, seconds, targets)
        out['changed'] = bool(out['armed'])
    except _exchange.ExchangeFailure as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), failure=exc.kind, **out)
    module.exit_json(**out)


if __name__ == '__main__':
    main()
