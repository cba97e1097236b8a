# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""git and DVC for the rollback modules (runbook 001): the history of a file, its content at
a revision, whether the work tree is dirty, what a .dvc file says its output is, and
dvc checkout/pull. Commands run without a shell; failures raise VcsError with the command,
its exit code and its error output."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import re
import subprocess
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with Ansible
    yaml = None

REV_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._/@{}~^+-]{0,199}')


class VcsError(Exception):
    """A git or DVC command failed; the message names it and gives its error."""


# git never runs a hook or an fsmonitor of the tree it works in
GIT_SAFETY = ['-c', 'core.hooksPath=/dev/null', '-c', 'core.fsmonitor=false']


def _as_owner_of(path, env):
    """Run as root in a tree another account owns: the command runs as that account (its uid, gid, no
    supplementary groups, its HOME), so that what the tree's configuration or hooks can run, and every
    file the command writes, stays that account's - never root's. (preexec_fn, env) for subprocess."""
    if os.geteuid() != 0:
        return None, env
    st = os.stat(path)
    if st.st_uid == 0:
        return None, env
    try:
        home = pwd.getpwuid(st.st_uid).pw_dir
    except KeyError:
        home = '/nonexistent'
    env = dict(env if env is not None else os.environ, HOME=home)
    env.pop('GIT_DIR', None)

    def drop():
        os.setgroups([])
        os.setgid(st.st_gid)
        os.setuid(st.st_uid)
    return drop, env


def run(argv, cwd, timeout=600, env=None):
    if argv and argv[0] == 'git':
        argv = ['git'] + GIT_SAFETY + list(argv[1:])
    preexec, env = _as_owner_of(cwd, env)
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, check=False, env=env,
                              preexec_fn=preexec)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VcsError('%s could not run in %s: %s' % (' '.join(argv), cwd, exc))
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).decode('utf-8', 'replace').strip()
        raise VcsError('%s failed in %s (rc=%d): %s' % (' '.join(argv), cwd, proc.returncode, err[-1500:]))
    return proc.stdout


def check_rev(rev):
    """A revision (commit, tag, branch, HEAD~1) that cannot be mistaken for an option."""
    if not isinstance(rev, str) or not REV_RE.fullmatch(rev):
        raise VcsError('revision %r refused: expected a commit, tag or branch name' % (rev,))
    return rev


# --------------------------------------------------------------------------- git

def toplevel(path):
    return run(['git', 'rev-parse', '--show-toplevel'], cwd=path).decode().strip()


def head(repo):
    return run(['git', 'rev-parse', 'HEAD'], cwd=repo).decode().strip()


def resolve(repo, rev):
    return run(['git', 'rev-parse', '--verify', '--quiet', '%s^{commit}' % check_rev(rev)], cwd=repo).decode().strip()


def dirty(repo):
    """Tracked files with changes (untracked files do not count)."""
    out = run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=repo).decode()
    return [line[3:] for line in out.splitlines() if line.strip()]


def history(repo, relpath, limit=50):
    """Commits that changed relpath, newest first: [(sha, subject)]."""
    out = run(['git', 'log', '-n', str(limit), '--format=%H%x00%s', '--', relpath], cwd=repo).decode()
    return [tuple(line.split('\x00', 1)) for line in out.splitlines() if line]


def show(repo, rev, relpath):
    """Content (bytes) of relpath at rev."""
    return run(['git', 'show', '%s:%s' % (resolve(repo, rev), relpath)], cwd=repo)


def previous_version(repo, relpath, current_content):
    """The version before the one now in the work tree (runbook 001: git log of the .dvc file,
    then HEAD~1): find the newest commit holding the current content, then the first older
    commit whose content differs. When no commit holds the current content (a local edit), the
    newest commit that differs. Returns (sha, subject) or (None, None)."""
    versions = []
    for sha, subject in history(repo, relpath):
        try:
            versions.append((sha, subject, show(repo, sha, relpath)))
        except VcsError:
            continue  # deleted in that commit
    start = next((i for i, v in enumerate(versions) if v[2] == current_content), 0)
    for sha, subject, content in versions[start:]:
        if content != current_content:
            return sha, subject
    return None, None


def checkout_file(repo, rev, relpath):
    run(['git', 'checkout', resolve(repo, rev), '--', relpath], cwd=repo)


# --------------------------------------------------------------------------- DVC

def dvc_outs(dvc_file):
    """The outputs a .dvc file tracks: [{'path', 'md5', 'size', 'is_dir'}] (paths relative to the
    .dvc file's folder)."""
    if yaml is None:
        raise VcsError('PyYAML is required to read %s' % dvc_file)
    try:
        with open(dvc_file) as handle:
            data = yaml.safe_load(handle) or {}
    except (IOError, OSError, yaml.YAMLError) as exc:
        raise VcsError('cannot read %s: %s' % (dvc_file, exc))
    outs = []
    for out in data.get('outs') or []:
        md5 = out.get('md5') or ''
        outs.append(dict(path=out.get('path'), md5=md5, size=out.get('size'), is_dir=md5.endswith('.dir')))
    if not outs:
        raise VcsError('%s tracks no output (no outs:)' % dvc_file)
    return outs


def dvc_command():
    """`dvc` from PATH, else the one installed beside the Python that runs the module (a venv
    used as ansible_python_interpreter, not activated: its bin folder is not on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), 'dvc')
    for folder in os.environ.get('PATH', '').split(os.pathsep):
        if folder and os.access(os.path.join(folder, 'dvc'), os.X_OK):
            return 'dvc'
    return beside if os.access(beside, os.X_OK) else 'dvc'


def dvc_env(env=None):
    """The environment a DVC command runs in: without DVC's usage analytics, which otherwise writes a
    report and starts a daemon that posts it to analytics.dvc.org - a recovery sends nothing to a third
    party, whatever the repository's core.analytics says."""
    return dict(env if env is not None else os.environ, DVC_NO_ANALYTICS='1')


def dvc(repo, *args, **kw):
    return run([dvc_command()] + list(args), cwd=repo, timeout=kw.get('timeout', 1800),
               env=dvc_env()).decode('utf-8', 'replace')


def dvc_restore(repo, target, pull=True, timeout=1800):
    """dvc checkout --force of target; when the cache lacks the data, dvc pull it from the
    remote. Returns the commands that ran."""
    ran = []
    try:
        dvc(repo, 'checkout', '--force', target, timeout=timeout)
        ran.append('dvc checkout --force %s' % target)
        return ran
    except VcsError as exc:
        if not pull:
            raise
        ran.append('dvc checkout --force %s (failed: %s)' % (target, str(exc)[-200:]))
    dvc(repo, 'pull', '--force', target, timeout=timeout)
    ran.append('dvc pull --force %s' % target)
    return ran


def dvc_cloud_status(repo, target, remote=None):
    """What the DVC remote lacks of target's outputs, {path: state} from `dvc status --cloud --json`
    ({}: the remote holds every output the .dvc file records)."""
    args = ['status', '--cloud', '--json'] + (['--remote', remote] if remote else []) + [target]
    out = dvc(repo, *args).strip()
    start = out.find('{')
    try:
        data = json.loads(out[start:]) if start >= 0 else {}
    except ValueError:
        raise VcsError('dvc status --cloud of %s printed what is not JSON: %s' % (target, out[-300:]))
    return data if isinstance(data, dict) else {}


def dvc_push(repo, target, remote=None, timeout=1800):
    """dvc push of target's outputs (to remote, or the repository's default remote); the command run."""
    args = ['push'] + (['--remote', remote] if remote else []) + [target]
    dvc(repo, *args, timeout=timeout)
    return 'dvc %s' % ' '.join(args)
