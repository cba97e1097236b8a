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
