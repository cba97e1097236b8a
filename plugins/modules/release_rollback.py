#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: release_rollback
short_description: Roll a deployed git tree back to a commit, a tag or the last commit before a time
version_added: 0.1.0
description:
  - Runbook 003 section 4 (C(./scripts/rollback.sh --to <TIMESTAMP>)). The deployed tree is checked out at the target
    (detached), after the release it replaces has been kept under a tag C(<keep_prefix>/<UTC time>) - the bad release
    stays reachable, nothing is lost.
  - The target is O(to) (a commit or a tag) or O(before) (the newest commit of the current history committed before
    that time). Refused before any change - a target that does not exist, a time without a zone or before the first
    commit, a tree with uncommitted changes to tracked files (someone's hot fix would be lost).
  - A tree already at the target is left as it is.
options:
  path:
    description: The deployed tree (a git work tree).
    type: path
    required: true
  to:
    description: Commit or tag to roll back to.
    type: str
  before:
    description: ISO 8601 time with a zone (V(2026-11-25T09:00:00Z)); the newest commit before it.
    type: str
  keep_prefix:
    description: Tag prefix under which the release being replaced is kept.
    type: str
    default: tradeops-dr/pre-rollback
attributes:
  check_mode:
    support: full
    description: Resolves the target and reports the rollback; changes nothing.
  diff_mode:
    support: none
    description: RV(previous) and RV(current) name the commits.
  idempotent:
    support: full
    description: At the target already, nothing changes.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Roll the strategy back to the release before this morning's deployment
  tradeops.dr.release_rollback:
    path: /opt/trading/strategy
    before: "2026-11-25T07:00:00Z"

- name: Roll back to a tag
  tradeops.dr.release_rollback:
    path: /opt/trading/strategy
    to: v2.3.1
'''

RETURN = r'''
previous:
  description: The commit deployed before the rollback.
  returned: always
  type: str
  sample: 9f2c1e0b6f2b0c6e3f4a7b8c9d0e1f2a3b4c5d6e
current:
  description: The commit deployed after it (the target).
  returned: always
  type: str
  sample: 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b
kept_as:
  description: The tag that keeps the replaced release (empty when nothing changed).
  returned: always
  type: str
  sample: tradeops-dr/pre-rollback/20261125T071502Z
target_subject:
  description: The subject line and commit time of the target.
  returned: always
  type: str
  sample: "2026-11-24T18:02:11+00:00 release 2.3.1"
'''

import datetime
import re
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _vcs

_ZONED = re.compile(r'(Z|[+-]\d{2}:?\d{2})$')


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type='path', required=True),
        to=dict(type='str'),
        before=dict(type='str'),
        keep_prefix=dict(type='str', default='tradeops-dr/pre-rollback'),
    ), supports_check_mode=True, required_one_of=[('to', 'before')], mutually_exclusive=[('to', 'before')])
    p = module.params
    out = dict(changed=False, previous='', current='', kept_as='', target_subject='')
    try:
        repo = _vcs.toplevel(p['path'])
        previous = _vcs.head(repo)
        out.update(previous=previous, current=previous)
        if p['to']:
            try:
                target = _vcs.resolve(repo, p['to'])
            except _vcs.VcsError:
                module.fail_json(exception=traceback.format_exc(), msg='rollback target %r is not a commit or tag of %s; nothing was changed' % (
                    p['to'], repo), **out)
        else:
            if not _ZONED.search(p['before'].strip()):
                module.fail_json(msg='before=%r has no time zone (write 2026-11-25T07:00:00Z); nothing was changed'
                                 % p['before'], **out)
            try:
                when = datetime.datetime.fromisoformat(p['before'].strip().replace('Z', '+00:00'))
            except ValueError:
                module.fail_json(exception=traceback.format_exc(), msg='before=%r is not an ISO 8601 time; nothing was changed' % p['before'], **out)
            target = _vcs.run(['git', 'rev-list', '-1', '--before=%s' % when.isoformat(), 'HEAD'],
                              cwd=repo).decode().strip()
            if not target:
                module.fail_json(msg='no commit of %s is older than %s; nothing was changed' % (repo, p['before']), **out)
        out['target_subject'] = _vcs.run(['git', 'log', '-1', '--format=%cI %s', target], cwd=repo).decode().strip()
        if target == previous:
            module.exit_json(**out)
        changed_files = _vcs.dirty(repo)
        if changed_files:
            module.fail_json(msg='%s has uncommitted changes to %s: commit or stash them first (a rollback would lose '
                                 'them); nothing was changed' % (repo, ', '.join(changed_files[:10])), **out)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')
        kept = '%s/%s' % (p['keep_prefix'].rstrip('/'), stamp)
        _vcs.check_rev(kept)
        out.update(changed=True, current=target, kept_as=kept)
        if module.check_mode:
            module.exit_json(**out)
        _vcs.run(['git', 'tag', kept, previous], cwd=repo)
        _vcs.run(['git', 'checkout', '--quiet', '--detach', target], cwd=repo)
        now = _vcs.head(repo)
        if now != target:
            module.fail_json(msg='after checkout %s is at %s, not %s' % (repo, now, target), **out)
    except _vcs.VcsError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), **out)
    module.exit_json(**out)


if __name__ == '__main__':
    main()
