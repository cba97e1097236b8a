# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Dumps of the tradeops.dr modules: a dump's header and table of contents read (pg_restore
--list; a plain script by its text), its TimescaleDB version read from inside it, one database
dumped from one exported snapshot (row counts, CSV exports and pg_dump --snapshot; a .partial file
renamed on success; the manifest) and a dump restored into a database (TimescaleDB's
pre/post-restore around it). Connections, names and the client binaries are _postgres's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import os
import re
import socket
import time

from ansible_collections.tradeops.dr.plugins.module_utils import _backup, _manifest
from ansible_collections.tradeops.dr.plugins.module_utils._postgres import (
    PostgresError, binary_version, database_size, extensions, first_line, ident, major_of, psycopg2, query, row_counts,
    run_client, server_facts, split_table, sql, tail)
from ansible_collections.tradeops.dr.plugins.module_utils._timescaledb import hypertables


DUMP_HEADER = {
    'archive_created_at': re.compile(r'^;\s+Archive created at\s+(.+)$'),
    'dbname': re.compile(r'^;\s+dbname:\s*(.*)$'),
    'format': re.compile(r'^;\s+Format:\s*(\S+)'),
    'toc_entries': re.compile(r'^;\s+TOC Entries:\s*(\d+)'),
    'server_version': re.compile(r'^;\s+Dumped from database version:\s*(.*)$'),
    'pg_dump_version': re.compile(r'^;\s+Dumped by pg_dump version:\s*(.*)$'),
    'archive_version': re.compile(r'^;\s+Dump Version:\s*(\S+)'),
}


TOC_LINE = re.compile(r'^(\d+);\s+\d+\s+\d+\s+(.+)$')


def dump_format(path):
    """'custom', 'directory', 'tar' or 'plain', from the file itself."""
    if os.path.isdir(path):
        return 'directory'
    with open(path, 'rb') as handle:
        head = handle.read(512)
    if head.startswith(b'PGDMP'):
        return 'custom'
    if len(head) >= 262 and head[257:262] == b'ustar':
        return 'tar'
    return 'plain'


def parse_toc(text):
    """Header facts and entries of `pg_restore --list` output."""
    info = dict(entries=[], extensions=[], schemas=[])
    for line in text.splitlines():
        for key, rx in DUMP_HEADER.items():
            match = rx.match(line)
            if match and key not in info:
                info[key] = match.group(1).strip()
        match = TOC_LINE.match(line)
        if not match:
            continue
        rest = match.group(2).split()
        info['entries'].append(match.group(2))
        if rest[:2] == ['EXTENSION', '-'] and len(rest) >= 3:
            info['extensions'].append(rest[2])
        elif rest[:1] == ['SCHEMA'] and len(rest) >= 3:
            info['schemas'].append(rest[2])
    if 'toc_entries' in info:
        info['toc_entries'] = int(info['toc_entries'])
    return info


def inspect_dump(conn, path):
    """What a dump holds, read without restoring it: format, versions, extensions (with the
    TimescaleDB version read from its catalog in the dump), number of entries. Raises
    PostgresError when pg_restore cannot read the archive."""
    fmt = dump_format(path)
    if fmt == 'plain':
        return _inspect_plain(path)
    pg_restore = conn.binary('pg_restore')
    rc, out, err = run_client(conn, [pg_restore, '--list', path])
    if rc != 0:
        raise PostgresError('pg_restore --list cannot read %s: %s' % (path, err.strip() or 'rc=%d' % rc))
    info = parse_toc(out)
    info['format'] = fmt
    info['extension_versions'] = {}
    if 'timescaledb' in info['extensions']:
        info['extension_versions']['timescaledb'] = _timescaledb_version_in_dump(conn, pg_restore, path)
    return info


def dump_created_at(info):
    """Epoch seconds of the dump's own header ('Archive created at 2026-11-23 07:17:03 UTC'), or
    None. pg_dump writes its local wall time and zone name; a zone other than UTC/GMT is read as
    this host's local time."""
    text = (info or {}).get('archive_created_at') or ''
    match = re.match(r'^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\s*(\S*)', text)
    if not match:
        return None
    parsed = time.strptime(match.group(1), '%Y-%m-%d %H:%M:%S')
    if match.group(2).upper() in ('UTC', 'GMT', 'Z', '+00', '+0000'):
        return calendar.timegm(parsed)
    return time.mktime(parsed)


def newer_dump(conn, info):
    """'made by pg_dump X, newer than this pg_restore Y: ...' when the dump needs newer client
    binaries than the ones here (psql for a plain script), else None."""
    restore_major, restore_version = binary_version(conn.binary('psql' if info['format'] == 'plain' else 'pg_restore'))
    dump_major = major_of(info.get('pg_dump_version'))
    if dump_major and dump_major > restore_major:
        return ('made by pg_dump %s, newer than this pg_restore %s: use PostgreSQL %d client binaries (pg_bin_dir)'
                % (info['pg_dump_version'], restore_version, dump_major))
    return None


def _timescaledb_version_in_dump(conn, pg_restore, path):
    """TimescaleDB writes its version into _timescaledb_catalog.metadata; a dump carries that table."""
    rc, out, _err = run_client(conn, [pg_restore, '--data-only', '--schema', '_timescaledb_catalog', '--table',
                                      'metadata', '--file', '-', path])
    if rc == 0:
        match = re.search(r'^timescaledb_version\t(\S+)', out, re.M)
        if match:
            return match.group(1)
    return None


def _inspect_plain(path):
    info = dict(format='plain', entries=[], extensions=[], schemas=[], extension_versions={})
    with open(path, 'r', errors='replace') as handle:
        for n, line in enumerate(handle):
            for key, rx in (('server_version', re.compile(r'^-- Dumped from database version (.*)$')),
                            ('pg_dump_version', re.compile(r'^-- Dumped by pg_dump version (.*)$'))):
                match = rx.match(line.rstrip('\n'))
                if match:
                    info[key] = match.group(1).strip()
            match = re.match(r'^CREATE EXTENSION IF NOT EXISTS (\w+)', line)
            if match:
                info['extensions'].append(match.group(1))
            if n > 20000 and 'pg_dump_version' in info:
                break
    if 'pg_dump_version' not in info:
        raise PostgresError('%s is neither a pg_dump archive nor a plain pg_dump script' % path)
    return info


def restore_dump(conn, path, dbname, info, jobs=1, no_owner=False, analyze=True, timeout=None):
    """Restore a dump FILE into an existing, empty database `dbname` (never through stdin,
    which would make -j impossible), stopping at the first error: pg_restore --exit-on-error,
    or psql ON_ERROR_STOP=1 in one transaction for a plain script. A TimescaleDB dump gets the
    extension at the dump's version and timescaledb_pre_restore()/post_restore() around a
    one-job restore, as TimescaleDB documents. Returns a dict of what ran; raises PostgresError."""
    done = dict(format=info['format'], jobs=1)
    tsdb = 'timescaledb' in info.get('extensions', [])
    if tsdb:
        version = (info.get('extension_versions') or {}).get('timescaledb')
        target = conn.connect(dbname)
        try:
            if version:
                query(target, sql.SQL('CREATE EXTENSION IF NOT EXISTS timescaledb VERSION {}').format(
                    sql.Literal(version)))
            else:
                query(target, 'CREATE EXTENSION IF NOT EXISTS timescaledb')
            query(target, 'SELECT timescaledb_pre_restore()')
        except psycopg2.Error as exc:
            raise PostgresError('cannot prepare TimescaleDB in %s: %s' % (dbname, first_line(exc)))
        finally:
            target.close()
        done['timescaledb'] = version
    if info['format'] == 'plain':
        argv = [conn.binary('psql'), '--no-psqlrc', '--quiet', '--set', 'ON_ERROR_STOP=1', '--single-transaction',
                '--file', path, '--dbname', dbname]
    else:
        jobs = 1 if tsdb else max(1, int(jobs))
        if info['format'] == 'tar':
            jobs = 1  # pg_restore -j needs the custom or directory format
        argv = [conn.binary('pg_restore'), '--exit-on-error', '--jobs', str(jobs), '--dbname', dbname]
        if no_owner:
            argv += ['--no-owner', '--no-privileges']
        argv.append(path)
        done['jobs'] = jobs
    done['command'] = ' '.join(argv)
    rc, _out, err = run_client(conn, argv, timeout=timeout)
    if rc != 0:
        how = 'was killed by signal %d' % -rc if rc < 0 else 'failed (rc=%d)' % rc
        raise PostgresError('%s %s restoring %s into %s: %s' % (
            os.path.basename(argv[0]), how, path, dbname, tail(err) or 'no error output'))
    target = conn.connect(dbname)
    try:
        if tsdb:
            query(target, 'SELECT timescaledb_post_restore()')
        if analyze:
            query(target, 'ANALYZE')
    except psycopg2.Error as exc:
        raise PostgresError('restored %s but the after-restore step failed: %s' % (dbname, first_line(exc)))
    finally:
        target.close()
    done['analyzed'] = bool(analyze)
    return done


def dump_database(conn, db, directory, base, kind='backup', csv_tables=(), compress=None, timeout=None):
    """Back up one database into the catalog (module pg_backup; the safety dump of a restore):
    one exported snapshot -> exact row counts and CSV exports -> pg_dump --snapshot to a
    .partial file renamed on success -> checksums -> manifest (status created)."""
    started = time.time()
    _manifest.private_dirs(directory)  # the catalog's root too, when this dump creates it
    _manifest.private(directory)
    dump_name = base + _backup.DUMP_SUFFIX
    dump_path = os.path.join(directory, dump_name)
    partial = dump_path + '.partial'
    files = {}
    written = []
    holder = conn.connect(db, autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY')
            cur.execute('SELECT pg_export_snapshot()')
            snapshot = cur.fetchone()[0]
        facts = server_facts(holder)
        exts = extensions(holder)
        counts = row_counts(holder)
        hypers = hypertables(holder)
        size = database_size(holder, db)
        for qualified in csv_tables:
            schema, table = split_table(qualified)
            name = '%s.%s.%s.csv' % (base, schema, table)
            path = os.path.join(directory, name)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, _manifest.PRIVATE_FILE), 'w') as handle, \
                    holder.cursor() as cur:
                written.append(path)
                cur.copy_expert(sql.SQL('COPY (SELECT * FROM {}) TO STDOUT WITH (FORMAT csv, HEADER)').format(
                    ident(schema, table)).as_string(holder), handle)
            files[name] = dict(_manifest.file_entries(path)[name], kind='csv', table='%s.%s' % (schema, table),
                               rows=counts.get('%s.%s' % (schema, table)))
        pg_dump = conn.binary('pg_dump')
        dump_major, dump_version = binary_version(pg_dump)
        argv = [pg_dump, '--format=custom', '--snapshot=%s' % snapshot, '--file', partial]
        if compress is not None:
            argv.append('--compress=%d' % compress)
        argv.append(db)
        written.append(partial)
        rc, _out, err = run_client(conn, argv, timeout=timeout)
        if rc != 0:
            raise PostgresError('pg_dump of %s failed (rc=%d): %s' % (db, rc, tail(err)))
    except Exception:
        for path in written:  # our own incomplete files: never leave half a backup behind
            if os.path.exists(path):
                os.remove(path)
        raise
    finally:
        holder.rollback()
        holder.close()
    _manifest.private(partial)  # pg_dump created it with the umask's mode
    os.rename(partial, dump_path)
    files[dump_name] = dict(_manifest.file_entries(dump_path)[dump_name], kind='dump')
    manifest = dict(
        format=_backup.FORMAT, kind=kind, database=db, created_at=_backup.iso(started),
        status='created', dump=dump_name, files=files, host=socket.gethostname(),
        server=dict(host=conn.host, port=conn.port), server_version=facts['server_version'],
        server_version_num=facts['server_version_num'], pg_dump_version=dump_version,
        pg_dump_major=dump_major, extensions=exts, hypertables=hypers, row_counts=counts,
        database_size_bytes=size, duration_s=round(time.time() - started, 3), verification=None)
    manifest_path = os.path.join(directory, base + _backup.MANIFEST_SUFFIX)
    _backup.write_manifest(manifest_path, manifest)
    return dict(dump=dump_path, manifest=manifest_path, status='created', row_counts=counts, extensions=exts,
                size=sum(f['size'] for f in files.values()), duration_s=manifest['duration_s'],
                created_at=manifest['created_at'])
