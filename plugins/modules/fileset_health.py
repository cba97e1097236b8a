#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: fileset_health
short_description: Diagnose the live config, state and data files of a trading host and find the set to restore from
version_added: 0.1.0
description:
  - Read only. Checks the files below the roots of O(sources) as runbook 002 does before and after a recovery - every
    root present, every file of O(critical) present and not empty, and every file with a known extension parsed as
    its type (TOML, YAML, JSON - with the sections of O(required_sections) - and CSV, whose rows must each have as
    many fields as its header; a file cut short mid-row does not).
  - Files larger than O(max_parse_bytes) are checked for presence only, and named.
  - With O(backup_root), finds the set a recovery would restore the damaged categories from - the newest set (not a
    C(pre-restore) one) that holds those categories, passes verification (every file's sha256) and whose copies of
    every damaged file are present and parse - and names why each newer set was passed over.
options:
  sources:
    description: Per category (config, state, data), the roots (files or folders, absolute paths) as configured now.
    type: dict
    required: true
  critical:
    description: Files that must exist and not be empty (runbook 002 - data/positions.csv, data/trades.csv); absolute
      paths below a root of O(sources).
    type: list
    elements: path
    default: []
  required_sections:
    description: Per file (absolute path), the top-level sections its document must have (runbook 002 checks trading,
      risk and live in config.toml).
    type: dict
    default: {}
  max_parse_bytes:
    description: Files larger than this are checked for presence only.
    type: int
    default: 16777216
  backup_root:
    description: Folder holding the backup sets; when given and something is damaged, the set to restore from is found.
    type: path
attributes:
  check_mode:
    support: full
    description: Read only either way.
  diff_mode:
    support: none
    description: Nothing is changed.
  idempotent:
    support: full
    description: Read only.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Diagnose the trading host's files and find the set to restore from
  tradeops.dr.fileset_health:
    sources:
      config: [/srv/trading/config]
      state: [/srv/trading/state]
      data: [/srv/trading/data]
    critical: [/srv/trading/data/positions.csv, /srv/trading/data/trades.csv]
    required_sections: {/srv/trading/config/config.toml: [trading, risk, live]}
    backup_root: /var/backups/tradeops-dr/files
  register: files
'''

RETURN = r'''
files:
  description: The diagnosis.
  returned: always
  type: dict
  contains:
    healthy:
      description: Every root present, every critical file present and not empty, every checked file parses.
      type: bool
    problems:
      description: One line per problem, naming the file.
      type: list
      elements: str
      sample: ["/srv/trading/state/engine.json: not valid JSON: Expecting ',' delimiter: line 1 column 20 (char 19)"]
    damaged:
      description: The damaged (or missing) files, per category.
      type: dict
      sample: {state: [/srv/trading/state/engine.json]}
    checked:
      description: How many files were parsed, per type.
      type: dict
      sample: {json: 2, csv: 1, yaml: 2}
    not_parsed:
      description: Files larger than max_parse_bytes (checked for presence only).
      type: list
      elements: str
    restore_from:
      description: The set a recovery would restore the damaged categories from (id, type, created_at, categories),
        or none.
      type: dict
      sample: {backup_id: full_20261206T020000Z, type: full, created_at: "2026-12-06T02:00:00Z", categories: [state]}
    passed_over:
      description: Newer sets not chosen, each with the reason.
      type: list
      elements: str
    newest_set:
      description: The newest usable set (id and created_at) whether or not anything is damaged, or none.
      type: dict
'''

import csv
import io
import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _config, _fileset


def problems_of(path, content, required=()):
    """Problems (strings) of one file's content, parsed by its extension; [] when it parses."""
    if not content.strip():
        return ['%s: empty' % path]
    if kind_of(path) == 'csv':
        return csv_problems(path, content)
    return _config.validate(path, content, required)


def csv_problems(path, content):
    try:
        text = content.decode('utf-8')
    except UnicodeDecodeError as exc:
        return ['%s: not UTF-8 text: %s' % (path, exc)]
    try:
        rows = list(csv.reader(io.StringIO(text, newline='')))
    except csv.Error as exc:
        return ['%s: not valid CSV: %s' % (path, exc)]
    header = rows[0] if rows else []
    if not any(cell.strip() for cell in header):
        return ['%s: no CSV header' % path]
    for number, row in enumerate(rows[1:], start=2):
        if row and len(row) != len(header):
            return ['%s: row %d has %d fields, the header %d (cut short or corrupted)' % (
                path, number, len(row), len(header))]
    return []


def kind_of(path):
    return 'csv' if os.path.splitext(path)[1].lower() == '.csv' else _config.detect_format(path)


def check_live(sources, critical, required, max_bytes):
    """(problems, damaged {category: [paths]}, checked {type: n}, not_parsed)."""
    problems, damaged, checked, not_parsed = [], {}, {}, []

    def bad(category, path, text):
        problems.append(text)
        damaged.setdefault(category, [])
        if path not in damaged[category]:
            damaged[category].append(path)

    roots = [(c, os.path.abspath(r)) for c in _fileset.CATEGORIES for r in sources.get(c) or []]
    for category, root in roots:
        if not os.path.exists(root):
            bad(category, root, '%s: missing (the %s root)' % (root, category))
            continue
        for rel in _fileset.walk(root):
            path = _fileset.source_file(root, rel)
            kind = kind_of(path)
            if not kind:
                continue
            if os.path.getsize(path) > max_bytes:
                not_parsed.append(path)
                continue
            with open(path, 'rb') as handle:
                content = handle.read()
            checked[kind] = checked.get(kind, 0) + 1
            for text in problems_of(path, content, required.get(path) or ()):
                bad(category, path, text)
    for path in critical:
        path = os.path.abspath(path)
        category = next((c for c, r in roots if path == r or path.startswith(r.rstrip(os.sep) + os.sep)), None)
        if category is None:
            raise _fileset.FilesetError('critical file %s lies below none of the roots of sources' % path)
        if not os.path.isfile(path):
            bad(category, path, '%s: missing (a critical file)' % path)
        elif os.path.getsize(path) == 0 and path not in damaged.get(category, []):
            bad(category, path, '%s: empty (a critical file)' % path)
    return problems, damaged, checked, not_parsed


def stored_copies(set_dir, metadata, sources):
    """{live path: stored path} for every file of the set, mapped onto the roots configured now."""
    copies = {}
    for entry in metadata['files']:
        stored, rel = _fileset.stored_path(entry)
        placed = _fileset.live_target(entry, rel, sources)
        if placed is not None:
            copies[placed[1]] = os.path.join(set_dir, stored)
    return copies


def find_set(backup_root, sources, damaged, required):
    """(chosen or None, passed_over, newest usable set or None), reading sets newest first and only as far
    as it must: every set is verified by hashing its files, and the hourly health check runs this."""
    categories = sorted(damaged)
    passed, chosen, newest = [], None, None
    for s in _fileset.catalog(backup_root):
        if s['status'] == 'incomplete' or s['type'] == 'pre-restore':
            continue  # the state just before an earlier restore is evidence, not a recovery point
        metadata, problems = _fileset.verify(s['dir'])
        if problems:
            passed.append('%s failed verification: %s' % (s['backup_id'], '; '.join(problems[:3])))
            continue
        if newest is None:
            newest = dict(backup_id=s['backup_id'], created_at=s['created_at'])
        if not categories:
            break  # nothing damaged: the newest usable set is all the diagnosis names (older sets are not hashed)
        if not set(categories) <= set(_fileset.categories_of(s['type'])):
            passed.append('%s (%s) does not hold %s' % (s['backup_id'], s['type'], ', '.join(categories)))
            continue
        copies = stored_copies(s['dir'], metadata, sources)
        why = []
        for category in categories:
            for path in damaged[category]:
                if path in copies:
                    with open(copies[path], 'rb') as handle:
                        why.extend(problems_of(path, handle.read(), required.get(path) or ()) if kind_of(path) else [])
                elif not any(p.startswith(path.rstrip(os.sep) + os.sep) for p in copies):
                    why.append('%s is not in it' % path)  # a missing root is restored from the files below it
        if why:
            passed.append('%s holds damaged copies too: %s' % (s['backup_id'], '; '.join(why[:3])))
            continue
        chosen = dict(backup_id=s['backup_id'], type=s['type'], created_at=s['created_at'], categories=categories)
        break  # sets older than the chosen one are not hashed
    return chosen, passed, newest


def main():
    module = AnsibleModule(argument_spec=dict(
        sources=dict(type='dict', required=True),
        critical=dict(type='list', elements='path', default=[]),
        required_sections=dict(type='dict', default={}),
        max_parse_bytes=dict(type='int', default=16 * 1024 * 1024),
        backup_root=dict(type='path'),
    ), supports_check_mode=True)
    p = module.params
    try:
        _fileset.check_sources(p['sources'])
    except _fileset.FilesetError as exc:
        module.fail_json(msg='%s; nothing was diagnosed' % exc, exception=traceback.format_exc())
    if not any(p['sources'].values()):
        module.fail_json(msg='sources names no root: there is nothing to diagnose')
    required = dict((os.path.abspath(k), v) for k, v in p['required_sections'].items())
    try:
        problems, damaged, checked, not_parsed = check_live(
            p['sources'], p['critical'], required, p['max_parse_bytes'])
        chosen, passed, newest = None, [], None
        if p['backup_root']:
            chosen, passed, newest = find_set(p['backup_root'], p['sources'], damaged, required)
    except (_fileset.FilesetError, IOError, OSError) as exc:
        module.fail_json(msg='cannot diagnose the files: %s' % exc, exception=traceback.format_exc())
    module.exit_json(changed=False, files=dict(
        healthy=not problems, problems=problems, damaged=damaged, checked=checked, not_parsed=not_parsed,
        restore_from=chosen, passed_over=passed, newest_set=newest))


if __name__ == '__main__':
    main()
