# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""QuestDB over its HTTP API: SQL through /exec (JSON), the health port, and the answers of
QuestDB 8.1.2 parsed exactly as recorded (wal_tables(), checkpoint_status(), build(), 400
error bodies with error and position)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import re

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.parse import quote_plus
from ansible.module_utils.urls import open_url

try:
    from urllib.error import HTTPError, URLError
except ImportError:  # pragma: no cover - Python 2 is not supported
    pass

# Table names go into SQL unquoted, as QuestDB's own examples write them: allow only plain names.
_TABLE = re.compile(r'[A-Za-z_][A-Za-z0-9_]{0,126}')
# 'Build Information: QuestDB 8.1.2, JDK ...' (release) or 'questdb 8.1.2-SNAPSHOT' (a dev build)
_VERSION = re.compile(r'questdb (\d+)\.(\d+)\.(\d+)', re.IGNORECASE)


class QuestDBError(Exception):
    """QuestDB answered with an error (HTTP 400 JSON: error and position)."""

    def __init__(self, sql, error, position=None, status=400):
        self.sql, self.error, self.position, self.status = sql, error, position, status
        where = ' at position %s' % position if position is not None else ''
        super(QuestDBError, self).__init__('QuestDB rejected `%s`: %s%s (HTTP %s)' % (sql, error, where, status))


class QuestDBUnreachable(Exception):
    """Nothing answered (refused, time-out)."""


def questdb_common_argument_spec():
    """Connection options of every QuestDB module (doc fragment tradeops.dr.questdb)."""
    return dict(
        url=dict(type='str', default='http://127.0.0.1:9000', fallback=(env_fallback, ['QUESTDB_URL'])),
        health_url=dict(type='str', default='http://127.0.0.1:9003', fallback=(env_fallback, ['QUESTDB_HEALTH_URL'])),
        login_user=dict(type='str', fallback=(env_fallback, ['QUESTDB_USER'])),
        login_password=dict(type='str', no_log=True, fallback=(env_fallback, ['QUESTDB_PASSWORD'])),
        request_timeout=dict(type='float', default=10.0),
        validate_certs=dict(type='bool', default=True),
    )


def check_table(name):
    if not isinstance(name, str) or not _TABLE.fullmatch(name):
        raise ValueError('table name %r is refused: only letters, digits and _ (starting with a letter or _)' % (name,))
    return name


class QuestDBClient(object):
    def __init__(self, params):
        self.url = params['url'].rstrip('/')
        self.health_url = params['health_url'].rstrip('/')
        self.timeout = params.get('request_timeout') or 10.0
        self.validate_certs = params.get('validate_certs', True)
        self.headers = {}
        if params.get('login_user'):
            token = '%s:%s' % (params['login_user'], params.get('login_password') or '')
            self.headers['Authorization'] = 'Basic ' + base64.b64encode(token.encode()).decode()

    def _get(self, url):
        try:
            resp = open_url(url, method='GET', headers=self.headers, timeout=self.timeout,
                            validate_certs=self.validate_certs)
            return resp.getcode(), resp.read().decode('utf-8', 'replace')
        except HTTPError as exc:
            return exc.code, exc.read().decode('utf-8', 'replace')
        except (URLError, OSError) as exc:
            raise QuestDBUnreachable('cannot reach QuestDB at %s: %s' % (url.split('?')[0], getattr(exc, 'reason', exc)))

    def exec_sql(self, sql):
        """Run one statement. Returns the decoded JSON (query results, or {'ddl': 'OK'})."""
        status, body = self._get('%s/exec?query=%s' % (self.url, quote_plus(sql)))
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            raise QuestDBError(sql, 'non-JSON answer: %s' % body[:200], status=status)
        if status != 200 or 'error' in data:
            raise QuestDBError(sql, data.get('error', body[:200]), data.get('position'), status)
        return data

    def rows(self, sql):
        data = self.exec_sql(sql)
        names = [c['name'] for c in data.get('columns', [])]
        return [dict(zip(names, row)) for row in data.get('dataset', [])]

    def health(self):
        """(ok, detail) of the health port (min HTTP server, 'Status: Healthy')."""
        try:
            status, body = self._get(self.health_url + '/')
        except QuestDBUnreachable as exc:
            return False, str(exc)
        return status == 200 and 'Healthy' in body, '%s: HTTP %s %s' % (self.health_url, status, body.strip()[:80])

    def version(self):
        """(major, minor, patch) from select build()."""
        return parse_build(self.rows('select build()')[0]['build'])

    def wal_tables(self):
        return self.rows('select * from wal_tables()')

    def checkpoint_status(self):
        row = self.rows('select * from checkpoint_status()')[0]
        return dict(in_progress=bool(row.get('in_progress')), started_at=row.get('started_at'))

    def count(self, table):
        return int(self.rows('select count() from %s' % check_table(table))[0]['count'])

    def newest(self, table, column):
        return self.rows('select max(%s) from %s' % (check_table(column), check_table(table)))[0]['max']


def parse_build(text):
    """(major, minor, patch) from the text of select build()."""
    match = _VERSION.search(text or '')
    if not match:
        raise QuestDBError('select build()', 'cannot read a version from %r' % text, status=200)
    return tuple(int(x) for x in match.groups())


def wal_problems(tables):
    """Tables that are suspended or whose writer lags the sequencer."""
    out = []
    for t in tables:
        lag = int(t.get('sequencerTxn') or 0) - int(t.get('writerTxn') or 0)
        if t.get('suspended') or lag > 0:
            out.append(dict(name=t['name'], suspended=bool(t.get('suspended')), writerTxn=t.get('writerTxn'),
                            sequencerTxn=t.get('sequencerTxn'), lag=lag, errorTag=t.get('errorTag') or '',
                            errorMessage=t.get('errorMessage') or ''))
    return out
