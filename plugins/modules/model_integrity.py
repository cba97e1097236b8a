#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: model_integrity
short_description: Compare a deployed model file's hash with its model card (md5 as in runbook 001, sha256 when the card has it)
version_added: 0.1.0
description:
  - Computes the md5 and sha256 of O(path) and compares them with the hashes found in O(card) (JSON or YAML; keys
    C(md5) and C(sha256) at the top level or one level down, for example under C(artifact) or C(hashes)), or with
    O(expected_md5)/O(expected_sha256). Every hash found must match; sha256 is preferred when both are present.
  - Read-only. Returns C(ok); with O(fail_on_mismatch=true) a mismatch or a missing file fails the task.
options:
  path:
    description: The deployed model file.
    type: path
    required: true
  card:
    description: The model card (JSON or YAML) holding the expected hash(es).
    type: path
  dvc_file:
    description: A C(.dvc) file tracking O(path); the md5 it records for O(path) is expected (what DVC would check
      out).
    type: path
  expected_md5:
    description: Expected md5, when there is no card.
    type: str
  expected_sha256:
    description: Expected sha256, when there is no card.
    type: str
  fail_on_mismatch:
    description: Fail the task when the file is missing or differs.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: Read-only.
  idempotent:
    support: full
    description: Read-only.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Check the production model against its card
  tradeops.dr.model_integrity:
    path: /srv/trading/models/ppo_production/final_model.zip
    card: /srv/trading/models/ppo_production/model_card.json
  register: model
'''

RETURN = r'''
integrity:
  description: The comparison.
  returned: always
  type: dict
  contains:
    ok:
      description: The file exists and every expected hash matches.
      type: bool
    exists:
      description: The file exists.
      type: bool
    md5:
      description: md5 of the file.
      type: str
    sha256:
      description: sha256 of the file.
      type: str
    expected:
      description: The hashes expected (from the card or the options).
      type: dict
      sample: {md5: 9e107d9d372bb6826bd81d3542a419d6}
    problems:
      description: What differs, in words.
      type: list
      elements: str
'''

import json
import os
import re
import traceback

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with Ansible
    yaml = None

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _manifest, _vcs

HEX = {'md5': re.compile(r'[0-9a-f]{32}'), 'sha256': re.compile(r'[0-9a-f]{64}')}


def card_hashes(doc, depth=0):
    """md5/sha256 values in a model card: top level first, then one level down."""
    found = {}
    if not isinstance(doc, dict):
        return found
    for algo in ('md5', 'sha256'):
        value = doc.get(algo)
        if isinstance(value, str) and HEX[algo].fullmatch(value.strip().lower()):
            found[algo] = value.strip().lower()
    if depth == 0:
        for value in doc.values():
            for algo, digest in card_hashes(value, 1).items():
                found.setdefault(algo, digest)
    return found


def read_card(path):
    with open(path) as handle:
        text = handle.read()
    try:
        doc = json.loads(text)
    except ValueError:
        if yaml is None:
            raise IOError('the card is not JSON, and PyYAML is missing to read it as YAML')
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:  # neither JSON nor YAML: a clear refusal, not a traceback
            raise ValueError('it is neither JSON nor YAML (%s)' % str(exc).splitlines()[0])
    return card_hashes(doc)


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type='path', required=True),
        card=dict(type='path'),
        expected_md5=dict(type='str'),
        expected_sha256=dict(type='str'),
        fail_on_mismatch=dict(type='bool', default=False),
        dvc_file=dict(type='path'),
    ), required_one_of=[('card', 'dvc_file', 'expected_md5', 'expected_sha256')], supports_check_mode=True)
    p = module.params
    expected = {}
    try:
        if p['card']:
            expected = read_card(p['card'])
            if not expected:
                module.fail_json(msg='model card %s holds no md5 or sha256' % p['card'])
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(exception=traceback.format_exc(), msg='cannot read the model card %s: %s' % (p['card'], exc))
    if p['dvc_file']:
        try:
            base = os.path.dirname(os.path.abspath(p['dvc_file']))
            recorded = [o['md5'] for o in _vcs.dvc_outs(p['dvc_file'])
                        if os.path.normpath(os.path.join(base, o['path'])) == os.path.abspath(p['path'])]
        except _vcs.VcsError as exc:
            module.fail_json(exception=traceback.format_exc(), msg=str(exc))
        if not recorded:
            module.fail_json(msg='%s does not track %s (a folder output is checked with dvc status by '
                                 'tradeops.dr.dvc_model)' % (p['dvc_file'], p['path']))
        expected['md5'] = recorded[0]
    for algo in ('md5', 'sha256'):
        if p['expected_' + algo]:
            expected[algo] = p['expected_' + algo].strip().lower()
    out = dict(exists=os.path.isfile(p['path']), expected=expected, problems=[], md5=None, sha256=None)
    if not out['exists']:
        out['problems'].append('%s does not exist' % p['path'])
    else:
        for algo in ('md5', 'sha256'):
            out[algo] = _manifest.digest(p['path'], algo)
            if algo in expected and out[algo] != expected[algo]:
                out['problems'].append('%s of %s is %s, the card says %s' % (
                    algo, p['path'], out[algo], expected[algo]))
    out['ok'] = not out['problems']
    if p['fail_on_mismatch'] and not out['ok']:
        module.fail_json(msg='model integrity check failed: %s' % '; '.join(out['problems']), integrity=out)
    module.exit_json(changed=False, integrity=out)


if __name__ == '__main__':
    main()
