#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: config_restore
short_description: Validate config files, and restore them from a git revision only when the restored version validates
version_added: 0.1.0
description:
  - Validates each file of O(files) - TOML, YAML or JSON by extension, parsed, with the top-level sections of
    O(required_sections) present (runbook 002 checks C(trading), C(risk) and C(live)).
  - With O(validate_only=false), takes each file from O(revision) (C(git show), runbook 001's config rollback),
    validates ALL of them first - a config that does not validate is never put in place, and then nothing is
    written - keeps the current file aside, and replaces it atomically (mode kept).
options:
  repo:
    description: The git repository holding the config files.
    type: path
    required: true
  files:
    description: Config files, relative to O(repo).
    type: list
    elements: str
    required: true
  revision:
    description: Commit, tag or branch to restore from (V(HEAD) puts back the committed version of a corrupted
      file; V(HEAD~1) rolls back the last change).
    type: str
    default: HEAD
  required_sections:
    description: Per file (its path as in O(files)) or for all files (key V(*)), the top-level sections that must
      exist.
    type: dict
    default: {}
  validate_only:
    description: Only validate the files in place; restore nothing.
    type: bool
    default: false
  backup_dir:
    description: Folder for the copies of the files replaced.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Validates and reports the files that would be replaced; writes nothing.
  diff_mode:
    support: none
    description: The copies kept aside record what was replaced.
  idempotent:
    support: full
    description: Files already equal to the revision are left alone.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Roll the trading config back one commit, only if the old one validates
  tradeops.dr.config_restore:
    repo: /srv/trading
    files: [config/trading_config.toml, config/norm_stats.json]
    revision: HEAD~1
    required_sections:
      config/trading_config.toml: [trading, risk, live]
    backup_dir: /var/backups/tradeops-dr/config
'''

RETURN = r'''
config:
  description: What was validated and restored.
  returned: always
  type: dict
  contains:
    invalid_before:
      description: Files that did not validate in place, with the reason.
      type: dict
      sample: {config/trading_config.toml: "config/trading_config.toml - not valid TOML - ..."}
    restored:
      description: Files replaced by their version at O(revision).
      type: list
      elements: str
    unchanged:
      description: Files already equal to O(revision).
      type: list
      elements: str
    revision:
      description: The commit restored from.
      type: str
    kept_aside:
      description: Folders holding the replaced files.
      type: list
      elements: str
'''

import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _config, _manifest, _vcs


def sections_for(required, rel):
    return list(required.get(rel) or required.get('*') or [])


def main():
    module = AnsibleModule(argument_spec=dict(
        repo=dict(type='path', required=True),
        files=dict(type='list', elements='str', required=True),
        revision=dict(type='str', default='HEAD'),
        required_sections=dict(type='dict', default={}),
        validate_only=dict(type='bool', default=False),
        backup_dir=dict(type='path', required=True),
    ), supports_check_mode=True)
    p = module.params
    result = dict(invalid_before={}, restored=[], unchanged=[], kept_aside=[])
    try:
        repo = _vcs.toplevel(p['repo'])
        rels = [_manifest.safe_relpath(f) for f in p['files']]
        for rel in rels:
            path = os.path.join(repo, rel)
            try:
                with open(path, 'rb') as handle:
                    problems = _config.validate(rel, handle.read(), sections_for(p['required_sections'], rel))
            except (IOError, OSError) as exc:
                problems = ['%s: cannot be read (%s)' % (rel, exc.strerror or exc)]
            if problems:
                result['invalid_before'][rel] = '; '.join(problems)
        if p['validate_only']:
            module.exit_json(changed=False, config=result, valid=not result['invalid_before'])
        sha = _vcs.resolve(repo, p['revision'])
        result['revision'] = sha
        wanted = {}
        refused = []
        for rel in rels:
            content = _vcs.show(repo, sha, rel)
            problems = _config.validate(rel, content, sections_for(p['required_sections'], rel))
            if problems:
                refused += problems
            wanted[rel] = content
        if refused:
            module.fail_json(config=result, msg='the version at %s does not validate, so nothing was put in place: '
                             '%s' % (p['revision'], '; '.join(refused)))
        for rel in rels:
            path = os.path.join(repo, rel)
            current = None
            if os.path.isfile(path):
                with open(path, 'rb') as handle:
                    current = handle.read()
            if current == wanted[rel]:
                result['unchanged'].append(rel)
                continue
            result['restored'].append(rel)
            if module.check_mode:
                continue
            if current is not None:
                dest, _entries, _reused = _manifest.copy_aside(path, p['backup_dir'], 'config-%s-' % os.path.basename(rel),
                                                               'before restoring %s from %s' % (rel, sha))
                result['kept_aside'].append(dest)
            mode = os.stat(path).st_mode & 0o7777 if current is not None else 0o640
            _manifest.write_text_atomic(path, wanted[rel], mode)
    except (_vcs.VcsError, ValueError, IOError, OSError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), config=result)
    module.exit_json(changed=bool(result['restored']), config=result)


if __name__ == '__main__':
    main()
