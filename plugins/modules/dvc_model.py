#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: dvc_model
short_description: Put back the DVC-tracked model version, or roll it back to the previous version or a named revision
version_added: 0.1.0
description:
  - O(state=restored) (runbook 001, scenario 2) - when the workspace copy of the outputs of O(target) differs from
    what the C(.dvc) file records, copies the current files aside, then C(dvc checkout --force) (and C(dvc pull)
    from the remote when the cache lacks the data).
  - O(state=rollback) (runbook 001, model rollback) - takes the C(.dvc) file from O(revision), or with
    O(revision=previous) from the newest commit whose C(.dvc) differs from the one in the work tree (its git
    history), with C(git checkout <rev> -- <target>), then checks the data out as above. Refused on a work tree
    with uncommitted changes to tracked files unless O(force=true).
  - After either, every output must match the md5 the C(.dvc) file records (C(dvc status) for folders).
  - O(state=pushed) (runbook 001, model backup) - backs the verified model up to the DVC remote - C(dvc push) of
    O(target) when C(dvc status --cloud) says the remote lacks an output, then C(dvc status --cloud) again, which
    must say it holds them all. Refused, nothing pushed, when the workspace copy differs from what the C(.dvc)
    file records (only a verified model is backed up).
options:
  repo:
    description: The git + DVC repository (its top folder).
    type: path
    required: true
  target:
    description: The C(.dvc) file, relative to O(repo) (for example C(models/ppo_production.dvc)).
    type: str
    required: true
  state:
    description: V(restored), V(rollback) or V(pushed).
    type: str
    choices: [restored, rollback, pushed]
    default: restored
  revision:
    description: For O(state=rollback) - V(previous), or a commit, tag or branch.
    type: str
    default: previous
  force:
    description: Roll back even when tracked files have uncommitted changes.
    type: bool
    default: false
  pull:
    description: Run C(dvc pull) when C(dvc checkout) cannot find the data in the cache.
    type: bool
    default: true
  backup_dir:
    description: Folder for the copies of the current outputs taken before they are replaced.
    type: path
    required: true
  remote:
    description: For O(state=pushed) - the DVC remote to push to; empty, the repository's default remote.
    type: str
attributes:
  check_mode:
    support: full
    description: Says what it would check out from which revision; changes nothing.
  diff_mode:
    support: none
    description: The copies kept aside are the record of what was replaced.
  idempotent:
    support: full
    description: Outputs that already match the C(.dvc) file (and a C(.dvc) already at the revision) are left alone.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Put back the tracked production model (corrupted file)
  tradeops.dr.dvc_model:
    repo: /srv/trading
    target: models/ppo_production.dvc
    backup_dir: /var/backups/tradeops-dr/models

- name: Back the verified model up to the DVC remote (after a recovery, or on a schedule)
  tradeops.dr.dvc_model:
    repo: /srv/trading
    target: models/ppo_production.dvc
    state: pushed
    backup_dir: /var/backups/tradeops-dr/models

- name: Roll back to the previous model version
  tradeops.dr.dvc_model:
    repo: /srv/trading
    target: models/ppo_production.dvc
    state: rollback
    revision: previous
    backup_dir: /var/backups/tradeops-dr/models
'''

RETURN = r'''
model:
  description: What was found and done.
  returned: always
  type: dict
  contains:
    matched_before:
      description: The outputs matched the C(.dvc) file before anything was done.
      type: bool
    revision:
      description: Commit the C(.dvc) file was taken from (rollback).
      type: str
    revision_subject:
      description: Subject of that commit.
      type: str
    outputs:
      description: Each output with the md5 recorded and found after.
      type: list
      elements: dict
    kept_aside:
      description: Folder holding the copies of the replaced outputs.
      type: str
    commands:
      description: The git and DVC commands that ran.
      type: list
      elements: str
    remote_lacked:
      description: For O(state=pushed) - the outputs the remote lacked before the push (empty, nothing to push).
      type: list
      elements: str
'''

import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _manifest, _vcs


def outputs_state(repo, target):
    """[(abs path, out dict, matches)] for each output of the .dvc file."""
    dvc_path = os.path.join(repo, target)
    base = os.path.dirname(dvc_path)
    states = []
    for out in _vcs.dvc_outs(dvc_path):
        path = os.path.normpath(os.path.join(base, _manifest.safe_relpath(out['path'])))
        if out['is_dir']:
            status = _vcs.dvc(repo, 'status', '--json', target).strip()
            matches = os.path.isdir(path) and status in ('{}', '')
        else:
            matches = os.path.isfile(path) and _manifest.digest(path, 'md5') == out['md5']
        states.append((path, out, matches))
    return states


def keep_aside(states, backup_dir, reason):
    for path, _out, matches in states:
        if not matches and os.path.exists(path):
            dest, _entries, _reused = _manifest.copy_aside(path, backup_dir, 'model-%s-' % os.path.basename(path),
                                                           reason)
            return dest
    return None


def push(module, repo, target, result):
    """state=pushed: a verified model backed up to the DVC remote, then the remote checked again."""
    states = outputs_state(repo, target)
    bad = [pa for pa, _o, m in states if not m]
    if bad:
        raise _vcs.VcsError('%s differ(s) from what %s records: only a verified model is backed up - restore it first '
                            '(state=restored); nothing was pushed' % (', '.join(bad), target))
    remote = module.params['remote'] or None
    lacked = _vcs.dvc_cloud_status(repo, target, remote)
    result['remote_lacked'] = sorted(lacked)
    if lacked and module.check_mode:
        result['would'] = ['dvc push %s' % target]
    elif lacked:
        result['commands'].append(_vcs.dvc_push(repo, target, remote))
        still = _vcs.dvc_cloud_status(repo, target, remote)
        if still:
            raise _vcs.VcsError('after dvc push the remote still lacks %s' % ', '.join(sorted(still)))
    result['outputs'] = [dict(path=pa, md5=o['md5'], matches=m) for pa, o, m in states]
    module.exit_json(changed=bool(lacked), model=result)


def main():
    module = AnsibleModule(argument_spec=dict(
        repo=dict(type='path', required=True),
        target=dict(type='str', required=True),
        state=dict(type='str', choices=['restored', 'rollback', 'pushed'], default='restored'),
        revision=dict(type='str', default='previous'),
        force=dict(type='bool', default=False),
        pull=dict(type='bool', default=True),
        backup_dir=dict(type='path', required=True),
        remote=dict(type='str'),
    ), supports_check_mode=True)
    p = module.params
    result = dict(commands=[])
    changed = False
    try:
        repo = _vcs.toplevel(p['repo'])
        target = _manifest.safe_relpath(p['target'])
        if not target.endswith('.dvc') or not os.path.isfile(os.path.join(repo, target)):
            raise _vcs.VcsError('%s is not a .dvc file in %s' % (target, repo))
        if p['state'] == 'pushed':
            push(module, repo, target, result)
        if p['state'] == 'rollback':
            dirty = _vcs.dirty(repo)
            if dirty and not p['force']:
                raise _vcs.VcsError('the work tree of %s has uncommitted changes (%s): commit or stash them, or set '
                                    'force' % (repo, ', '.join(dirty[:10])))
            with open(os.path.join(repo, target), 'rb') as handle:
                current = handle.read()
            if p['revision'] == 'previous':
                sha, subject = _vcs.previous_version(repo, target, current)
                if not sha:
                    raise _vcs.VcsError('the git history of %s holds no earlier version' % target)
            else:
                sha = _vcs.resolve(repo, p['revision'])
                subject = _vcs.run(['git', 'log', '-1', '--format=%s', sha], cwd=repo).decode().strip()
            result.update(revision=sha, revision_subject=subject)
            if _vcs.show(repo, sha, target) != current:
                if module.check_mode:
                    result['would'] = ['git checkout %s -- %s' % (sha, target), 'dvc checkout --force %s' % target]
                    module.exit_json(changed=True, model=result)
                states = outputs_state(repo, target)
                result['kept_aside'] = keep_aside([(pa, o, False) for pa, o, _m in states], p['backup_dir'],
                                                  'before rolling %s back to %s' % (target, sha))
                _vcs.checkout_file(repo, sha, target)
                result['commands'].append('git checkout %s -- %s' % (sha, target))
                changed = True
        states = outputs_state(repo, target)
        result['matched_before'] = all(m for _p, _o, m in states)
        if not result['matched_before']:
            if module.check_mode:
                result['would'] = ['dvc checkout --force %s' % target]
                module.exit_json(changed=True, model=result)
            result['kept_aside'] = result.get('kept_aside') or keep_aside(states, p['backup_dir'],
                                                                          'before dvc checkout of %s' % target)
            result['commands'] += _vcs.dvc_restore(repo, target, pull=p['pull'])
            changed = True
            states = outputs_state(repo, target)
        result['outputs'] = [dict(path=pa, md5=o['md5'], matches=m,
                                  md5_now=_manifest.digest(pa, 'md5') if os.path.isfile(pa) else None)
                             for pa, o, m in states]
        bad = [pa for pa, _o, m in states if not m]
        if bad:
            raise _vcs.VcsError('after the checkout %s still differ(s) from what %s records' % (', '.join(bad), target))
    except (_vcs.VcsError, ValueError, IOError, OSError) as exc:
        kept = result.get('kept_aside')
        module.fail_json(exception=traceback.format_exc(), changed=changed, model=result, msg='%s%s' % (str(exc).rstrip('.'), (
            '. The files as they were before are kept in %s' % kept) if kept else ''))
    module.exit_json(changed=changed, model=result)


if __name__ == '__main__':
    main()
