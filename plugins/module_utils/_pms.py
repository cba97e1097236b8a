# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""The portfolio management system (PMS) of runbook 000, as its book corrections use it: its REST API
(GET/POST /api/v1/pms/book/positions..., /api/v1/pms/book/mtm, /api/v1/pms/journal, GET /health), the
P&L arithmetic a correction is verified against (the approval code of its plan: _approval).

The API is the users' own application; what this layer relies on is what runbook 000 scenarios 3 and 4
name: a position has id, instrument, direction (LONG/SHORT), size, entry_price, current_price,
unrealized_pnl, realized_pnl, status (OPEN/CLOSED); a journal entry has entry_type, content,
related_position_id and a metadata object. Errors are answered as HTTP statuses with a JSON body
({"detail": ...}); a token, when the PMS needs one, goes in an Authorization header and is never part of
an error message."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.urls import open_url

try:
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlencode
except ImportError:  # pragma: no cover - Python 2 is not supported
    pass

TOOL = 'tradeops.dr'
DIRECTIONS = ('LONG', 'SHORT')


def pms_argument_spec(**extra):
    """The options of the doc fragment tradeops.dr.pms (the PMS, the incident, who corrects, the approval), and the
    module's own."""
    spec = dict(
        url=dict(type='str', required=True),
        token=dict(type='str', no_log=True, fallback=(env_fallback, ['PMS_API_TOKEN'])),
        timeout=dict(type='float', default=10),
        validate_certs=dict(type='bool', default=True),
        incident=dict(type='str', required=True),
        actor=dict(type='str', required=True),
        approval=dict(type='str'),
    )
    spec.update(extra)
    return spec


def connect(module, required):
    """The PMS client of a module whose `required` options are not blank (refused before anything is read)."""
    p = module.params
    for name in required:
        if not str(p[name] or '').strip():
            module.fail_json(msg='%s is empty: a correction names its %s; nothing was read'
                                 % (name, ', '.join(required)))
    return Pms(p['url'], p['token'], p['timeout'], p['validate_certs'])


class PmsError(Exception):
    """The PMS could not be reached, or answered with an error (status and detail kept for the message)."""

    def __init__(self, message, status=None, detail=None):
        super(PmsError, self).__init__(message)
        self.status = status
        self.detail = detail


class Pms(object):
    """A client of one PMS: JSON in and out, every error a PmsError that names the request, never the token."""

    def __init__(self, url, token=None, timeout=10.0, validate_certs=True):
        if not url or not str(url).startswith(('http://', 'https://')):
            raise PmsError('url=%r is not an http(s) URL of the PMS (e.g. http://127.0.0.1:8000)' % (url,))
        self.url = str(url).rstrip('/')
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.headers = {'Accept': 'application/json', 'Content-Type': 'application/json'}
        if token:
            self.headers['Authorization'] = 'Bearer %s' % token

    def call(self, method, path, body=None, query=None):
        url = self.url + path + ('?' + urlencode(query) if query else '')
        what = '%s %s' % (method, path)
        try:
            resp = open_url(url, method=method, headers=self.headers, timeout=self.timeout,
                            data=None if body is None else json.dumps(body), validate_certs=self.validate_certs,
                            follow_redirects='safe')
            raw = resp.read()
        except HTTPError as exc:
            detail = _detail(exc.read() if exc.fp else b'')
            raise PmsError('the PMS answered %s with HTTP %s: %s' % (what, exc.code, detail), exc.code, detail)
        except (URLError, OSError, ValueError) as exc:
            raise PmsError('the PMS at %s did not answer %s: %s' % (self.url, what, getattr(exc, 'reason', exc)))
        try:
            return json.loads(raw.decode('utf-8')) if raw else {}
        except ValueError:
            raise PmsError('the PMS answered %s with something that is not JSON: %r' % (what, raw[:200]))

    def health(self):
        return self.call('GET', '/health')

    def positions(self, status=None):
        answer = self.call('GET', '/api/v1/pms/book/positions', query={'status': status} if status else None)
        return answer.get('positions', answer) if isinstance(answer, dict) else answer

    def position(self, position_id):
        """The position, or None when the PMS does not know it (HTTP 404)."""
        try:
            return self.call('GET', '/api/v1/pms/book/positions/%s' % position_id)
        except PmsError as exc:
            if exc.status == 404:
                return None
            raise

    def close(self, position_id, exit_price, notes):
        return self.call('POST', '/api/v1/pms/book/positions/%s/close' % position_id,
                         {'exit_price': exit_price, 'notes': notes})

    def open(self, instrument, size, direction, entry_price, notes):
        return self.call('POST', '/api/v1/pms/book/positions/open',
                         {'instrument': instrument, 'size': size, 'direction': direction,
                          'entry_price': entry_price, 'notes': notes})

    def mtm(self, manual_prices):
        return self.call('POST', '/api/v1/pms/book/mtm', {'manual_prices': manual_prices})

    def journal(self, entry_type=None, related_position_id=None):
        query = dict((k, v) for k, v in (('entry_type', entry_type), ('related_position_id', related_position_id))
                     if v is not None)
        answer = self.call('GET', '/api/v1/pms/journal', query=query or None)
        return answer.get('entries', answer) if isinstance(answer, dict) else answer

    def post_journal(self, entry_type, content, related_position_id=None, metadata=None):
        body = {'entry_type': entry_type, 'content': content, 'metadata': dict(metadata or {}, tool=TOOL)}
        if related_position_id is not None:
            body['related_position_id'] = related_position_id
        return self.call('POST', '/api/v1/pms/journal', body)


def _detail(raw):
    try:
        body = json.loads(raw.decode('utf-8'))
    except (ValueError, UnicodeDecodeError, AttributeError):
        return (raw or b'')[:200].decode('utf-8', 'replace') or 'no detail'
    detail = body.get('detail', body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # a validation error: [{loc, msg, type}]
        return '; '.join('%s: %s' % ('.'.join(str(p) for p in d.get('loc', [])), d.get('msg', ''))
                         if isinstance(d, dict) else str(d) for d in detail)
    return str(detail)


def number(value):
    return float(value) if value is not None else None


def fmt(value):
    """A price or size as a person writes it: 50000, 0.25 (no float noise, no trailing zeros)."""
    return ('%.10f' % float(value)).rstrip('0').rstrip('.')


def sign(direction):
    direction = str(direction or '').upper()
    if direction not in DIRECTIONS:
        raise PmsError('direction %r is neither LONG nor SHORT' % (direction,))
    return 1.0 if direction == 'LONG' else -1.0


def unrealized(position, price=None):
    """quantity x (price - entry), signed by direction: the runbook's manual calculation."""
    price = number(position.get('current_price') if price is None else price)
    if price is None:
        return 0.0
    return sign(position['direction']) * number(position['size']) * (price - number(position['entry_price']))


def book_pnl(positions):
    """{realized, unrealized, total} of a book as the PMS reports it (closed positions carry no unrealized)."""
    realized = sum(number(p.get('realized_pnl')) or 0.0 for p in positions)
    open_unrealized = sum(number(p.get('unrealized_pnl')) or 0.0 for p in positions if p.get('status') == 'OPEN')
    return dict(realized=round(realized, 8), unrealized=round(open_unrealized, 8),
                total=round(realized + open_unrealized, 8))
