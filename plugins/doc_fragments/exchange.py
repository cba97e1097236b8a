# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Exchange options shared by every module that talks to an exchange through ccxt.
    DOCUMENTATION = r'''
options:
  exchange:
    description:
      - The exchange as ccxt names it, for example V(binanceusdm) (Binance USD-M futures), V(bybit), V(okx),
        V(krakenfutures). An unknown name is refused before anything is sent.
    type: str
    required: true
  api_key:
    description:
      - API key. Never logged, never part of a message or a record.
      - Falls back to the environment variable E(EXCHANGE_API_KEY); keep it in Ansible Vault.
    type: str
  api_secret:
    description:
      - API secret. Never logged, never part of a message or a record.
      - Falls back to the environment variable E(EXCHANGE_API_SECRET).
    type: str
  api_password:
    description:
      - API passphrase, for exchanges that have one (OKX, KuCoin). Never logged.
      - Falls back to the environment variable E(EXCHANGE_API_PASSWORD).
    type: str
  api_base:
    description:
      - Send every API request to this scheme and host instead of the exchange's own, keeping each path
        (for example an exchange gateway or proxy in the trading network, or a stand-in exchange in tests).
      - For an exchange's own test network use O(sandbox) instead.
    type: str
  sandbox:
    description: Use the exchange's test network (ccxt's sandbox mode), where the exchange has one.
    type: bool
    default: false
  request_timeout:
    description: Seconds one request may take.
    type: float
    default: 10.0
  retries:
    description:
      - How many times a request that was rate limited, timed out or could not connect is sent again (with
        exponential back-off from 0.5 s, at most 8 s between attempts). Refused credentials, unknown instruments
        and maintenance are never retried.
      - ccxt's client-side throttle is off (it charges a call's weight before sending it - 2 s for Binance's open
        orders across every symbol); the exchange's own rate-limit answers (HTTP 429) are what is retried.
    type: int
    default: 3
  exchange_options:
    description: Options given to the ccxt exchange as they are (C(options) of its constructor).
    type: dict
    default: {}
requirements:
  - ccxt >= 4.4 on the host that runs the module
notes:
  - The exchange is the source of truth for positions and orders.
  - Failures say what kind of failure it is (credentials refused, exchange unreachable, maintenance, rate limited,
    unknown instrument); messages never carry a credential or a signed query string.
'''
