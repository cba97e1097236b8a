# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Validation of configuration files before they are put in place (runbooks 001 and 002):
TOML, YAML or JSON by extension, parsed, with required top-level sections present (runbook
002 checks trading, risk and live in config.toml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with Ansible
    yaml = None

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

FORMATS = {'.toml': 'toml', '.yaml': 'yaml', '.yml': 'yaml', '.json': 'json'}


def detect_format(path):
    return FORMATS.get(os.path.splitext(path)[1].lower())


def parse(content, fmt):
    """The parsed document; ValueError with the parser's message when it does not parse."""
    text = content.decode('utf-8') if isinstance(content, bytes) else content
    if fmt == 'toml':
        if tomllib is None:
            raise ValueError('TOML needs Python 3.11 (tomllib) on the managed host')
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError('not valid TOML: %s' % exc)
    if fmt == 'yaml':
        if yaml is None:
            raise ValueError('YAML needs PyYAML on the managed host')
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError('not valid YAML: %s' % str(exc).replace('\n', ' '))
    if fmt == 'json':
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError('not valid JSON: %s' % exc)
    raise ValueError('unknown format %r (toml, yaml or json)' % fmt)


def validate(path, content, required=(), fmt=None):
    """Problems (strings) of one file's content; [] when it parses and has every required section."""
    fmt = fmt or detect_format(path)
    if not fmt:
        return ['%s: cannot tell its format from the extension (.toml, .yaml, .yml, .json)' % path]
    try:
        doc = parse(content, fmt)
    except (ValueError, UnicodeDecodeError) as exc:
        return ['%s: %s' % (path, exc)]
    if required and not isinstance(doc, dict):
        return ['%s: top level is %s, not a table/mapping with sections %s' % (
            path, type(doc).__name__, ', '.join(required))]
    missing = [s for s in required if s not in doc]
    return ['%s: missing required section(s) %s' % (path, ', '.join(missing))] if missing else []


def get_key(doc, key):
    """The value at a dotted key of a parsed document, or None when any part is absent."""
    for part in key.split('.'):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _with_key(doc, key, value):
    """A copy of doc with the dotted key set (tables created on the way)."""
    out = dict(doc or {})
    head, _dot, rest = key.partition('.')
    out[head] = _with_key(out.get(head) if isinstance(out.get(head), dict) else {}, rest, value) if rest else value
    return out


_TOML_HEADER = re.compile(r'^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$')


def _edit_toml(lines, key, value):
    table, _dot, name = key.rpartition('.')
    literal = 'true' if value else 'false'
    headers = [(m.group(1), i) for i, m in ((i, _TOML_HEADER.match(line)) for i, line in enumerate(lines)) if m]
    if not table:
        lo, hi = 0, headers[0][1] if headers else len(lines)
    else:
        idx = next((k for k, (n, _i) in enumerate(headers) if n == table), None)
        if idx is None:
            return lines + ['', '[%s]' % table, '%s = %s' % (name, literal)]
        lo = headers[idx][1] + 1
        hi = headers[idx + 1][1] if idx + 1 < len(headers) else len(lines)
    assign = re.compile(r'^(\s*%s\s*=\s*)(true|false)(\s*(#.*)?)$' % re.escape(name))
    for i in range(lo, hi):
        m = assign.match(lines[i])
        if m:
            return lines[:i] + [m.group(1) + literal + m.group(3)] + lines[i + 1:]
    return lines[:lo] + ['%s = %s' % (name, literal)] + lines[lo:]


def _indent(line):
    return len(line) - len(line.lstrip())


def _edit_yaml(lines, key, value):
    parts = key.split('.')
    lo, hi, indent = 0, len(lines), ''  # the mapping being searched: its entries in lines[lo:hi] at `indent`
    for depth, part in enumerate(parts):
        entry = re.compile(r'^%s%s:(\s*)(.*?)(\s+#.*)?$' % (re.escape(indent), re.escape(part)))
        i = next((j for j in range(lo, hi) if entry.match(lines[j])), None)
        if i is None and len(parts) == 1:
            return lines + ['%s: %s' % (part, 'true' if value else 'false')]  # a top-level key is added at the end
        if i is None:
            raise ValueError('%s is not in the file: add "%s: false" once where the strategy reads it'
                             % ('.'.join(parts[:depth + 1]), parts[-1]))
        if depth == len(parts) - 1:
            m = entry.match(lines[i])
            return lines[:i] + ['%s%s: %s%s' % (indent, part, 'true' if value else 'false', m.group(3) or '')] \
                + lines[i + 1:]
        j = i + 1
        while j < hi and (not lines[j].strip() or lines[j].lstrip().startswith('#') or _indent(lines[j]) > len(indent)):
            j += 1
        child = next((c for c in lines[i + 1:j] if c.strip() and not c.lstrip().startswith('#')), None)
        if child is None:
            raise ValueError('%s is not a mapping with entries below it' % '.'.join(parts[:depth + 1]))
        indent, lo, hi = child[:_indent(child)], i + 1, j
    raise ValueError('%s is not in the file' % key)  # pragma: no cover - the loop returns or raises


def set_key(text, fmt, key, value):
    """The text with the dotted boolean key set to value: for TOML and YAML only that line is
    changed (comments and layout kept), JSON is written again. The result is parsed and must equal
    the old document with only that key changed; otherwise ValueError, and nothing is to be written."""
    before = parse(text, fmt)
    if before is not None and not isinstance(before, dict):
        raise ValueError('the top level is %s, not a table/mapping' % type(before).__name__)
    if fmt == 'json':
        new = json.dumps(_with_key(before, key, value), indent=2) + '\n'
    elif fmt == 'toml':
        new = '\n'.join(_edit_toml(text.splitlines(), key, value)) + '\n'
    elif fmt == 'yaml':
        new = '\n'.join(_edit_yaml(text.splitlines(), key, value)) + '\n'
    else:
        raise ValueError('unknown format %r (toml, yaml or json)' % fmt)
    try:
        after = parse(new, fmt)
    except ValueError as exc:
        raise ValueError('setting %s here would leave the file unreadable (%s); it was left as it was' % (key, exc))
    if after != _with_key(before, key, value):
        raise ValueError('setting %s would change more than that key; the file was left as it was' % key)
    return new
