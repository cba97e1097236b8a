# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""pgBackRest from the modules: its command line (run as the cluster's owner, the password in
PGPASSWORD only), its configuration file, `info --output=json` read into plain facts, and the
archived WAL of a stanza listed per timeline with the segments missing from it named.

The collection orchestrates pgBackRest; it does not reimplement it. The WAL listing reads the
repository's folder layout (archive/<stanza>/<archive id>/<first 16 hex>/<segment>-<sha1>[.ext])
only to name a gap before a restore would fail on it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import re
import subprocess

SEGMENT_RE = re.compile(r'([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(?:-[0-9a-f]{40})?(?:\.[a-z0-9]+)?')


class PgBackRestError(Exception):
    pass


def as_owner(argv, os_user):
    """argv as the cluster's owner: through runuser when the module runs as root (PostgreSQL
    refuses root; pgBackRest must write the repository as the user whose server runs archive-push)."""
    if os_user and os.geteuid() == 0 and os_user != 'root':
        return ['runuser', '-u', os_user, '--'] + list(argv)
    return list(argv)


def argv_for(binary, config, stanza, args, os_user=None):
    """The command line of a pgBackRest command, run as the cluster's owner."""
    return as_owner([binary, '--config=%s' % config] + (['--stanza=%s' % stanza] if stanza else []) + list(args), os_user)


def parse_time(text, what='target'):
    """A timestamp with its time zone ("2026-11-25 14:02:59+00") as an aware datetime; ValueError
    saying why otherwise (a time without a zone would recover or search the wrong hour)."""
    import datetime

    try:
        value = datetime.datetime.fromisoformat(text.strip().replace(' UTC', '+00:00'))
    except ValueError:
        raise ValueError('%s %r is not a timestamp (2026-11-25 14:02:59+00)' % (what, text))
    if value.tzinfo is None:
        raise ValueError('%s %r has no time zone: give one (2026-11-25 14:02:59+00), a recovery to the wrong hour '
                         'loses or keeps the wrong trades' % (what, text))
    return value


def run(binary, config, stanza, args, os_user=None, password=None, timeout=None):
    env = dict(os.environ)
    env.pop('PGPASSWORD', None)
    if password:
        env['PGPASSWORD'] = password
    argv = argv_for(binary, config, stanza, args, os_user)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except OSError as exc:
        raise PgBackRestError('cannot run %s: %s (install pgbackrest)' % (argv[0], exc))
    except subprocess.TimeoutExpired:
        raise PgBackRestError('pgbackrest %s did not finish within %s s' % (' '.join(args[:1]), timeout))
    return proc.returncode, proc.stdout, proc.stderr


def error_text(stdout, stderr):
    """pgBackRest's WARN lines (where it says why, e.g. why it could not connect) and its ERROR lines, else the
    last lines it printed. "[056] unable to find primary cluster" alone hides the pg_hba.conf refusal that the
    WARN line before it names (issue 31)."""
    lines = [ln.strip() for ln in (stderr + '\n' + stdout).splitlines() if ln.strip()]
    warnings = [ln for ln in lines if 'WARN:' in ln][-3:]
    errors = [ln for ln in lines if 'ERROR:' in ln]
    return ' '.join(warnings + errors if errors else lines[-3:])[:1500]


def owner_ids(os_user):
    entry = pwd.getpwnam(os_user)
    return entry.pw_uid, entry.pw_gid


def config_text(stanza, repo_path, pg_path, pg_port, pg_socket_path, pg_user, retention_full, compress_type,
                log_path, lock_path, process_max, archive_timeout=None):
    """The configuration file, one stanza. Retention counts full backups (pgBackRest keeps the WAL
    every retained backup needs and never expires the newest backup)."""
    for name, value in (('repo_path', repo_path), ('pg_path', pg_path), ('pg_socket_path', pg_socket_path),
                        ('pg_user', pg_user), ('compress_type', compress_type), ('log_path', log_path),
                        ('lock_path', lock_path), ('stanza', stanza)):
        if value is not None and any(c in str(value) for c in '\n\r\0'):
            # a line break would add settings of its own to the file pgBackRest reads as its owner
            raise PgBackRestError('%s %r refused: a configuration value holds no line break; nothing was changed'
                                  % (name, value))
    lines = ['# written by tradeops.dr (pgbackrest role); changes here are overwritten', '[global]',
             'repo1-path=%s' % repo_path,
             'repo1-retention-full=%d' % retention_full,
             'compress-type=%s' % compress_type,
             'log-path=%s' % log_path,
             'lock-path=%s' % lock_path,
             'log-level-console=warn',
             'log-level-file=info',
             'process-max=%d' % process_max,
             'start-fast=y',
             '',
             '[%s]' % stanza,
             'pg1-path=%s' % pg_path,
             'pg1-port=%d' % pg_port,
             'pg1-user=%s' % pg_user]
    if pg_socket_path:
        lines.append('pg1-socket-path=%s' % pg_socket_path)
    return '\n'.join(lines) + '\n'


def info(binary, config, stanza, os_user=None):
    """The stanza's facts from `info --output=json`: status, backups (oldest first) and archive."""
    rc, out, err = run(binary, config, stanza, ['info', '--output=json'], os_user)
    if rc != 0:
        raise PgBackRestError('pgbackrest info failed: %s' % error_text(out, err))
    try:
        data = json.loads(out)
    except ValueError:
        raise PgBackRestError('pgbackrest info printed no JSON: %s' % out[:300])
    entry = next((s for s in data if s.get('name') == stanza), None)
    if entry is None:
        raise PgBackRestError('stanza %s is not in the repository (run the pgbackrest role with action stanza)' % stanza)
    return facts(entry)


def facts(entry):
    backups = []
    for b in entry.get('backup', []):
        backups.append(dict(
            label=b.get('label'), type=b.get('type'), prior=b.get('prior'),
            start=(b.get('timestamp') or {}).get('start'), stop=(b.get('timestamp') or {}).get('stop'),
            wal_start=(b.get('archive') or {}).get('start'), wal_stop=(b.get('archive') or {}).get('stop'),
            lsn_start=(b.get('lsn') or {}).get('start'), lsn_stop=(b.get('lsn') or {}).get('stop'),
            size=(b.get('info') or {}).get('size'), repo_size=((b.get('info') or {}).get('repository') or {}).get('size'),
            error=b.get('error', False)))
    backups.sort(key=lambda b: b['stop'] or 0)
    archive = [dict(id=a.get('id'), min=a.get('min'), max=a.get('max')) for a in entry.get('archive', [])]
    status = entry.get('status') or {}
    return dict(status=dict(code=status.get('code'), message=status.get('message')), backups=backups, archive=archive,
                cipher=entry.get('cipher'))


def parse_segment(name):
    m = SEGMENT_RE.fullmatch(name)
    if not m:
        return None
    return int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)


def segment_name(tli, log, seg):
    return '%08X%08X%08X' % (tli, log, seg)


def archived_segments(repo_path, stanza):
    """{timeline: sorted [(log, seg)]} of every WAL segment in the repository (every archive id)."""
    base = os.path.join(repo_path, 'archive', stanza)
    out = {}
    if not os.path.isdir(base):
        return out
    for archive_id in os.listdir(base):
        folder = os.path.join(base, archive_id)
        if not os.path.isdir(folder):
            continue
        for sub in os.listdir(folder):
            subdir = os.path.join(folder, sub)
            if not (os.path.isdir(subdir) and re.fullmatch(r'[0-9A-F]{16}', sub)):
                continue
            for name in os.listdir(subdir):
                parsed = parse_segment(name)
                if parsed and '.partial' not in name:
                    out.setdefault(parsed[0], set()).add(parsed[1:])
    return dict((tli, sorted(v)) for tli, v in out.items())


def missing_segments(segments, start, stop, segments_per_log=256):
    """Names of the segments between start and stop (names, inclusive, one timeline) that are not
    archived. segments_per_log: 4 GiB / wal_segment_size (256 for the default 16 MiB)."""
    a, b = parse_segment(start), parse_segment(stop)
    if a is None or b is None:
        return []
    tli = a[0]
    have = set(segments.get(tli, []))
    missing = []
    log, seg = a[1], a[2]
    while (log, seg) <= (b[1], b[2]):
        if (log, seg) not in have:
            missing.append(segment_name(tli, log, seg))
            if len(missing) > 50:
                break
        seg += 1
        if seg >= segments_per_log:
            log, seg = log + 1, 0
    return missing


def missing_after(segments, start, segments_per_log=256):
    """The segments missing from `start` (a backup's first WAL) to the end of its timeline, and
    within every later timeline from its first archived segment to its last."""
    first_tli = parse_segment(start)[0]
    missing = []
    for tli, have in sorted(segments.items()):
        if tli < first_tli or not have:
            continue
        lo = start if tli == first_tli else segment_name(tli, *have[0])
        missing += missing_segments(segments, lo, segment_name(tli, *have[-1]), segments_per_log)
    return missing


def argument_spec():
    """The options of doc fragment tradeops.dr.pgbackrest."""
    return dict(stanza=dict(type='str', required=True), config=dict(type='path', required=True),
                repo_path=dict(type='path'), os_user=dict(type='str', default='postgres'),
                binary=dict(type='str', default='pgbackrest'))
