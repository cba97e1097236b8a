#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: data_freshness
short_description: Check that data is as fresh as its business-day calendar says (files and PostgreSQL tables)
version_added: 0.1.0
description:
  - The post-recovery checks of runbook 000 scenario 5 - "Morning Pack generated with current date", "latest data
    within 1 business day", "agent signals updated" - measured in business days of a calendar (weekdays and
    holidays), so that Friday's data is fresh on a Monday morning and a holiday does not raise an alarm.
  - Each check reads one date - a file's modification time, a date in its name or content (the newest file when
    O(checks[].path) is a glob), or the newest value of a timestamp column of a PostgreSQL table - and counts the
    business days after it up to O(today). Fresh when that count is at most O(checks[].max_age).
  - Stale and missing data are results, not failures (the caller decides); a malformed check fails the module.
  - Read only (a PostgreSQL check runs one C(SELECT max(...)) in a read-only transaction).
extends_documentation_fragment:
  - tradeops.dr.postgres
options:
  checks:
    description: What must be fresh.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The check's name in the results (for example V(morning pack)).
        type: str
        required: true
      path:
        description:
          - A file, or a glob whose newest match (by the date read) counts. Give O(checks[].path) or
            O(checks[].table).
        type: path
      date_from:
        description:
          - V(mtime) - the file's modification time; V(name) - a date in the file's name; V(content) - the first date
            in the file's first 64 KiB (O(checks[].date_pattern)).
        type: str
        choices: [mtime, name, content]
        default: mtime
      date_pattern:
        description: A regular expression whose first group is the date (name and content).
        type: str
        default: '(\d{4}-\d{2}-\d{2})'
      date_format:
        description: The C(strptime) format of that group.
        type: str
        default: '%Y-%m-%d'
      database:
        description: The database of O(checks[].table).
        type: str
      table:
        description: A table (V(schema.table) or V(table)) whose newest O(checks[].column) counts.
        type: str
      column:
        description: The table's timestamp or date column.
        type: str
        default: time
      max_age:
        description:
          - Business days the data may be old - V(0) dated today (the last business day on a weekend or holiday),
            V(1) within one business day.
        type: int
        default: 1
  calendar:
    description: The business-day calendar.
    type: dict
    default: {}
    suboptions:
      weekdays:
        description: The business days of the week, V(0) Monday to V(6) Sunday.
        type: list
        elements: int
        default: [0, 1, 2, 3, 4]
      holidays:
        description: Dates (V(YYYY-MM-DD)) that are not business days.
        type: list
        elements: str
        default: []
  timezone:
    description: The IANA time zone whose calendar day counts (of O(today), file times and timestamps).
    type: str
    default: UTC
  today:
    description: The day to measure from (V(YYYY-MM-DD)); default the current day in O(timezone). For drills and tests.
    type: str
attributes:
  check_mode:
    support: full
    description: Read only; the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
  idempotent:
    support: full
    description: Read only.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: The post-recovery freshness checks of runbook 000 scenario 5
  tradeops.dr.data_freshness:
    login_host: 127.0.0.1
    login_user: tradeops
    login_password: "{{ vault_pg_password }}"
    timezone: America/New_York
    calendar:
      holidays: ["2026-12-25", "2027-01-01"]
    checks:
      - name: morning pack
        path: /srv/pms/morning_pack/morning_pack_*.pdf
        date_from: name
        max_age: 0
      - name: market data
        database: macro_trading
        table: market_data.daily_prices
        column: date
        max_age: 1
      - name: agent signals
        path: /srv/agents/signals.json
        max_age: 1
  register: freshness
'''

RETURN = r'''
checks:
  description: Every check with its result.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: market data, state: stale, date: "2026-12-02", age: 2, max_age: 1,
       evidence: "market_data.daily_prices.date: newest 2026-12-02, 2 business days old (at most 1)"}
fresh:
  description: Whether every check is fresh.
  returned: always
  type: bool
stale:
  description: The names of the checks that are stale or missing.
  returned: always
  type: list
  elements: str
today:
  description: The day measured from, and whether it is a business day.
  returned: always
  type: dict
  sample: {date: "2026-12-07", business_day: true}
'''

import datetime
import glob
import os
import re
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _postgres

try:
    from zoneinfo import ZoneInfo
except ImportError:  # pragma: no cover - Python < 3.9
    ZoneInfo = None


class Refused(Exception):
    pass


def business_days_after(day, today, weekdays, holidays):
    """The business days d with day < d <= today (0 when day is today or later)."""
    count, d = 0, day + datetime.timedelta(days=1)
    while d <= today:
        if d.weekday() in weekdays and d not in holidays:
            count += 1
        d += datetime.timedelta(days=1)
    return count


def _date_of_file(path, check, tz):
    if check['date_from'] == 'mtime':
        return datetime.datetime.fromtimestamp(os.stat(path).st_mtime, tz).date()
    if check['date_from'] == 'name':
        text = os.path.basename(path)
    else:
        with open(path, 'rb') as f:
            text = f.read(65536).decode('utf-8', 'replace')
    m = re.search(check['date_pattern'], text)
    if not m:
        return None
    try:
        return datetime.datetime.strptime(m.group(1), check['date_format']).date()
    except ValueError:
        return None


def _file_check(check, tz):
    paths = sorted(glob.glob(check['path'])) if glob.has_magic(check['path']) else (
        [check['path']] if os.path.exists(check['path']) else [])
    if not paths:
        return None, 'no file %s' % check['path']
    dated = []
    for path in paths:
        day = _date_of_file(path, check, tz)
        if day is not None:
            dated.append((day, path))
    if not dated:
        return None, '%s: no date in %s (%s)' % (check['path'], check['date_from'], check['date_pattern'])
    day, path = max(dated)
    return day, '%s (%s)' % (path, 'modified' if check['date_from'] == 'mtime' else 'dated in its ' + check['date_from'])


def _table_check(check, conn, tz):
    schema, table = _postgres.split_table(check['table'])
    column = _postgres.check_name(check['column'], 'column')
    db = conn.connect(_postgres.check_name(check['database']))
    try:
        db.set_session(readonly=True, autocommit=True)
        rows = _postgres.query(db, _postgres.sql.SQL('SELECT max({}) FROM {}').format(
            _postgres.ident(column), _postgres.ident(schema, table)))
    finally:
        db.close()
    value = rows[0][0] if rows else None
    where = '%s.%s.%s' % (schema, table, column)
    if value is None:
        return None, '%s: the table is empty' % where
    if isinstance(value, datetime.datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)).astimezone(tz).date()
    if not isinstance(value, datetime.date):
        raise Refused('%s holds %s, not a date or timestamp' % (where, type(value).__name__))
    return value, where


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                path=dict(type='path'),
                date_from=dict(type='str', choices=['mtime', 'name', 'content'], default='mtime'),
                date_pattern=dict(type='str', default=r'(\d{4}-\d{2}-\d{2})'),
                date_format=dict(type='str', default='%Y-%m-%d'),
                database=dict(type='str'),
                table=dict(type='str'),
                column=dict(type='str', default='time'),
                max_age=dict(type='int', default=1),
            ), mutually_exclusive=[('path', 'table')], required_one_of=[('path', 'table')],
                required_by={'table': 'database'}),
            calendar=dict(type='dict', default={}, options=dict(
                weekdays=dict(type='list', elements='int', default=[0, 1, 2, 3, 4]),
                holidays=dict(type='list', elements='str', default=[]),
            )),
            timezone=dict(type='str', default='UTC'),
            today=dict(type='str'),
            **_postgres.postgres_argument_spec()
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        try:
            tz = ZoneInfo(p['timezone'])
        except Exception:
            raise Refused('timezone=%r is not an IANA time zone (for example UTC, Europe/London, America/New_York)'
                          % p['timezone'])
        cal = p['calendar'] or {}
        weekdays = set(cal.get('weekdays') if cal.get('weekdays') is not None else [0, 1, 2, 3, 4])
        if not weekdays or not weekdays <= set(range(7)):
            raise Refused('calendar.weekdays=%s: business days are 0 (Monday) to 6 (Sunday), at least one'
                          % sorted(weekdays))
        try:
            holidays = set(datetime.date.fromisoformat(h) for h in cal.get('holidays') or [])
            today = datetime.date.fromisoformat(p['today']) if p['today'] else datetime.datetime.now(tz).date()
        except ValueError as e:
            raise Refused('a date of calendar.holidays or today is not YYYY-MM-DD: %s' % e)
        names = [c['name'] for c in p['checks']]
        if len(set(names)) != len(names) or not all(n.strip() for n in names):
            raise Refused('every check needs a name of its own (given: %s)' % ', '.join(names))
        for c in p['checks']:
            if c['table']:
                try:
                    _postgres.split_table(c['table'])
                    _postgres.check_name(c['column'], 'column')
                    _postgres.check_name(c['database'])
                except _postgres.PostgresError as e:
                    raise Refused('check %s: %s' % (c['name'], e))
            if c['max_age'] < 0:
                raise Refused('check %s: max_age=%d business days cannot be negative' % (c['name'], c['max_age']))
            try:
                if re.compile(c['date_pattern']).groups < 1:
                    raise Refused('check %s: date_pattern %r has no group for the date' % (c['name'], c['date_pattern']))
            except re.error as e:
                raise Refused('check %s: date_pattern %r is not a regular expression: %s' % (c['name'], c['date_pattern'], e))
        conn = _postgres.Connection(p) if any(c['table'] for c in p['checks']) else None
        results = []
        for c in p['checks']:
            if c['table']:
                try:
                    day, source = _table_check(c, conn, tz)
                except _postgres.PostgresError as e:
                    day, source = None, str(e)
            else:
                day, source = _file_check(c, tz)
            if day is None:
                results.append(dict(name=c['name'], state='missing', date=None, age=None, max_age=c['max_age'],
                                    evidence=source))
                continue
            age = business_days_after(day, today, weekdays, holidays)
            state = 'fresh' if age <= c['max_age'] else 'stale'
            results.append(dict(name=c['name'], state=state, date=day.isoformat(), age=age, max_age=c['max_age'],
                                evidence='%s: newest %s, %d business day%s old (at most %d)' % (
                                    source, day.isoformat(), age, '' if age == 1 else 's', c['max_age'])))
    except (Refused, _postgres.PostgresError) as e:
        module.fail_json(msg='%s; nothing was read' % e if isinstance(e, Refused) else str(e),
                         exception=traceback.format_exc())
    stale = [r['name'] for r in results if r['state'] != 'fresh']
    module.exit_json(changed=False, checks=results, fresh=not stale, stale=stale,
                     today=dict(date=today.isoformat(), business_day=today.weekday() in weekdays and today not in holidays))


if __name__ == '__main__':
    main()
