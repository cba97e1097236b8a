#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: dr_lock
short_description: One recovery at a time - a lock with a lease on the managed host
version_added: 0.1.0
description:
  - A cron job, an AWX job and a person can start recoveries of the same system at once, from different control
    nodes. This module keeps a lock where all of them look - on the managed host, in O(lock_dir) - and refuses a
    second run, naming the holder (user, control node, playbook, incident, since when).
  - The lock has a lease. A live run renews it (V(renew)) between its stages; a run that died stops renewing, and
    its lease runs out. When the holder ran on this very machine (a local connection), its C(ansible-playbook)
    process is checked too, so a holder killed with C(kill -9) is known to be gone at once.
  - Every event (taken, taken over from a dead holder, released, broken) is appended to C(history.jsonl) in
    O(lock_dir).
options:
  action:
    description:
      - V(acquire) takes the lock (or renews it when O(token) holds it, or takes it over from a dead holder) and
        fails naming the holder when a live run holds it. V(renew) extends the lease and fails when this run no
        longer holds the lock. V(release) gives it up (only O(token)'s). V(status) reads it. V(break) removes
        the lock of a dead holder (or one whose lease ran out), recording O(actor) and O(reason); a live holder's
        lock only with O(force).
      - The lock file, its history and every result keep only the token's sha256, never the token.
    type: str
    choices: [acquire, renew, release, status, break]
    default: status
  lock_dir:
    description: Folder of the lock files on the managed host (created 0750).
    type: path
    default: /var/lib/tradeops-dr/locks
  name:
    description:
      - The lock's name (a plain file name); by convention the inventory host name.
      - One of O(name) and O(names) is required.
    type: str
  names:
    description:
      - Several locks in O(lock_dir) in one call - the inventory hosts that live on one machine, whose locks share
        its folder (C(full_recovery.yml) takes and releases them so, one module run per machine, not per host).
      - V(acquire) takes all of them or none - a live holder of any one refuses the whole set before anything is
        written, naming each; V(renew) and V(release) act on each.
    type: list
    elements: str
    version_added: 0.1.0
  token:
    description: The run's id; required by V(acquire), V(renew) and V(release). Not logged (it is what releases the lock).
    type: str
  holder:
    description: Who holds the lock, recorded with it (C(user), C(control_node), C(playbook), C(incident)).
    type: dict
    default: {}
  lease:
    description: Seconds the lock stays valid without a renewal; longer than the longest step between renewals.
    type: int
    default: 900
  actor:
    description: V(break) - who breaks the lock (recorded).
    type: str
  reason:
    description: V(break) - why (recorded).
    type: str
  force:
    description: V(break) - break the lock even though its holder is alive (recorded as forced).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: V(acquire) reports whether the lock would be taken and who holds it, without writing or failing.
      V(release) and V(break) report only.
  diff_mode:
    support: none
    description: The result names the holder before and after.
  idempotent:
    support: full
    description: Acquiring a lock this run holds renews it; releasing a lock not held changes nothing. Taking, renewing
      and releasing are the run's own bookkeeping and report C(changed=false); V(break) reports a change.
notes:
  - The holder's process is checked only when the module runs on the control node that started the run; remote
    holders are judged by their lease alone.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Take the recovery lock on every host of the run
  tradeops.dr.dr_lock:
    action: acquire
    name: "{{ inventory_hostname }}"
    token: "{{ dr_run_id }}"
    holder:
      user: "{{ lookup('ansible.builtin.env', 'USER') }}"
      control_node: "{{ lookup('ansible.builtin.pipe', 'hostname') }}"
      playbook: full_recovery.yml
      incident: INC-42

- name: Break the lock a dead run left (recorded)
  tradeops.dr.dr_lock:
    action: break
    name: "{{ inventory_hostname }}"
    actor: alice
    reason: the AWX node of the holder was lost
'''

RETURN = r'''
locks:
  description: O(names) - the lock of each name after the action, as RV(lock) for one.
  returned: when O(names) is given
  type: dict
  version_added: 0.1.0
lock:
  description: The lock after the action.
  returned: when O(name) is given
  type: dict
  contains:
    file:
      description: The lock file.
      type: str
    held:
      description: Whether the lock is held after the action.
      type: bool
    acquired:
      description: V(acquire) - whether this run holds it now.
      type: bool
    holder:
      description: The holder's record (user, control_node, playbook, incident, since, expires, node) - never its token.
      type: dict
    holder_text:
      description: The holder in one line.
      type: str
    alive:
      description: Whether the holder is alive (lease and, on this machine, its process).
      type: bool
    why:
      description: Why the holder counts as alive or dead.
      type: str
    previous:
      description: V(acquire) - the dead holder this run took over from, if any.
      type: dict
    released:
      description: V(release) - whether this run's lock was given up.
      type: bool
    history:
      description: The newest events of this lock.
      type: list
      elements: dict
'''

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tradeops.dr.plugins.module_utils import _guard, _lock


def _state(lock_dir, name, action, out):
    """The lock as it is now, with what an action that reads it shows."""
    current = _lock.read(lock_dir, name)
    if current:
        is_alive, why = _lock.alive(current)
        out.update(held=True, holder=_lock.public(current), holder_text=_lock.describe(current), alive=is_alive, why=why)
    else:
        out.update(held=False, holder={}, holder_text='nobody', alive=False, why='free')
    out['history'] = _lock.history(lock_dir, name, last=10) if action in ('status', 'break') else []
    return out


def _refusal(name, res, out):
    """What a refused acquire of one lock says (its line of the message), and the lock as the result shows it."""
    current = res['record']
    return ('another recovery holds %s: %s (%s)' % (name, _lock.describe(current), res['why']),
            dict(out, held=True, holder=_lock.public(current), holder_text=_lock.describe(current), alive=True,
                 why=res['why']))


def _refuse(module, lines, **result):
    module.fail_json(msg='REFUSED: %s. Nothing was done. Wait for it, or, when it is dead, `tradeops-dr lock break` '
                         '(recorded).' % '; '.join(lines), **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type='str', default='status', choices=['acquire', 'renew', 'release', 'status', 'break']),
            lock_dir=dict(type='path', default='/var/lib/tradeops-dr/locks'),
            name=dict(type='str'),
            names=dict(type='list', elements='str'),
            token=dict(type='str', no_log=True),
            holder=dict(type='dict', default={}),
            lease=dict(type='int', default=_lock.DEFAULT_LEASE),
            actor=dict(type='str'),
            reason=dict(type='str'),
            force=dict(type='bool', default=False),
        ),
        required_one_of=[('name', 'names')],
        mutually_exclusive=[('name', 'names')],
        required_if=[('action', 'acquire', ['token']), ('action', 'renew', ['token']),
                     ('action', 'release', ['token']), ('action', 'break', ['actor', 'reason'])],
        supports_check_mode=True,
    )
    p = module.params
    if p['lease'] < 10:
        module.fail_json(msg='lease must be at least 10 seconds, got %d' % p['lease'])
    if p['names'] is not None:
        _many(module, p)
    _one(module, p)


def _holder(p):
    holder = dict(p['holder'])
    found = _lock.controller_process(_guard.ControllerWatch().chain)
    if found:
        holder.update(controller_pid=found[0], controller_started=found[1])
    return holder


def _many(module, p):
    """O(names): one module run for the hosts of one machine; acquire is all or none."""
    lock_dir, names, check, action = p['lock_dir'], p['names'], module.check_mode, p['action']
    if not names or len(set(names)) != len(names):
        module.fail_json(msg='names must list each lock once, got %r' % (names,))
    if action == 'break':
        module.fail_json(msg='break acts on one lock at a time (name), so that each is broken on purpose')
    try:
        outs = dict((n, dict(file=_lock.lock_file(lock_dir, n), acquired=False, previous=None)) for n in names)
        if action == 'acquire':
            results, refusals = _lock.acquire_all(lock_dir, names, p['token'], _holder(p), p['lease'], check=check)
            if refusals and not check:
                lines, locks = [], {}
                for n, res in refusals:
                    line, locks[n] = _refusal(n, res, outs[n])
                    lines.append(line)
                _refuse(module, lines, locks=locks)
            for n, res in results.items():
                outs[n].update(acquired=res['acquired'],
                               previous=_lock.public(res['previous']) if res['previous'] else None)
        for n in names:
            if action == 'renew' and not check:
                _lock.renew(lock_dir, n, p['token'], p['lease'])
            elif action == 'release' and not check and _lock.holds(_lock.read(lock_dir, n), p['token']):
                outs[n]['released'] = _lock.release(lock_dir, n, p['token'])
            _state(lock_dir, n, action, outs[n])
    except _lock.LockError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    except (IOError, OSError) as exc:
        module.fail_json(msg='locks %s in %s: %s' % (', '.join(names), lock_dir, exc), exception=traceback.format_exc())
    module.exit_json(changed=False, locks=outs)


def _one(module, p):
    lock_dir, name, check = p['lock_dir'], p['name'], module.check_mode
    try:
        path = _lock.lock_file(lock_dir, name)
        out = dict(file=path, acquired=False, previous=None)
        changed = False
        if p['action'] == 'acquire':
            res = _lock.acquire(lock_dir, name, p['token'], _holder(p), p['lease'], check=check)
            out.update(acquired=res['acquired'], previous=_lock.public(res['previous']) if res['previous'] else None)
            # the lock is the run's own bookkeeping, not a change of the system: a run that changes
            # nothing says so (changed stays false); lock.acquired tells what happened
            if not res['acquired'] and not check:
                line, lock_out = _refusal(name, res, out)
                _refuse(module, [line], lock=lock_out)
        elif p['action'] == 'renew':
            if not check:
                _lock.renew(lock_dir, name, p['token'], p['lease'])
            changed = False  # a lease renewal is bookkeeping, not a change of the system
        elif p['action'] == 'release':
            current = _lock.read(lock_dir, name)
            if _lock.holds(current, p['token']) and not check:
                out['released'] = _lock.release(lock_dir, name, p['token'])
        elif p['action'] == 'break':
            current = _lock.read(lock_dir, name)
            changed = current is not None
            if changed and not check:
                out['broken'] = _lock.break_lock(lock_dir, name, p['actor'], p['reason'], force=p['force'])
        _state(lock_dir, name, p['action'], out)
    except _lock.LockError as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))
    except (IOError, OSError) as exc:
        module.fail_json(msg='lock %s in %s: %s' % (name, lock_dir, exc), exception=traceback.format_exc())
    module.exit_json(changed=changed, lock=out)


if __name__ == '__main__':
    main()
