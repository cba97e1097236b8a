#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_pitr
short_description: Point-in-time recovery with pgBackRest into a new data directory, verified before it is swapped in
version_added: 0.2.0
description:
  - V(plan) reads the stanza (C(pgbackrest info)), picks the backup to start from (the newest that ended before
    the target), and refuses - before any change - a target earlier than the end of the oldest backup, an
    unknown backup set, and a gap in the archived WAL between that backup and the end of its timeline (naming
    the missing segments - a recovery would stop there and silently lose what follows).
  - V(restore) runs C(pgbackrest restore) into O(restore_dir) (new; an existing non-empty folder is never
    written), starts that copy as a second cluster on O(spare_port) (127.0.0.1, archiving off), waits until it
    has replayed to the target and left recovery, and verifies it - O(required_tables) present, every table
    read, O(min_row_counts), and O(compare_queries) run on the restored and on the live server side by side (the
    rows a recovery gives back, and those after the target it cannot) - then stops it. Nothing of the live
    server changes.
  - V(swap) puts the verified copy in place of O(data_dir) while the server is stopped (the role stops and
    starts it through service control) - the old data directory is renamed aside, never deleted - and turns
    archiving back on for the new timeline.
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [plan, restore, swap]
  target_type:
    description:
      - V(latest) replays every archived WAL; V(time) stops at O(target) (a timestamp with its time zone,
        C(2026-11-25 14:02:59+00)); V(name) at a restore point made by C(pg_create_restore_point); V(lsn) at an LSN;
        V(immediate) at the end of the backup itself.
    type: str
    default: latest
    choices: [latest, time, name, lsn, immediate]
  target:
    description: The recovery target for V(time), V(name) and V(lsn).
    type: str
  backup_set:
    description: A backup label to start from; default the newest that ended before the target.
    type: str
  data_dir:
    description: The live cluster's data directory (V(swap)).
    type: path
  restore_dir:
    description: The new data directory the restore writes (V(restore), V(swap)).
    type: path
  spare_port:
    description: Port of the verification cluster on 127.0.0.1 (V(restore)).
    type: int
  socket_dir:
    description:
      - Unix socket folder of the verification cluster.
      - Default a private folder the module makes for the copy (owned by O(os_user), removed afterwards) - the parent
        of O(restore_dir) may belong to root, where the database's account cannot create its socket and lock file.
    type: path
  server_settings:
    description: Server settings the cluster needs to start (C(shared_preload_libraries=timescaledb)), given with C(-c).
    type: dict
    default: {}
  database:
    description: Database verified in the restored copy.
    type: str
  required_tables:
    description: Tables (C(schema.table)) that must be in the restored copy.
    type: list
    elements: str
    default: []
  min_row_counts:
    description: Tables and the fewest rows each must hold in the restored copy.
    type: dict
    default: {}
  compare_queries:
    description:
      - Name -> a query returning one number, run in O(database) on the restored copy and on the live server (when
        it answers), in read-only sessions (a query that writes fails). Report-only - the rows a recovery gives back
        and those after the target it loses.
    type: dict
    default: {}
  ready_timeout:
    description: Seconds the verification cluster may take to replay to the target and leave recovery.
    type: int
    default: 900
  wal_segment_mb:
    description: The server's WAL segment size in MiB.
    type: int
    default: 16
extends_documentation_fragment:
  - tradeops.dr.postgres
  - tradeops.dr.pgbackrest
attributes:
  check_mode:
    support: full
    description: V(plan) runs; V(restore) and V(swap) return the plan and their refusals, and change nothing.
  diff_mode:
    support: none
    description: The plan and the verification are returned.
  idempotent:
    support: none
    description: A restore writes a new directory each time it is asked to; V(swap) refuses to run twice (its copy is gone).
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Where would a recovery to just before the bad DELETE start?
  tradeops.dr.pg_pitr:
    action: plan
    stanza: trading
    config: /etc/pgbackrest/pgbackrest.conf
    target_type: time
    target: "2026-11-25 14:02:59+00"

- name: Restore it beside the live cluster and verify it
  tradeops.dr.pg_pitr:
    action: restore
    stanza: trading
    config: /etc/pgbackrest/pgbackrest.conf
    target_type: time
    target: "2026-11-25 14:02:59+00"
    restore_dir: /var/lib/postgresql/15/main.pitr
    spare_port: 55432
    server_settings: {shared_preload_libraries: timescaledb}
    database: trading
    required_tables: [public.trades]
    compare_queries:
      trades_after_target: "SELECT count(*) FROM trades WHERE ts > '2026-11-25 14:02:59+00'"
    login_user: postgres
'''

RETURN = r'''
plan:
  description: The backup chosen and the recovery asked for.
  returned: always
  type: dict
  sample: {backup: 20261125-140000F, backup_stop: "2026-11-25T14:00:05Z", target_type: time, target: "2026-11-25 14:02:59+00"}
restore:
  description: The restored copy - its folder, the seconds the pgbackrest restore and the replay took, the row counts of every table, the compared queries.
  returned: for restore (not in check mode)
  type: dict
  sample: {restore_dir: /var/lib/postgresql/15/main.pitr, counts: {public.trades: 1200}, compared: {trades_after_target: {restored: 0, live: 42}}}
swap:
  description: Where the old data directory was put aside and which copy replaced it.
  returned: for swap (not in check mode)
  type: dict
  sample: {data_dir: /var/lib/postgresql/15/main, aside: /var/lib/postgresql/15/main.pre_pitr_20261125T140500Z}
'''

import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _manifest, _pgbackrest, _postgres, _probe

MARKER = '.tradeops-pitr.json'


class Refused(Exception):
    pass


def target_epoch(text):
    try:
        return _pgbackrest.parse_time(text).timestamp()
    except ValueError as exc:
        raise Refused('%s; nothing was changed' % exc)


def _lsn(text):
    hi, _sep, lo = (text or '').partition('/')
    try:
        return (int(hi, 16) << 32) + int(lo, 16)
    except ValueError:
        raise Refused('target %r is not an LSN (0/3000060); nothing was changed' % text)


def plan(p):
    facts = _pgbackrest.info(p['binary'], p['config'], p['stanza'], p['os_user'])
    good = [b for b in facts['backups'] if not b['error']]
    if not good:
        raise Refused('stanza %s has no backup to recover from; nothing was changed' % p['stanza'])
    kind, target = p['target_type'], p['target']
    if kind in ('time', 'name', 'lsn') and not target:
        raise Refused('target_type %s needs a target; nothing was changed' % kind)
    candidates = good
    if kind == 'time':
        t = target_epoch(target)
        candidates = [b for b in good if b['stop'] <= t]
        if not candidates:
            raise Refused('the target %s is before the end of the oldest backup (%s, ended %s): no backup can be '
                          'recovered to it; nothing was changed' % (target, good[0]['label'], _manifest.utc_iso(good[0]['stop'])))
    elif kind == 'lsn':
        want = _lsn(target)
        candidates = [b for b in good if _lsn(b['lsn_stop']) <= want]
        if not candidates:
            raise Refused('the target LSN %s is before the end of the oldest backup (%s, %s); nothing was changed'
                          % (target, good[0]['label'], good[0]['lsn_stop']))
    chosen = candidates[-1]
    if p['backup_set']:
        chosen = next((b for b in candidates if b['label'] == p['backup_set']), None)
        if chosen is None:
            raise Refused('backup set %s is not in stanza %s or ends after the target (usable: %s); nothing was changed'
                          % (p['backup_set'], p['stanza'], ', '.join(b['label'] for b in candidates)))
    missing = []
    if p['repo_path']:
        segments = _pgbackrest.archived_segments(p['repo_path'], p['stanza'])
        per_log = 4096 // p['wal_segment_mb']
        if kind == 'immediate':
            missing = _pgbackrest.missing_segments(segments, chosen['wal_start'], chosen['wal_stop'], per_log)
        else:
            missing = _pgbackrest.missing_after(segments, chosen['wal_start'], per_log)
    if missing:
        raise Refused('WAL missing from the archive after backup %s: %s - a recovery would stop at the first of them and '
                      'lose every transaction after it; nothing was changed' % (chosen['label'], ', '.join(missing[:10])))
    return dict(backup=chosen['label'], backup_type=chosen['type'], backup_stop=_manifest.utc_iso(chosen['stop']),
                wal_start=chosen['wal_start'], target_type=kind, target=target, stanza=p['stanza'])


def _major(data_dir):
    try:
        with open(os.path.join(data_dir, 'PG_VERSION')) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _pg_ctl(p, args, timeout=None):
    binary = _postgres.server_binary('pg_ctl', p['pg_bin_dir'], _major(args[args.index('-D') + 1]))
    proc = subprocess.run(_pgbackrest.as_owner([binary] + args, p['os_user']), capture_output=True, text=True, timeout=timeout, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


# A server setting's name as PostgreSQL spells them (work_mem, timescaledb.max_background_workers).
SETTING_RE = re.compile(r'[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?')
_REASON_RE = re.compile(r'\b(FATAL|PANIC|ERROR):')


def _log_tail(path, n=8):
    """The log's last n lines, after the lines that say why the server stopped (FATAL, PANIC, ERROR):
    the shutdown lines that follow a failure must not push its reason out of the message."""
    try:
        with open(path, errors='replace') as handle:
            lines = [ln.strip() for ln in handle.readlines() if ln.strip()]
    except OSError:
        return '(no log)'
    tail = lines[-n:]
    reasons = [ln for ln in lines[:-n] if _REASON_RE.search(ln)][-3:]
    return ' | '.join(reasons + (['...'] if reasons else []) + tail)


def _left(path):
    """What a failure leaves on disk, with its size, for the person who decides what to do with it."""
    size = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return 'The restored copy is left for inspection: %s (%.1f MiB); remove it when it is no longer needed.' % (
        path, size / 1048576.0)


def one_statement(statement):
    """The statement with a trailing ';' removed; ValueError when it holds more than one statement. Quoted
    strings ('', E'', $tag$), quoted identifiers and comments are skipped, so a ';' inside them counts not."""
    text, i, n = statement.strip(), 0, len(statement.strip())
    while i < n:
        c = text[i]
        if c == "'" or c == '"':
            j = i + 1
            backslash = c == "'" and i > 0 and text[i - 1] in 'eE' and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == '_'))
            while j < n:
                if backslash and text[j] == '\\':
                    j += 2
                    continue
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                raise ValueError('an unterminated quote')
            i = j + 1
        elif text.startswith('--', i):
            j = text.find('\n', i)
            i = n if j < 0 else j + 1
        elif text.startswith('/*', i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith('/*', j):
                    depth, j = depth + 1, j + 2
                elif text.startswith('*/', j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                raise ValueError('an unterminated comment')
            i = j
        elif c == '$':
            m = re.match(r'\$([A-Za-z_][A-Za-z0-9_]*)?\$', text[i:])
            if m and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == '_')):
                end = text.find(m.group(0), i + len(m.group(0)))
                if end < 0:
                    raise ValueError('an unterminated dollar quote')
                i = end + len(m.group(0))
            else:
                i += 1
        elif c == ';':
            if text[i + 1:].strip():
                raise ValueError('more than one statement')
            return text[:i]
        else:
            i += 1
    return text


def _tables(conn):
    """Every table the copy holds, TimescaleDB's chunks included (each is read, so a damaged chunk
    is named) - but not TimescaleDB's internal compressed hypertables: they cannot be read directly
    ("chunk ... has no dimension slices"); their chunks are in the list, and the user's hypertable
    reads them through decompression."""
    tables = [r[0] for r in _postgres.query(conn, """
        SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1""")]
    if 'timescaledb' not in _postgres.extensions(conn):
        return tables
    internal = set(r[0] for r in _postgres.query(conn, """
        SELECT schema_name || '.' || table_name FROM _timescaledb_catalog.hypertable WHERE compression_state = 2"""))
    return [t for t in tables if t not in internal]


def _read_only(conn):
    """Every later statement of this session is read-only: the verification and the compare queries (written by
    the operator) can read, never write - not on the copy, and above all not on the damaged live server."""
    with conn.cursor() as cur:
        cur.execute('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY')
    return conn


def _compare(conn, name, statement):
    """One statement, in a read-only transaction that is rolled back whatever the statement did: the
    operator's query can read, never write (SET TRANSACTION READ WRITE after a first query is refused by
    PostgreSQL, and a second statement is refused here before anything runs)."""
    try:
        with conn.cursor() as cur:
            cur.execute('BEGIN TRANSACTION READ ONLY')
            try:
                cur.execute('SELECT 1')  # the transaction's first query: its read-only mode is now fixed
                cur.execute(one_statement(statement))
                return cur.fetchall()[0][0] if cur.description else None
            finally:
                cur.execute('ROLLBACK')
    except Exception as exc:  # the operator's query: its error is reported, whatever it is
        raise _postgres.PostgresError('compare query %s failed (they run read-only): %s'
                                      % (name, str(exc).strip().splitlines()[0]))


def verify_copy(p, port):
    params = dict(p, login_host='127.0.0.1', login_port=port)
    conn = _read_only(_postgres.Connection(params).connect(p['database']))
    problems, counts = [], {}
    try:
        tables = _tables(conn)
        for qualified in tables:
            schema, table = qualified.split('.', 1)
            try:
                n = _postgres.query(conn, _postgres.sql.SQL('SELECT count(*) FROM {}').format(
                    _postgres.ident(schema, table)))[0][0]
            except Exception as exc:  # a table that cannot be read is named, whatever the error
                problems.append('%s cannot be read: %s' % (qualified, str(exc).strip().splitlines()[0]))
                continue
            if not schema.startswith('_timescaledb'):
                counts[qualified] = n
        for qualified in p['required_tables']:
            if qualified not in tables:
                problems.append('%s is missing' % qualified)
        for qualified, least in sorted(p['min_row_counts'].items()):
            if counts.get(qualified, -1) < int(least):
                problems.append('%s has %s rows, expected at least %s' % (qualified, counts.get(qualified), least))
        compared = {}
        for name, statement in sorted(p['compare_queries'].items()):
            compared[name] = dict(restored=_compare(conn, name, statement), live=None)
    finally:
        conn.close()
    if p['compare_queries']:
        try:
            live = _read_only(_postgres.Connection(p).connect(p['database']))
        except _postgres.PostgresError as exc:
            for entry in compared.values():
                entry['live'] = 'live server not reachable: %s' % exc
        else:
            try:
                for name, statement in sorted(p['compare_queries'].items()):
                    compared[name]['live'] = _compare(live, name, statement)
            finally:
                live.close()
    return counts, compared, problems


def flush_wal(p, timeout=120):
    """When the live server still answers, switch to a new WAL segment and wait until the archive
    has it: the recovery then reaches everything the server wrote up to now (the target may lie in
    the segment being written). A server that is down has nothing more to give: None."""
    try:
        conn = _postgres.Connection(p).connect()
    except _postgres.PostgresError:
        return None
    try:
        if _postgres.query(conn, 'SELECT pg_is_in_recovery()')[0][0]:
            return None
        segment = _postgres.query(conn, 'SELECT pg_walfile_name(pg_switch_wal())')[0][0]

        def archived():
            last, failed = _postgres.query(conn, 'SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver')[0]
            return bool(last) and last[:24] >= segment, 'last archived %s, last failed %s' % (last, failed)
        waited = _probe.wait_until(archived, timeout, max_delay=0.5)
        if not waited['ok']:
            raise Refused('the live server switched to a new WAL segment but %s was not archived within %d s (%s): fix '
                          'archiving first; nothing was changed' % (segment, timeout, waited['last_detail']))
        return segment
    finally:
        conn.close()


def restore(module, p, the_plan):
    rdir = p['restore_dir']
    if not rdir or not p['spare_port'] or not p['database']:
        raise Refused('restore needs restore_dir, spare_port and database; nothing was changed')
    rdir = os.path.realpath(rdir)
    if os.path.exists(rdir) and (not os.path.isdir(rdir) or os.listdir(rdir)):
        raise Refused('%s exists and is not an empty folder: a restore never writes over anything; nothing was changed'
                      % rdir)
    if module.check_mode:
        return None
    flushed = flush_wal(p)
    uid, gid = _pgbackrest.owner_ids(p['os_user'])
    log = rdir + '.log'
    # The folder around the copy may belong to the database's account: the log is created, never
    # opened through a link planted there, and its owner is set on the open file (not by path).
    try:
        os.close(_manifest.create_private(log, 0o600, (uid, gid), append=True))
    except OSError as exc:
        raise Refused('cannot create the restore log %s: %s; nothing was changed' % (log, exc.strerror or exc))
    if not os.path.isdir(rdir):
        os.mkdir(rdir, 0o700)
    _manifest.set_owner_mode(rdir, None, (uid, gid))
    args = ['restore', '--set=%s' % the_plan['backup'], '--pg1-path=%s' % rdir, '--archive-mode=off']
    kind = p['target_type']
    if kind in ('time', 'name', 'lsn'):
        args += ['--type=%s' % kind, '--target=%s' % p['target'], '--target-action=promote']
    elif kind == 'immediate':
        args += ['--type=immediate', '--target-action=promote']
    t0 = time.time()
    rc, out, err = _pgbackrest.run(p['binary'], p['config'], p['stanza'], args, p['os_user'], None, None)
    if rc != 0:
        raise _postgres.LeftBehind('pgbackrest restore into %s failed (rc %d): %s; the folder is left for inspection, the '
                                   'live server was not touched' % (rdir, rc, _pgbackrest.error_text(out, err)))
    restore_s = time.time() - t0
    # The copy's socket goes to a folder made for it (private, owned by the database's account): the
    # data directory's parent may be root's and not writable by that account.
    sock = p['socket_dir'] or tempfile.mkdtemp(prefix='tradeops-pitr-')
    if not p['socket_dir']:
        _manifest.set_owner_mode(sock, None, (uid, gid))
    try:
        return _verify_restored(p, the_plan, rdir, log, sock, flushed, restore_s)
    finally:
        if not p['socket_dir']:
            shutil.rmtree(sock, ignore_errors=True)


def start_options(port, sock, settings):
    """pg_ctl's -o for the verification cluster. pg_ctl hands it to /bin/sh: every word is quoted
    here (the setting names were checked against SETTING_RE, values with a line break refused)."""
    words = ['-p', str(port), '-k', sock, '-c', 'listen_addresses=127.0.0.1', '-c', 'archive_mode=off',
             # syncfs: the restored files are flushed with one syncfs() per file system instead of an fsync
             # per file before the replay (PostgreSQL 14+, Linux)
             '-c', 'recovery_init_sync_method=syncfs']
    for name, value in sorted(settings.items()):
        words += ['-c', '%s=%s' % (name, value)]
    return ' '.join(shlex.quote(w) for w in words)


def _verify_restored(p, the_plan, rdir, log, sock, flushed, restore_s):
    opts = start_options(p['spare_port'], sock, p['server_settings'])
    t1 = time.time()
    rc, out = _pg_ctl(p, ['-D', rdir, '-l', log, '-o', opts, '-w', '-t', str(p['ready_timeout']), 'start'],
                      timeout=p['ready_timeout'] + 30)
    if rc != 0:
        raise _postgres.LeftBehind('the restored copy in %s did not start (%s); its log: %s. %s The live server was '
                                   'not touched' % (rdir, out[-300:], _log_tail(log), _left(rdir)))
    started_s = time.time() - t1
    try:
        params = dict(p, login_host='127.0.0.1', login_port=p['spare_port'])

        def promoted():
            try:
                conn = _postgres.Connection(params).connect()
                try:
                    return not _postgres.query(conn, 'SELECT pg_is_in_recovery()')[0][0], 'in recovery'
                finally:
                    conn.close()
            except Exception as exc:  # pylint: disable=broad-except  # connect or query: the copy may be dying
                if not _running(rdir):  # e.g. "recovery ended before configured recovery target was reached"
                    raise _postgres.LeftBehind('the restored copy in %s stopped before it left recovery: %s. %s The '
                                               'live server was not touched' % (rdir, _log_tail(log, 4), _left(rdir)))
                return False, str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        waited = _probe.wait_until(promoted, p['ready_timeout'], max_delay=0.5)
        if not waited['ok']:
            raise _postgres.LeftBehind('the restored copy in %s was still replaying WAL after %s s (log %s)'
                                       % (rdir, p['ready_timeout'], log))
        replay_s = time.time() - t1
        t2 = time.time()
        try:
            counts, compared, problems = verify_copy(p, p['spare_port'])
        except _postgres.PostgresError as exc:
            raise _postgres.LeftBehind('the restored copy in %s was not verified: %s; it is left for inspection, the live '
                                       'server was not touched' % (rdir, exc))
        verify_s = time.time() - t2
    finally:
        t3 = time.time()
        _pg_ctl(p, ['-D', rdir, '-m', 'fast', '-w', 'stop'], timeout=120)
        stop_s = time.time() - t3
    result = dict(restore_dir=rdir, log=log, restore_seconds=round(restore_s, 2), replay_seconds=round(replay_s, 2),
                  start_seconds=round(started_s, 2), verify_seconds=round(verify_s, 2), stop_seconds=round(stop_s, 2),
                  wal_flushed=flushed,
                  counts=counts, compared=compared, problems=problems, verified=not problems,
                  verified_at=_manifest.utc_iso(), plan=the_plan)
    if problems:
        raise _postgres.LeftBehind('the restored copy in %s did not verify: %s; it is left for inspection, the live server '
                                   'was not touched' % (rdir, '; '.join(problems)))
    _manifest.write_json_atomic(rdir + MARKER, result)
    return result


def _running(data_dir):
    """The pid of the postmaster running on data_dir, or None."""
    pid = _probe.pidfile_pid(os.path.join(data_dir, 'postmaster.pid'))
    return pid if _probe.pid_alive(pid) else None


def swap(module, p):
    data_dir, rdir = p['data_dir'], p['restore_dir']
    if not data_dir or not rdir:
        raise Refused('swap needs data_dir and restore_dir; nothing was changed')
    data_dir, rdir = os.path.realpath(data_dir), os.path.realpath(rdir)
    record, _why = _manifest.read_json(rdir + MARKER)
    if record is None:
        raise Refused('%s was not restored and verified by this module (no %s beside it); nothing was changed'
                      % (rdir, os.path.basename(rdir + MARKER)))
    if not record.get('verified') or not os.path.isdir(rdir):
        raise Refused('%s is not a verified restored copy; nothing was changed' % rdir)
    if os.path.dirname(rdir) != os.path.dirname(data_dir):
        raise Refused('%s and %s must share a folder (the swap is two renames); nothing was changed' % (rdir, data_dir))
    pid = _running(data_dir)
    if pid:
        raise Refused('the server still runs on %s (pid %s): stop it first (the role does it through service control); '
                      'nothing was changed' % (data_dir, pid))
    stamp = _manifest.utc_stamp()
    aside = '%s.pre_pitr_%s' % (data_dir, stamp)
    if module.check_mode:
        return dict(data_dir=data_dir, aside=aside if os.path.exists(data_dir) else None, restored=rdir, planned=True)
    lost = not os.path.exists(data_dir)  # the data directory itself was lost: nothing to keep aside
    if lost:
        aside = None
        os.rename(rdir, data_dir)
    else:
        os.rename(data_dir, aside)
        try:
            os.rename(rdir, data_dir)
        except OSError:
            os.rename(aside, data_dir)
            raise
    # The restored copy's postgresql.auto.conf: pgBackRest's recovery block (its restore_command names the
    # restore folder) goes, and archive_mode comes back as the old server had it (the restore with
    # --archive-mode=off dropped it): the new timeline must be archived.
    auto = os.path.join(data_dir, 'postgresql.auto.conf')
    # the folder is the database account's: a link planted there is refused, not read (nor written, below)
    with os.fdopen(os.open(auto, os.O_RDONLY | os.O_NOFOLLOW)) as handle:
        lines = handle.readlines()
        st = os.fstat(handle.fileno())
    cut = next((i for i, ln in enumerate(lines) if ln.startswith('# Recovery settings generated by pgBackRest')), None)
    kept = [ln for ln in (lines if cut is None else lines[:cut]) if not ln.strip().startswith('archive_mode')]
    try:
        with os.fdopen(os.open(os.path.join(aside, 'postgresql.auto.conf'), os.O_RDONLY | os.O_NOFOLLOW)) as handle:
            kept += [ln for ln in handle if ln.strip().startswith('archive_mode')]
    except (OSError, TypeError):
        # no old directory: the cluster archived to this stanza (its backup came from there), so it does again
        kept.append("archive_mode = 'on'\n")
    if kept != lines:
        _manifest.write_text_atomic(auto, ''.join(kept), stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid))
    record.update(swapped_at=_manifest.utc_iso(), aside=aside, data_dir=data_dir, data_dir_was_lost=lost)
    record_file = (aside or data_dir + '.pitr_%s' % stamp) + '.swap.json'
    _manifest.write_json_atomic(record_file, record)
    os.unlink(rdir + MARKER)  # the record moved beside the copy kept aside
    return dict(data_dir=data_dir, aside=aside, restored=rdir, record=record_file, data_dir_was_lost=lost)


def main():
    spec = _postgres.postgres_argument_spec()
    spec.update(_pgbackrest.argument_spec())
    spec.update(
        action=dict(type='str', required=True, choices=['plan', 'restore', 'swap']),
        target_type=dict(type='str', default='latest', choices=['latest', 'time', 'name', 'lsn', 'immediate']),
        target=dict(type='str'), backup_set=dict(type='str'), data_dir=dict(type='path'),
        restore_dir=dict(type='path'), spare_port=dict(type='int'), socket_dir=dict(type='path'),
        server_settings=dict(type='dict', default={}), database=dict(type='str'),
        required_tables=dict(type='list', elements='str', default=[]), min_row_counts=dict(type='dict', default={}),
        compare_queries=dict(type='dict', default={}), ready_timeout=dict(type='int', default=900),
        wal_segment_mb=dict(type='int', default=16),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        try:
            _postgres.check_name(p['stanza'], 'stanza')
            if p['database']:
                _postgres.check_name(p['database'])
            for table in list(p['required_tables']) + list(p['min_row_counts']):
                _postgres.split_table(table)
        except _postgres.PostgresError as exc:
            raise Refused(str(exc))
        for name, value in p['server_settings'].items():
            if not SETTING_RE.fullmatch(str(name)) or '\n' in str(value) or '\r' in str(value) or '\0' in str(value):
                raise Refused('server setting %r=%r refused: a name is lower-case letters, digits and _ (one . for an '
                              'extension\'s setting), a value holds no line break; nothing was changed' % (name, value))
        for name, statement in p['compare_queries'].items():
            try:
                one_statement(str(statement))
            except ValueError as exc:
                raise Refused('compare query %s refused: it holds %s - one read-only statement is run, nothing '
                              'else; nothing was changed' % (name, exc))
        if p['action'] == 'swap':
            result = swap(module, p)
            module.exit_json(changed=not module.check_mode, swap=result, plan=None)
        the_plan = plan(p)
        if p['action'] == 'plan':
            module.exit_json(changed=False, plan=the_plan)
        result = restore(module, p, the_plan)
        module.exit_json(changed=result is not None, plan=the_plan, restore=result)
    except Refused as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), refused=True)
    except _postgres.LeftBehind as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc), left_behind=True)
    except (_pgbackrest.PgBackRestError, _postgres.PostgresError, OSError, subprocess.TimeoutExpired) as exc:
        module.fail_json(exception=traceback.format_exc(), msg=str(exc))


if __name__ == '__main__':
    main()
