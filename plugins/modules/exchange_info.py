#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: exchange_info
short_description: Read an exchange through ccxt - status, positions, open orders, balance, duplicate client order ids
version_added: 0.1.0
description:
  - Read-only. The exchange is the source of truth of runbook 003 (sections 1, 3 and 6) - its status (the
    exchange's status endpoint where ccxt has one, and a public request that must answer), the open positions
    (signed quantity, side, entry and mark price, notional, unrealized P&L), the open orders, the balance, and the
    client order ids the exchange saw more than once since a moment (the duplicate orders a restart may create), and
    the last traded price of O(symbols) - the second source a mark-to-market correction is checked against.
  - A status of V(unreachable) or V(maintenance) is a finding, not a failure, when only O(gather=[status]) is asked;
    any other read of an exchange that cannot be read fails, saying why.
extends_documentation_fragment:
  - tradeops.dr.exchange
options:
  gather:
    description: What to read.
    type: list
    elements: str
    choices: [status, positions, orders, balance, duplicates, prices]
    default: [status, positions, orders]
  symbols:
    description:
      - Instruments to read, unified (V(BTC/USDT:USDT)) or as the exchange writes them (V(BTCUSDT)); empty reads every
        instrument (duplicates and prices need symbols). An instrument the exchange does not list is refused.
    type: list
    elements: str
    default: []
  since:
    description: For V(duplicates) - orders placed at or after this moment, epoch seconds.
    type: float
    default: 0
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
- name: What the exchange holds (runbook 003, section 6, step 1)
  tradeops.dr.exchange_info:
    exchange: binanceusdm
    api_key: "{{ vault_binance_key }}"
    api_secret: "{{ vault_binance_secret }}"
    gather: [status, positions, orders]
  register: venue

- name: Orders the restart may have duplicated (client order ids seen twice since the restart)
  tradeops.dr.exchange_info:
    exchange: binanceusdm
    gather: [duplicates]
    symbols: [BTCUSDT, ETHUSDT]
    since: "{{ restart_epoch }}"
  register: dup
  failed_when: dup.exchange.duplicates | length > 0
'''

RETURN = r'''
exchange:
  description: What was read.
  returned: always
  type: dict
  contains:
    id:
      description: The ccxt exchange id.
      type: str
      sample: binanceusdm
    read_at:
      description: When the exchange was read (UTC).
      type: str
      sample: "2026-11-25T18:02:11.120342Z"
    status:
      description: V(ok), V(maintenance) or V(unreachable).
      type: str
      returned: when status was gathered
      sample: ok
    status_detail:
      description: What the status endpoint and the public request answered.
      type: list
      elements: str
      returned: when status was gathered
      sample: ["status endpoint: ok", "public API answers"]
    positions:
      description: Open positions (quantity signed, positive long).
      type: list
      elements: dict
      returned: when positions were gathered
      sample: [{symbol: "BTC/USDT:USDT", instrument: BTCUSDT, side: long, quantity: 0.5, entry_price: 60000.0,
                mark_price: 60100.0, notional: 30050.0, unrealized_pnl: 50.0}]
    open_orders:
      description: Open orders.
      type: list
      elements: dict
      returned: when orders were gathered
      sample: [{id: "1002", client_order_id: "momentum-7", symbol: "BTC/USDT:USDT", side: buy, type: limit,
                amount: 0.1, price: 50000.0, timestamp: 1795628912337}]
    balance:
      description: Total balance per asset (non-zero only).
      type: dict
      returned: when balance was gathered
      sample: {USDT: 100000.0}
    duplicates:
      description: Client order ids seen more than once since O(since), with the exchange's order ids.
      type: list
      elements: dict
      returned: when duplicates were gathered
      sample: [{symbol: "BTC/USDT:USDT", client_order_id: "momentum-7", order_ids: ["1002", "1009"]}]
    prices:
      description: The last traded price of each of O(symbols), keyed as O(symbols) names them.
      type: dict
      returned: when prices were gathered
      sample: {BTCUSDT: 61000.0}
'''

import datetime
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tradeops.dr.plugins.module_utils import _exchange


def main():
    spec = _exchange.exchange_argument_spec()
    spec.update(
        gather=dict(type='list', elements='str', default=['status', 'positions', 'orders'],
                    choices=['status', 'positions', 'orders', 'balance', 'duplicates', 'prices']),
        symbols=dict(type='list', elements='str', default=[]),
        since=dict(type='float', default=0),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if not _exchange.HAS_CCXT:
        module.fail_json(msg=missing_required_lib('ccxt'), exception=_exchange.CCXT_IMPORT_ERROR)
    p = module.params
    gather = set(p['gather'])
    for needs in sorted(gather & set(['duplicates', 'prices'])):
        if not p['symbols']:
            module.fail_json(msg='gather=%s needs symbols (the exchange %s per instrument)' % (
                needs, 'lists orders' if needs == 'duplicates' else 'gives a price'))
    result = dict(id=p['exchange'], read_at=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ'))
    try:
        ex = _exchange.connect(p)
        if 'status' in gather:
            st = _exchange.status(ex, p)
            result.update(status=st['status'], status_detail=st['detail'])
            if gather == {'status'}:
                module.exit_json(changed=False, exchange=result)
        symbols = _exchange.resolve_symbols(ex, p, p['symbols'])
        if 'positions' in gather:
            result['positions'] = _exchange.positions(ex, p, symbols)
        if 'orders' in gather:
            result['open_orders'] = _exchange.open_orders(ex, p, symbols)
        if 'balance' in gather:
            result['balance'] = _exchange.balance(ex, p)
        if 'duplicates' in gather:
            result['duplicates'] = _exchange.duplicate_client_ids(ex, p, symbols, p['since'] * 1000)
        if 'prices' in gather:
            last = _exchange.last_prices(ex, p, symbols)
            result['prices'] = dict((name, last[symbol]) for name, symbol in zip(p['symbols'], symbols))
    except _exchange.ExchangeFailure as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), failure=exc.kind, exchange=result)
    module.exit_json(changed=False, exchange=result)


if __name__ == '__main__':
    main()
