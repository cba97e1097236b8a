#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: position_reconcile
short_description: Reconcile the system's positions with the exchange's, by journaled adjustments only
version_added: 0.1.0
description:
  - Runbook 003 section 6 and runbook 002 procedure B. Reads the exchange's open positions through ccxt (the source
    of truth) and the system's (the newest row per instrument of a positions table in QuestDB or PostgreSQL), and
    lists every mismatch - instrument, quantity, side, average price.
  - Corrects the system only by adding - never by deleting or rewriting history - a journal row per adjustment
    (who, why, incident, approval, before, after) in O(journal_table), and the exchange's position as the newest row
    of O(table) (O(write=append)), or, for PostgreSQL tables with one row per instrument, an C(UPDATE) of that row
    journaled with its old values (O(write=update)). Then reads the system back until it agrees with the exchange.
  - Refused before anything is written - a system position in an instrument the exchange does not list (the wrong
    account, or a bad record), an instrument in O(symbols) the exchange does not list, and an adjustment whose notional
    (quantity change times mark price) exceeds O(max_adjustment_notional) without a named O(approved_by).
  - A second run finds nothing to do.
extends_documentation_fragment:
  - tradeops.dr.exchange
options:
  backend:
    description: Where the system keeps positions - QuestDB (runbook 003) or PostgreSQL (a PMS).
    type: str
    choices: [questdb, postgres]
    required: true
  table:
    description: The system's positions table; the newest row of an instrument (by O(time_column)) is its position.
    type: str
    default: positions
  instrument_column:
    description: Column with the instrument as the exchange names it (V(BTCUSDT)) or unified (V(BTC/USDT:USDT)).
    type: str
    default: instrument
  quantity_column:
    description: Column with the signed quantity (positive long, negative short).
    type: str
    default: quantity
  price_column:
    description: Column with the average entry price.
    type: str
    default: avg_price
  time_column:
    description: Timestamp column (the designated timestamp in QuestDB).
    type: str
    default: ts
  side_column:
    description: Optional column with the side (V(long), V(short), V(flat)) written with each new row.
    type: str
  journal_table:
    description: Table of adjustments, created when missing (QuestDB - a WAL table partitioned by day).
    type: str
    default: position_adjustments
  write:
    description:
      - V(append) adds the exchange's position as a new row; V(update) (PostgreSQL only) updates the instrument's one
        row in place, its old values kept in the journal, and inserts a row for an instrument the table lacks.
    type: str
    choices: [append, update]
    default: append
  symbols:
    description: Reconcile only these instruments (unified or the exchange's ids); empty - every instrument.
    type: list
    elements: str
    default: []
  quantity_tolerance:
    description: Quantities that differ by at most this much agree.
    type: float
    default: 0.0
  price_tolerance:
    description: Relative difference of average prices (0.001 = 0.1 %) under which they agree.
    type: float
    default: 0.001
  max_adjustment_notional:
    description: Largest notional (quantity change times mark price) adjusted without O(approved_by).
    type: float
    default: 10000
  approved_by:
    description: The person who approved adjustments above O(max_adjustment_notional); recorded in the journal.
    type: str
  apply:
    description: Write the adjustments (false - only list the mismatches, like check mode).
    type: bool
    default: true
  actor:
    description: Who reconciles (recorded with every adjustment). Required to write.
    type: str
  reason:
    description: Why (recorded with every adjustment). Required to write.
    type: str
  incident:
    description: The incident id (recorded with every adjustment).
    type: str
    default: ""
  settle_timeout:
    description: Seconds to wait until the system reads back the adjusted positions (QuestDB applies WAL writes
      asynchronously).
    type: float
    default: 15
  questdb_url:
    description: QuestDB's HTTP API (O(backend=questdb)).
    type: str
    default: http://127.0.0.1:9000
  questdb_user:
    description: QuestDB HTTP basic-auth user.
    type: str
  questdb_password:
    description: QuestDB HTTP basic-auth password. Never logged.
    type: str
  db:
    description: PostgreSQL database (O(backend=postgres)).
    type: str
    default: postgres
  login_host:
    description: PostgreSQL host.
    type: str
    default: 127.0.0.1
  login_port:
    description: PostgreSQL port.
    type: int
    default: 5432
  login_user:
    description: PostgreSQL user.
    type: str
    default: postgres
  login_password:
    description: PostgreSQL password (or E(PGPASSWORD)). Never logged.
    type: str
attributes:
  check_mode:
    support: full
    description: Lists the mismatches and the adjustments it would write; writes nothing.
  diff_mode:
    support: none
    description: The adjustments are returned instead.
  idempotent:
    support: full
    description: Once the system agrees with the exchange, a run changes nothing.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Reconcile QuestDB's positions with Binance futures (runbook 003, section 6)
  tradeops.dr.position_reconcile:
    exchange: binanceusdm
    api_key: "{{ vault_binance_key }}"
    api_secret: "{{ vault_binance_secret }}"
    backend: questdb
    questdb_url: http://127.0.0.1:9000
    actor: "{{ ansible_user_id }}"
    reason: positions disagree with the exchange after the strategy crash
    incident: INC-4711

- name: What would change in the PMS (PostgreSQL, one row per instrument)
  tradeops.dr.position_reconcile:
    exchange: binanceusdm
    backend: postgres
    db: pms
    write: update
    apply: false
  register: rec
'''

RETURN = r'''
mismatches:
  description: Every instrument where the system and the exchange disagree, and how.
  returned: always
  type: list
  elements: dict
  sample: [{instrument: BTCUSDT, kind: quantity, exchange_quantity: 0.5, system_quantity: 0.3, exchange_side: long,
            system_side: long, exchange_price: 60000.0, system_price: 59800.0, notional: 12000.0, needs_approval: true}]
adjustments:
  description: The adjustments written (in check mode or with O(apply=false), the ones that would be).
  returned: always
  type: list
  elements: dict
  sample: [{instrument: BTCUSDT, before_quantity: 0.3, after_quantity: 0.5, before_price: 59800.0, after_price: 60000.0,
            actor: ops, reason: after the crash, incident: INC-4711, approved_by: risk-lead, source: "exchange:binanceusdm"}]
exchange_positions:
  description: The exchange's positions as read.
  returned: always
  type: list
  elements: dict
  sample: [{symbol: "BTC/USDT:USDT", instrument: BTCUSDT, quantity: 0.5, entry_price: 60000.0}]
system_positions:
  description: The system's positions (newest row per instrument) as read before any adjustment.
  returned: always
  type: list
  elements: dict
  sample: [{instrument: BTCUSDT, quantity: 0.3, avg_price: 59800.0}]
'''

import datetime
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tradeops.dr.plugins.module_utils import _exchange, _postgres, _probe, _questdb

PG_ERRORS = (_postgres.psycopg2.Error,) if _postgres.psycopg2 else ()
_COLUMN = re.compile(r'[A-Za-z_][A-Za-z0-9_]{0,62}')


def _side(qty):
    return 'long' if qty > 0 else 'short' if qty < 0 else 'flat'


def _lit(value):
    """A QuestDB string literal (single quotes doubled)."""
    return "'%s'" % str(value).replace("'", "''")


class QuestDBPositions(object):
    def __init__(self, p):
        self.p = p
        self.client = _questdb.QuestDBClient(dict(url=p['questdb_url'], health_url=p['questdb_url'],
                                                  login_user=p['questdb_user'], login_password=p['questdb_password'],
                                                  request_timeout=p['request_timeout']))

    def read(self):
        p = self.p
        sql = 'SELECT %s AS instrument, %s AS quantity, %s AS avg_price FROM %s LATEST ON %s PARTITION BY %s' % (
            p['instrument_column'], p['quantity_column'], p['price_column'], p['table'], p['time_column'],
            p['instrument_column'])
        return dict((r['instrument'], dict(quantity=float(r['quantity'] or 0), avg_price=float(r['avg_price'] or 0)))
                    for r in self.client.rows(sql))

    def write(self, adjustments, side_column):
        p = self.p
        self.client.exec_sql(
            'CREATE TABLE IF NOT EXISTS %s (ts TIMESTAMP, instrument SYMBOL, kind SYMBOL, before_quantity DOUBLE, '
            'after_quantity DOUBLE, before_price DOUBLE, after_price DOUBLE, actor STRING, reason STRING, '
            'incident STRING, approved_by STRING, source STRING) TIMESTAMP(ts) PARTITION BY DAY WAL' % p['journal_table'])
        for a in adjustments:
            # the journal first: a position row never appears without the record of why
            self.client.exec_sql(
                'INSERT INTO %s VALUES (now(), %s, %s, %r, %r, %r, %r, %s, %s, %s, %s, %s)' % (
                    p['journal_table'], _lit(a['instrument']), _lit(a['kind']), float(a['before_quantity']),
                    float(a['after_quantity']), float(a['before_price']), float(a['after_price']), _lit(a['actor']),
                    _lit(a['reason']), _lit(a['incident']), _lit(a['approved_by'] or ''), _lit(a['source'])))
            cols = [p['instrument_column'], p['quantity_column'], p['price_column'], p['time_column']]
            vals = [_lit(a['instrument']), repr(float(a['after_quantity'])), repr(float(a['after_price'])), 'now()']
            if side_column:
                cols.append(side_column)
                vals.append(_lit(_side(a['after_quantity'])))
            self.client.exec_sql('INSERT INTO %s (%s) VALUES (%s)' % (p['table'], ', '.join(cols), ', '.join(vals)))


class PostgresPositions(object):
    def __init__(self, p):
        self.p = p
        self.conn = _postgres.Connection(p)
        self.schema, self.table = _postgres.split_table(p['table'])
        self.jschema, self.jtable = _postgres.split_table(p['journal_table'])

    def read(self):
        p = self.p

        def c(name):
            return _postgres.ident(p[name])
        sql = _postgres.sql.SQL('SELECT DISTINCT ON ({i}) {i}, {q}, {pr} FROM {t} ORDER BY {i}, {ts} DESC').format(
            i=c('instrument_column'), q=c('quantity_column'), pr=c('price_column'), ts=c('time_column'),
            t=_postgres.ident(self.schema, self.table))
        with self.conn.connect(p['db']) as conn:
            rows = _postgres.query(conn, sql)
        conn.close()
        return dict((r[0], dict(quantity=float(r[1] or 0), avg_price=float(r[2] or 0))) for r in rows)

    def write(self, adjustments, side_column):
        p = self.p
        S, ident = _postgres.sql.SQL, _postgres.ident
        conn = self.conn.connect(p['db'], autocommit=False)
        try:
            with conn.cursor() as cur:
                cur.execute(S('CREATE TABLE IF NOT EXISTS {} (ts timestamptz NOT NULL DEFAULT now(), instrument text '
                              'NOT NULL, kind text NOT NULL, before_quantity numeric, after_quantity numeric, '
                              'before_price numeric, after_price numeric, actor text NOT NULL, reason text NOT NULL, '
                              'incident text, approved_by text, source text)').format(ident(self.jschema, self.jtable)))
                for a in adjustments:
                    cur.execute(S('INSERT INTO {} (instrument, kind, before_quantity, after_quantity, before_price, '
                                  'after_price, actor, reason, incident, approved_by, source) VALUES '
                                  '(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)').format(ident(self.jschema, self.jtable)),
                                (a['instrument'], a['kind'], a['before_quantity'], a['after_quantity'],
                                 a['before_price'], a['after_price'], a['actor'], a['reason'], a['incident'],
                                 a['approved_by'], a['source']))
                    cols = [p['quantity_column'], p['price_column'], p['time_column']]
                    vals = [a['after_quantity'], a['after_price']]
                    extra = {}
                    if side_column:
                        extra[side_column] = _side(a['after_quantity'])
                    table = ident(self.schema, self.table)
                    if p['write'] == 'update':
                        sets = [S('{} = %s').format(ident(cols[0])), S('{} = %s').format(ident(cols[1])),
                                S('{} = now()').format(ident(cols[2]))] + [S('{} = %s').format(ident(k)) for k in extra]
                        cur.execute(S('UPDATE {} SET {} WHERE {} = %s').format(
                            table, S(', ').join(sets), ident(p['instrument_column'])),
                            vals + list(extra.values()) + [a['instrument']])
                        if cur.rowcount > 1:
                            raise _postgres.PostgresError(
                                'write=update found %d rows of %s in %s: the table is not one row per instrument; '
                                'nothing was written' % (cur.rowcount, a['instrument'], p['table']))
                        if cur.rowcount == 1:
                            continue
                    names = [p['instrument_column']] + cols + list(extra)
                    cur.execute(S('INSERT INTO {} ({}) VALUES (%s, %s, %s, now(){})').format(
                        table, S(', ').join(ident(n) for n in names), S(', %s' * len(extra))),
                        [a['instrument']] + vals + list(extra.values()))
            conn.commit()
        except Exception:
            conn.rollback()
            raise
        finally:
            conn.close()


def compare(ex, exchange_rows, system, p):
    """Mismatches between the exchange's positions and the system's, keyed as the system names
    instruments (the exchange's id unless the system uses unified symbols)."""
    by_id = dict((r['instrument'], r) for r in exchange_rows)
    unified_to_id = dict((s, m['id']) for s, m in ex.markets.items())
    sys_by_id = {}
    for name, row in system.items():
        mid = name if name in ex.markets_by_id else unified_to_id.get(name)
        if mid is None:
            raise _exchange.ExchangeFailure('unknown_symbol', 'the system holds a position in %s, which %s does not '
                                            'list: the wrong exchange or account, or a bad record; nothing was adjusted'
                                            % (name, ex.id))
        sys_by_id[mid] = (name, row)
    wanted = set(_exchange.market_id(ex, s) for s in p['_symbols']) if p['_symbols'] else None
    out = []
    for mid in sorted(set(by_id) | set(sys_by_id)):
        if wanted is not None and mid not in wanted:
            continue
        e = by_id.get(mid)
        name, s = sys_by_id.get(mid, (mid, None))
        eq = float(e['quantity']) if e else 0.0
        ep = float(e['entry_price'] or 0) if e else 0.0
        sq = s['quantity'] if s else 0.0
        sp = s['avg_price'] if s else 0.0
        if abs(eq - sq) > p['quantity_tolerance'] + 1e-12:
            kind = 'missing_in_system' if not s or sq == 0 else 'missing_on_exchange' if eq == 0 else 'quantity'
        elif eq != 0 and abs(ep - sp) > p['price_tolerance'] * abs(ep):
            kind = 'price'
        else:
            continue
        mark = float((e or {}).get('mark_price') or ep or sp or 0)
        notional = abs(eq - sq) * mark
        out.append(dict(instrument=name, kind=kind, exchange_quantity=eq, system_quantity=sq, exchange_side=_side(eq),
                        system_side=_side(sq), exchange_price=ep, system_price=sp, notional=round(notional, 2),
                        needs_approval=notional > p['max_adjustment_notional']))
    return out


def main():
    spec = _exchange.exchange_argument_spec()
    spec.update(
        backend=dict(type='str', required=True, choices=['questdb', 'postgres']),
        table=dict(type='str', default='positions'),
        instrument_column=dict(type='str', default='instrument'),
        quantity_column=dict(type='str', default='quantity'),
        price_column=dict(type='str', default='avg_price'),
        time_column=dict(type='str', default='ts'),
        side_column=dict(type='str'),
        journal_table=dict(type='str', default='position_adjustments'),
        write=dict(type='str', default='append', choices=['append', 'update']),
        symbols=dict(type='list', elements='str', default=[]),
        quantity_tolerance=dict(type='float', default=0.0),
        price_tolerance=dict(type='float', default=0.001),
        max_adjustment_notional=dict(type='float', default=10000),
        approved_by=dict(type='str'),
        apply=dict(type='bool', default=True),
        actor=dict(type='str'),
        reason=dict(type='str'),
        incident=dict(type='str', default=''),
        settle_timeout=dict(type='float', default=15),
        questdb_url=dict(type='str', default='http://127.0.0.1:9000'),
        questdb_user=dict(type='str'),
        questdb_password=dict(type='str', no_log=True),
        db=dict(type='str', default='postgres'),
        login_host=dict(type='str', default='127.0.0.1'),
        login_port=dict(type='int', default=5432),
        login_user=dict(type='str', default='postgres'),
        login_password=dict(type='str', no_log=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if not _exchange.HAS_CCXT:
        module.fail_json(msg=missing_required_lib('ccxt'), exception=_exchange.CCXT_IMPORT_ERROR)
    p = module.params
    for name in ('table', 'journal_table', 'instrument_column', 'quantity_column', 'price_column', 'time_column',
                 'side_column'):
        value = p[name]
        if value is None:
            continue
        parts = value.split('.') if name.endswith('table') and p['backend'] == 'postgres' else [value]
        if len(parts) > 2 or not all(_COLUMN.fullmatch(x) for x in parts):
            module.fail_json(msg='%s %r refused: a plain name (letters, digits, _) only; nothing was read' % (name, value))
    if p['write'] == 'update' and p['backend'] != 'postgres':
        module.fail_json(msg='write=update is for PostgreSQL tables with one row per instrument; QuestDB tables are '
                             'appended to (write=append)')
    writing = p['apply'] and not module.check_mode
    if writing and (not p['actor'] or not p['reason']):
        module.fail_json(msg='actor and reason are required to adjust positions (they are recorded with every '
                             'adjustment); nothing was read')
    out = dict(changed=False, mismatches=[], adjustments=[], exchange_positions=[], system_positions=[])
    try:
        ex = _exchange.connect(p)
        p['_symbols'] = _exchange.resolve_symbols(ex, p, p['symbols'])
        store = QuestDBPositions(p) if p['backend'] == 'questdb' else PostgresPositions(p)
        exchange_rows = _exchange.positions(ex, p)
        system = store.read()
        out['exchange_positions'] = exchange_rows
        out['system_positions'] = [dict(instrument=k, **v) for k, v in sorted(system.items())]
        mismatches = compare(ex, exchange_rows, system, p)
        out['mismatches'] = mismatches
        source = 'exchange:%s' % ex.id
        adjustments = [dict(instrument=m['instrument'], kind=m['kind'], before_quantity=m['system_quantity'],
                            after_quantity=m['exchange_quantity'], before_price=m['system_price'],
                            after_price=m['exchange_price'] if m['exchange_quantity'] else 0.0,
                            actor=p['actor'] or '', reason=p['reason'] or '', incident=p['incident'],
                            approved_by=p['approved_by'] if m['needs_approval'] else None, source=source)
                       for m in mismatches]
        out['adjustments'] = adjustments
        if not mismatches:
            module.exit_json(**out)
        unapproved = [m for m in mismatches if m['needs_approval']]
        if unapproved and not p['approved_by']:
            module.fail_json(msg='%d mismatch(es) exceed max_adjustment_notional %s and need a named approval '
                                 '(approved_by): %s; nothing was adjusted' % (
                                     len(unapproved), p['max_adjustment_notional'],
                                     ', '.join('%s %s -> %s (notional %s)' % (m['instrument'], m['system_quantity'],
                                                                              m['exchange_quantity'], m['notional'])
                                               for m in unapproved)), **out)
        if not writing:
            out['changed'] = True
            module.exit_json(**out)
        store.write(adjustments, p['side_column'])
        out['changed'] = True
        seen = {}

        def agrees():
            seen['left'] = compare(ex, exchange_rows, store.read(), p)
            return not seen['left'], len(seen['left'])
        _probe.wait_until(agrees, p['settle_timeout'], first_delay=0.3, max_delay=1.0)
        left = seen['left']
        if left:
            module.fail_json(msg='adjustments were journaled and written, but %s still differs from the exchange after '
                                 '%.0f s: %s' % (p['table'], p['settle_timeout'],
                                                 ', '.join(m['instrument'] for m in left)), remaining=left, **out)
        out['reconciled_at'] = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    except _exchange.ExchangeFailure as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), failure=exc.kind, **out)
    except (_questdb.QuestDBError, _questdb.QuestDBUnreachable, _postgres.PostgresError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg='the system\'s positions (%s): %s' % (p['backend'], exc), **out)
    except PG_ERRORS as exc:
        module.fail_json(exception=traceback.format_exc(), msg='the system\'s positions (postgres %s): %s; nothing was written' % (
            p['db'], str(exc).strip().splitlines()[0]), **out)
    module.exit_json(**out)


if __name__ == '__main__':
    main()
