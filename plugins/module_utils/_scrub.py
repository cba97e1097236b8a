# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Text fit for a result, a log or an artifact: no credential, no signed query string, no password in a
URL, no bearer token. Apart from _exchange (which imports ccxt, a third of a second per module run) so that a
module that only shows an application's log lines (strategy_health) does not load an exchange library."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_QUERY = re.compile(r'\?\S*')


def scrub(text, params=None):
    """A message fit for a log: no query string (it holds signatures), no credential."""
    text = _QUERY.sub('?...', str(text))
    for key in ('api_key', 'api_secret', 'api_password'):
        value = (params or {}).get(key)
        if value and len(value) >= 4:
            text = text.replace(value, '********')
    return text[:600]


_USERINFO = re.compile(r'(://[^/\s:@]+:)[^@\s/]+@')
_SECRET_FIELD = re.compile(r'(?i)((?:api[_-]?key|api[_-]?secret|secret|password|passwd|pwd|token|signature|'
                           r'authorization)["\']?\s*[=:]\s*["\']?)([^\s"\',;&]+)')
_BEARER = re.compile(r'(?i)(bearer\s+)\S+')


def scrub_log_line(line, params=None):
    """A line of an application's log fit for a result or an artifact: no query string, no password in a
    URL, no value of a field named like a secret (key, secret, password, token, signature), no bearer token."""
    text = _USERINFO.sub(r'\1********@', str(line))
    text = _BEARER.sub(r'\1********', text)
    text = _SECRET_FIELD.sub(r'\1********', text)
    return scrub(text, params)
