# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Exchanges through ccxt (one API over Binance, Bybit, OKX, Kraken, ...): the connection
options, errors sorted into what an operator acts on (unreachable, down for maintenance,
credentials refused, rate limited, unknown instrument), positions and open orders in one
shape, cancel-all with evidence, the exchange's dead-man's switch, and client order ids seen
twice. Messages never carry the credentials or a signed query string."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible.module_utils.basic import env_fallback
from ansible_collections.tradeops.dr.plugins.module_utils._scrub import scrub

try:
    import ccxt
    HAS_CCXT = True
    CCXT_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the node
    ccxt = None
    HAS_CCXT = False
    CCXT_IMPORT_ERROR = str(_exc)

# The family whose dead-man's switch is Binance's countdownCancelAll (per symbol); others use
# ccxt's unified cancelAllOrdersAfter where the exchange has one.
_BINANCE_FUTURES = ('binanceusdm', 'binancecoinm', 'binance')
# Venues whose cancel-all takes no instrument: ccxt's cancelAllOrders(symbol) cancels every open order of the
# account there (Kraken's CancelAll), so a cancel-all limited to some symbols cancels their orders one by one.
_CANCEL_ALL_IS_ACCOUNT_WIDE = ('kraken',)
# Refused credentials that ccxt 4.5 raises as a plain ExchangeError: Kraken's wrong secret ("EAPI:Invalid
# signature"; its wrong key, "EAPI:Invalid key", is an AuthenticationError already).
_UNMAPPED_AUTH = {'kraken': ('EAPI:Invalid signature',)}
_URL_HOST = re.compile(r'^https?://[^/]+')


class ExchangeFailure(Exception):
    """kind: unreachable | maintenance | auth | rate_limited | unknown_symbol | bad_request |
    unsupported | config | error."""

    def __init__(self, kind, message):
        self.kind = kind
        super(ExchangeFailure, self).__init__(message)


def exchange_argument_spec():
    """Options of every exchange module (doc fragment tradeops.dr.exchange)."""
    return dict(
        exchange=dict(type='str', required=True),
        api_key=dict(type='str', no_log=True, fallback=(env_fallback, ['EXCHANGE_API_KEY'])),
        api_secret=dict(type='str', no_log=True, fallback=(env_fallback, ['EXCHANGE_API_SECRET'])),
        api_password=dict(type='str', no_log=True, fallback=(env_fallback, ['EXCHANGE_API_PASSWORD'])),
        api_base=dict(type='str'),
        sandbox=dict(type='bool', default=False),
        request_timeout=dict(type='float', default=10.0),
        retries=dict(type='int', default=3),
        exchange_options=dict(type='dict', default={}),
    )


def _repoint(urls, base):
    """Every API URL of the exchange with its scheme and host replaced by base (a gateway, a
    proxy, or a stand-in), paths kept."""
    if isinstance(urls, dict):
        return dict((k, _repoint(v, base)) for k, v in urls.items())
    if isinstance(urls, str):
        return _URL_HOST.sub(base.rstrip('/'), urls)
    return urls


def connect(params):
    """A ccxt exchange from the module's options (not yet contacted)."""
    if not HAS_CCXT:
        raise ExchangeFailure('config', 'the ccxt library is required on the host that runs this module: %s'
                              % CCXT_IMPORT_ERROR)
    name = params['exchange']
    cls = getattr(ccxt, name, None) if name in getattr(ccxt, 'exchanges', []) else None
    if cls is None:
        raise ExchangeFailure('config', 'unknown exchange %r: ccxt knows %d exchanges (for example binanceusdm, '
                              'bybit, okx, krakenfutures); nothing was sent' % (name, len(ccxt.exchanges)))
    options = dict(params.get('exchange_options') or {})
    if name in _BINANCE_FUTURES:
        # open orders across every symbol are what a recovery wants to see
        options.setdefault('warnOnFetchOpenOrdersWithoutSymbol', False)
        # the currencies list is a wallet (sapi) call that a futures-only key may not be allowed
        options.setdefault('fetchCurrencies', False)
    # ccxt's client-side throttle charges the weight of a call before sending it (openOrders across every
    # symbol: 2 s on Binance): a recovery's few requests go at once, and a 429 is retried with back-off
    config = dict(enableRateLimit=False, timeout=int(float(params.get('request_timeout') or 10) * 1000),
                  options=options)
    for ours, theirs in (('api_key', 'apiKey'), ('api_secret', 'secret'), ('api_password', 'password')):
        if params.get(ours):
            config[theirs] = params[ours]
    ex = cls(config)
    if params.get('sandbox'):
        ex.set_sandbox_mode(True)
    if params.get('api_base'):
        ex.urls['api'] = _repoint(ex.urls['api'], params['api_base'])
    return ex


def _refused_credentials(where, exc, params):
    return ExchangeFailure('auth', '%s: the exchange refused the credentials (%s); check api_key/api_secret and the '
                           'key\'s permissions; nothing was changed' % (where, scrub(exc, params)))


def call(ex, params, method, *args, **kwargs):
    """ex.<method>(...) with rate limits and time-outs retried (bounded), and every ccxt error
    turned into an ExchangeFailure whose kind says what to do."""
    retries = int(params.get('retries') if params.get('retries') is not None else 3)
    delay = 0.5
    where = '%s %s' % (ex.id, method)
    for attempt in range(retries + 1):
        try:
            return getattr(ex, method)(*args, **kwargs)
        except ccxt.AuthenticationError as exc:
            raise _refused_credentials(where, exc, params)
        except ccxt.BadSymbol as exc:
            raise ExchangeFailure('unknown_symbol', '%s: unknown instrument: %s' % (where, scrub(exc, params)))
        except ccxt.OnMaintenance as exc:
            raise ExchangeFailure('maintenance', '%s: the exchange is in maintenance: %s' % (where, scrub(exc, params)))
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.RequestTimeout) as exc:
            kind = 'rate_limited' if not isinstance(exc, ccxt.RequestTimeout) else 'unreachable'
            if attempt >= retries:
                raise ExchangeFailure(kind, '%s: %s after %d attempts: %s' % (
                    where, 'rate limited' if kind == 'rate_limited' else 'timed out', attempt + 1, scrub(exc, params)))
            time.sleep(delay)
            delay = min(delay * 2, 8)
        except ccxt.ExchangeNotAvailable as exc:
            raise ExchangeFailure('unreachable', '%s: the exchange does not answer or is unavailable: %s'
                                  % (where, scrub(exc, params)))
        except (ccxt.NetworkError, ccxt.OperationFailed) as exc:
            # a network error, or the venue overloaded (Binance futures -1008 SERVER_BUSY on its real hosts, which
            # ccxt raises as OperationFailed): retried, then unreachable
            if attempt >= retries:
                why = 'cannot reach the exchange' if isinstance(exc, ccxt.NetworkError) else 'the exchange is overloaded'
                raise ExchangeFailure('unreachable', '%s: %s after %d attempts: %s'
                                      % (where, why, attempt + 1, scrub(exc, params)))
            time.sleep(delay)
            delay = min(delay * 2, 8)
        except (ccxt.BadRequest, ccxt.InvalidOrder, ccxt.ArgumentsRequired) as exc:
            raise ExchangeFailure('bad_request', '%s: the exchange refused the request: %s' % (where, scrub(exc, params)))
        except ccxt.NotSupported as exc:
            raise ExchangeFailure('unsupported', '%s: %s' % (where, scrub(exc, params)))
        except ccxt.BaseError as exc:
            if isinstance(exc, ccxt.ExchangeError) and any(t in str(exc) for t in _UNMAPPED_AUTH.get(ex.id, ())):
                raise _refused_credentials(where, exc, params)
            raise ExchangeFailure('error', '%s: %s' % (where, scrub(exc, params)))
    raise ExchangeFailure('error', where)  # pragma: no cover - the loop returns or raises


def status(ex, params):
    """{'status': ok | maintenance | unreachable, 'detail'}: the exchange's own status where ccxt
    has one, and a public request that must answer either way."""
    detail = []
    state = 'ok'
    if ex.has.get('fetchStatus'):
        try:
            st = call(ex, dict(params, retries=1), 'fetch_status')
            detail.append('status endpoint: %s' % st.get('status'))
            if st.get('status') not in ('ok', None):
                state = 'maintenance'
        except ExchangeFailure as exc:
            detail.append(str(exc))
            state = 'maintenance' if exc.kind == 'maintenance' else 'unreachable'
    try:
        call(ex, dict(params, retries=1), 'fetch_time')
        detail.append('public API answers')
    except ExchangeFailure as exc:
        detail.append(str(exc))
        if state == 'ok':
            state = 'maintenance' if exc.kind == 'maintenance' else 'unreachable'
    return dict(status=state, detail=detail)


def markets(ex, params):
    if not ex.markets:
        call(ex, params, 'load_markets')
    return ex.markets


def resolve_symbols(ex, params, names):
    """Unified symbols for names given either way (BTC/USDT:USDT or the exchange's BTCUSDT, or a Kraken pair's
    short name, XBTUSD); an unknown name is refused, naming it."""
    mk = markets(ex, params)
    by_id = dict((m['id'], s) for s, m in mk.items() if m.get('id'))
    # Kraken's pairs have a short name beside their id (XBTUSD for XXBTZUSD), the one its own screens show
    by_id.update((m['altname'], s) for s, m in mk.items() if m.get('altname') and m['altname'] not in by_id)
    out, unknown = [], []
    for name in names or []:
        if name in mk:
            out.append(name)
        elif name in by_id:
            out.append(by_id[name])
        else:
            unknown.append(name)
    if unknown:
        raise ExchangeFailure('unknown_symbol', '%s does not list %s; nothing was sent' % (ex.id, ', '.join(unknown)))
    return out


def market_id(ex, symbol):
    return ex.markets[symbol]['id'] if ex.markets and symbol in ex.markets else symbol


def positions(ex, params, symbols=None):
    """Open positions: symbol (unified), instrument (the exchange's id), quantity (signed:
    positive long, negative short), side, entry price, mark price, notional, unrealized P&L."""
    markets(ex, params)
    rows = call(ex, params, 'fetch_positions', symbols or None)
    out = []
    for p in rows:
        contracts = float(p.get('contracts') or 0) * float(p.get('contractSize') or 1)
        if not contracts:
            continue
        sign = -1 if p.get('side') == 'short' else 1
        out.append(dict(symbol=p['symbol'], instrument=market_id(ex, p['symbol']), side=p.get('side'),
                        quantity=sign * contracts, entry_price=p.get('entryPrice'), mark_price=p.get('markPrice'),
                        notional=abs(float(p.get('notional') or 0)), unrealized_pnl=p.get('unrealizedPnl')))
    return sorted(out, key=lambda r: r['symbol'])


def open_orders(ex, params, symbols=None):
    markets(ex, params)
    rows = []
    for symbol in symbols or [None]:
        rows.extend(call(ex, params, 'fetch_open_orders', symbol))
    return [dict(id=o.get('id'), client_order_id=o.get('clientOrderId'), symbol=o.get('symbol'), side=o.get('side'),
                 type=o.get('type'), amount=o.get('amount'), price=o.get('price'), timestamp=o.get('timestamp'))
            for o in rows]


def last_prices(ex, params, symbols):
    """{symbol: last traded price} of symbols (unified), read from the exchange: its last-price endpoint where ccxt
    has one (Binance's ticker/price), else its tickers. An instrument the exchange gives no price for is refused,
    naming it - a second source that says nothing must not count as agreeing."""
    markets(ex, params)
    if ex.has.get('fetchLastPrices'):
        rows = call(ex, params, 'fetch_last_prices', list(symbols))
        got = dict((s, (rows.get(s) or {}).get('price')) for s in symbols)
    else:
        rows = call(ex, params, 'fetch_tickers', list(symbols))
        got = dict((s, (rows.get(s) or {}).get('last')) for s in symbols)
    missing = sorted(s for s, v in got.items() if v is None)
    if missing:
        raise ExchangeFailure('unknown_symbol', '%s gave no last price for %s' % (ex.id, ', '.join(missing)))
    return dict((s, float(v)) for s, v in got.items())


def balance(ex, params):
    b = call(ex, params, 'fetch_balance')
    return dict((k, v) for k, v in (b.get('total') or {}).items() if v)


def cancel_all(ex, params, symbols=None):
    """Cancel every open order (of symbols, or every symbol that has one); returns (cancelled
    orders as seen before, orders still open after)."""
    before = open_orders(ex, params, symbols)
    if ex.id in _CANCEL_ALL_IS_ACCOUNT_WIDE:
        if symbols:  # the venue's cancel-all would cancel the other instruments' orders too
            for order in before:
                call(ex, params, 'cancel_order', order['id'], order['symbol'])
        elif before:
            call(ex, params, 'cancel_all_orders')
    else:
        for symbol in sorted(set(o['symbol'] for o in before)):
            call(ex, params, 'cancel_all_orders', symbol)
    after = open_orders(ex, params, symbols)
    return before, after


def dead_man_targets(ex, params, symbols):
    """What a dead-man's switch would cover: symbols for Binance futures (per-symbol timers;
    without symbols, every symbol with an open order or a position), ['*'] for exchanges with an
    account-wide timer. An exchange without one is refused."""
    if ex.id in _BINANCE_FUTURES and hasattr(ex, 'fapiPrivatePostCountdownCancelAll'):
        if symbols:
            return list(symbols)
        return sorted(set(o['symbol'] for o in open_orders(ex, params)) |
                      set(r['symbol'] for r in positions(ex, params)))
    if ex.has.get('cancelAllOrdersAfter'):
        return ['*']
    raise ExchangeFailure('unsupported', '%s has no dead-man\'s switch that ccxt can arm (cancelAllOrdersAfter); '
                          'nothing was sent' % ex.id)


def dead_man(ex, params, seconds, targets):
    """Arm (seconds > 0) or disarm (0) the exchange's cancel-all-after timer for the targets of
    dead_man_targets. Returns [{'symbol', 'seconds'}]."""
    ms = int(seconds * 1000)
    if targets == ['*']:
        call(ex, params, 'cancel_all_orders_after', ms)
    else:
        for symbol in targets:
            call(ex, params, 'fapiPrivatePostCountdownCancelAll', {'symbol': market_id(ex, symbol), 'countdownTime': ms})
    return [dict(symbol=t, seconds=seconds) for t in targets]


def duplicate_client_ids(ex, params, symbols, since_ms):
    """Client order ids the exchange saw more than once since since_ms, per symbol."""
    dups = []
    for symbol in symbols:
        seen = {}
        for o in call(ex, params, 'fetch_orders', symbol, int(since_ms)):
            cid = o.get('clientOrderId')
            if cid:
                seen.setdefault(cid, []).append(o.get('id'))
        dups.extend(dict(symbol=symbol, client_order_id=cid, order_ids=ids) for cid, ids in sorted(seen.items())
                    if len(ids) > 1)
    return dups
