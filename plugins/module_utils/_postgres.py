# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""PostgreSQL for the tradeops.dr modules: one connection spec (doc fragment postgres),
identifier checks and quoting, server facts (version, extensions, row counts, sizes), the
client binaries (pg_dump, pg_restore, psql) run with the password in PGPASSWORD and never in
argv, and the reading of a dump's table of contents (pg_restore --list)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import os
import re
import shutil
import socket
import subprocess
import time

try:
    import psycopg2
    from psycopg2 import sql
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by the modules
    psycopg2 = sql = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = _exc

from ansible.module_utils.basic import env_fallback
from ansible_collections.tradeops.dr.plugins.module_utils import _backup, _manifest, _service

DB_ERRORS = (psycopg2.Error,) if HAS_PSYCOPG2 else ()

# Names this collection accepts for databases, schemas and tables. PostgreSQL allows more,
# but a name with quotes, semicolons, spaces or '=' (which pg_restore -d would read as a
# connection string) is far likelier to be an injection or a typo than a real database.
NAME_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_.-]{0,62}')
# Schemas that belong to PostgreSQL or to TimescaleDB itself; their tables are not user data
# (a hypertable's rows are counted through the hypertable, not through its chunks).
SYSTEM_SCHEMA_SQL = ("n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
                     "AND n.nspname NOT LIKE '\\_timescaledb\\_%' AND n.nspname NOT LIKE 'timescaledb\\_%'")


class PostgresError(Exception):
    """A PostgreSQL step failed; the message says what was tried and what to do."""


class LeftBehind(PostgresError):
    """A failure after which something this collection created is still there (named in the
    message): never reported as "nothing was changed"."""


def postgres_argument_spec():
    """Connection options shared by the PostgreSQL modules (doc fragment tradeops.dr.postgres)."""
    return dict(
        login_host=dict(type='str', default='127.0.0.1', fallback=(env_fallback, ['PGHOST'])),
        login_port=dict(type='int', default=5432, fallback=(env_fallback, ['PGPORT'])),
        login_user=dict(type='str', default='postgres', fallback=(env_fallback, ['PGUSER'])),
        login_password=dict(type='str', no_log=True, fallback=(env_fallback, ['PGPASSWORD'])),
        maintenance_db=dict(type='str', default='postgres'),
        connect_timeout=dict(type='int', default=10),
        pg_bin_dir=dict(type='path'),
    )


def check_name(name, what='database'):
    """Refuse a database/schema/table name outside NAME_RE, before any SQL or command sees it."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise PostgresError('%s name %r refused: only letters, digits, _ . - are accepted (at most 63, starting '
                            'with a letter or _); nothing was run' % (what, name))
    return name


def split_table(qualified):
    """'schema.table' or 'table' -> (schema, table), each checked."""
    schema, _sep, table = qualified.rpartition('.')
    return check_name(schema or 'public', 'schema'), check_name(table, 'table')


def ident(*parts):
    """A (possibly qualified) identifier quoted by psycopg2."""
    return sql.Identifier(*parts)


class Connection(object):
    """Connection settings of one module run; connect() opens psycopg2 connections, env() is
    the environment for the client binaries (the password travels there, never in argv)."""

    def __init__(self, params):
        self.host = params.get('login_host') or '127.0.0.1'
        self.port = int(params.get('login_port') or 5432)
        self.user = params.get('login_user') or 'postgres'
        self.password = params.get('login_password')
        self.maintenance_db = check_name(params.get('maintenance_db') or 'postgres')
        self.connect_timeout = int(params.get('connect_timeout') or 10)
        self.bin_dir = params.get('pg_bin_dir')

    def describe(self, dbname=None):
        return '%s@%s:%s/%s' % (self.user, self.host, self.port, dbname or self.maintenance_db)

    def connect(self, dbname=None, autocommit=True):
        if not HAS_PSYCOPG2:
            raise PostgresError('psycopg2 is required on the managed host: %s' % PSYCOPG2_IMPORT_ERROR)
        try:
            conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                    dbname=dbname or self.maintenance_db, connect_timeout=self.connect_timeout,
                                    application_name='tradeops.dr')
        except psycopg2.Error as exc:
            raise PostgresError('cannot connect to %s: %s' % (self.describe(dbname), _first_line(exc)))
        conn.autocommit = autocommit
        return conn

    def env(self, dbname=None):
        env = dict(os.environ, PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user,
                   PGCONNECT_TIMEOUT=str(self.connect_timeout), PGAPPNAME='tradeops.dr')
        env.pop('PGPASSWORD', None)
        if self.password:
            env['PGPASSWORD'] = self.password
        if dbname:
            env['PGDATABASE'] = dbname
        return env

    def binary(self, name):
        return client_binary(name, self.bin_dir)


def _first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def client_binary(name, bin_dir=None):
    if bin_dir:
        path = os.path.join(bin_dir, name)
        if os.access(path, os.X_OK):
            return path
        raise PostgresError('%s not found in pg_bin_dir %s' % (name, bin_dir))
    found = shutil.which(name)
    if not found:
        raise PostgresError('%s not found on PATH: install the PostgreSQL client (postgresql-client) or set '
                            'pg_bin_dir' % name)
    return found


def server_binary(name, bin_dir=None, major=None):
    """A server-side tool (pg_ctl, pg_waldump): pg_bin_dir; else Debian's /usr/lib/postgresql/<major>/bin
    (the server's major version first, then the newest), where those tools live off PATH; else PATH."""
    if bin_dir:
        return client_binary(name, bin_dir)
    import glob

    def version_of(folder):
        part = folder.rstrip('/').split('/')[-2]
        return int(part) if part.isdigit() else 0
    folders = sorted(glob.glob('/usr/lib/postgresql/*/bin'), key=version_of, reverse=True)
    if major:
        folders.insert(0, '/usr/lib/postgresql/%s/bin' % major)
    for folder in folders:
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if not found:
        raise PostgresError('%s not found in /usr/lib/postgresql/*/bin nor on PATH: install the PostgreSQL server '
                            'package or set pg_bin_dir' % name)
    return found


def binary_version(path):
    """(major, text) of a client binary: 'pg_restore (PostgreSQL) 15.18 (Debian ...)' -> (15, '15.18')."""
    out = subprocess.run([path, '--version'], capture_output=True, text=True, check=False).stdout
    match = re.search(r'\)\s+(\d+)(?:\.(\d+))?', out)
    if not match:
        raise PostgresError('cannot read the version of %s from %r' % (path, out.strip()))
    return int(match.group(1)), '%s.%s' % (match.group(1), match.group(2) or '0')


def major_of(version_text):
    match = re.match(r'\s*(\d+)', version_text or '')
    return int(match.group(1)) if match else None


def run_client(conn, argv, dbname=None, timeout=None):
    """Run a client binary; returns (rc, stdout, stderr). argv never holds the password."""
    try:
        proc = subprocess.run(argv, env=conn.env(dbname), capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return 124, '', '%s did not finish within %s s' % (os.path.basename(argv[0]), timeout)
    except OSError as exc:
        return 127, '', '%s could not run: %s' % (argv[0], exc)
    return proc.returncode, proc.stdout, proc.stderr


# --------------------------------------------------------------------------- server facts

def query(conn, statement, args=None):
    with conn.cursor() as cur:
        cur.execute(statement, args)
        return cur.fetchall() if cur.description else []


def server_facts(conn):
    rows = query(conn, "SELECT current_setting('server_version'), current_setting('server_version_num')::int")
    facts = dict(server_version=rows[0][0], server_version_num=rows[0][1])
    facts['data_directory'] = readable_setting(conn, 'data_directory')
    return facts


def readable_setting(conn, name):
    """A server setting, or None when this login may not read it (data_directory and
    shared_preload_libraries need superuser or pg_read_all_settings). Inside a transaction the
    failed read is undone to a savepoint: a rollback would end the caller's transaction (and
    with it, for a backup, the exported snapshot pg_dump is about to use)."""
    if conn.autocommit:
        try:
            return query(conn, 'SELECT current_setting(%s)', (name,))[0][0]
        except psycopg2.Error:
            return None
    with conn.cursor() as cur:
        cur.execute('SAVEPOINT tradeops_setting')
        try:
            cur.execute('SELECT current_setting(%s)', (name,))
            value = cur.fetchone()[0]
        except psycopg2.Error:
            cur.execute('ROLLBACK TO SAVEPOINT tradeops_setting')
            value = None
        cur.execute('RELEASE SAVEPOINT tradeops_setting')
    return value


def database_exists(conn, dbname):
    return bool(query(conn, 'SELECT 1 FROM pg_database WHERE datname = %s', (dbname,)))


def databases_like(conn, prefix):
    like = prefix.replace('\\', '\\\\').replace('_', '\\_').replace('%', '\\%') + '%'
    return [r[0] for r in query(conn, 'SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1', (like,))]


def database_size(conn, dbname):
    return query(conn, 'SELECT pg_database_size(%s)', (dbname,))[0][0]


def extensions(conn):
    return dict(query(conn, 'SELECT extname, extversion FROM pg_extension ORDER BY 1'))


def available_extension_versions(conn, name):
    return [r[0] for r in query(conn, 'SELECT version FROM pg_available_extension_versions WHERE name = %s '
                                      'ORDER BY 1', (name,))]


def user_tables(conn):
    """Every user table (plain or partitioned parent) as 'schema.table', system and TimescaleDB
    internal schemas left out, partitions left out (counted through their parent)."""
    return ['%s.%s' % r for r in query(conn, (
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND " + SYSTEM_SCHEMA_SQL + " ORDER BY 1, 2"))]


def row_counts(conn, tables=None):
    """Exact row counts (count(*)) - evidence, not planner estimates."""
    counts = {}
    for qualified in (tables if tables is not None else user_tables(conn)):
        schema, _sep, table = qualified.partition('.')
        counts[qualified] = query(conn, sql.SQL('SELECT count(*) FROM {}').format(ident(schema, table)))[0][0]
    return counts


def hypertables(conn):
    if 'timescaledb' not in extensions(conn):
        return []
    rows = query(conn, 'SELECT hypertable_schema, hypertable_name, num_chunks, compression_enabled '
                       'FROM timescaledb_information.hypertables ORDER BY 1, 2')
    return [dict(name='%s.%s' % (r[0], r[1]), num_chunks=r[2], compression_enabled=r[3]) for r in rows]


def connections_to(conn, dbname):
    return query(conn, 'SELECT pid, usename, application_name, state FROM pg_stat_activity '
                       'WHERE datname = %s AND pid <> pg_backend_pid()', (dbname,))


def terminate_connections(conn, dbname):
    return len(query(conn, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                           'WHERE datname = %s AND pid <> pg_backend_pid()', (dbname,)))


# --------------------------------------------------------------------------- dumps

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


# --------------------------------------------------------------------------- restores

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
            raise PostgresError('cannot prepare TimescaleDB in %s: %s' % (dbname, _first_line(exc)))
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
            os.path.basename(argv[0]), how, path, dbname, _tail(err) or 'no error output'))
    target = conn.connect(dbname)
    try:
        if tsdb:
            query(target, 'SELECT timescaledb_post_restore()')
        if analyze:
            query(target, 'ANALYZE')
    except psycopg2.Error as exc:
        raise PostgresError('restored %s but the after-restore step failed: %s' % (dbname, _first_line(exc)))
    finally:
        target.close()
    done['analyzed'] = bool(analyze)
    return done


def _tail(text, lines=8):
    return ' | '.join([line for line in (text or '').strip().splitlines() if line.strip()][-lines:])


def create_database(conn, dbname, template='template0', owner=None):
    statement = sql.SQL('CREATE DATABASE {} TEMPLATE {}').format(ident(dbname), ident(template))
    if owner:
        statement += sql.SQL(' OWNER {}').format(ident(owner))
    query(conn, statement)


def drop_database(conn, dbname):
    """Only for databases this collection created for itself (test restores, failed restores)."""
    terminate_connections(conn, dbname)
    query(conn, sql.SQL('DROP DATABASE IF EXISTS {}').format(ident(dbname)))


def rename_database(old, new):
    """The statement; it runs inside the caller's transaction (a swap renames two at once)."""
    return sql.SQL('ALTER DATABASE {} RENAME TO {}').format(ident(old), ident(new))


def allow_connections(conn, dbname, allowed):
    query(conn, sql.SQL('ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}').format(
        ident(dbname), sql.SQL('true' if allowed else 'false')))


def database_owner(conn, dbname):
    rows = query(conn, 'SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s', (dbname,))
    return rows[0][0] if rows else None


def compare_counts(expected, actual):
    """Differences between the manifest's row counts and a database's: [] when every table
    of the manifest has exactly its count (tables the manifest does not know are ignored:
    a migration may add them)."""
    problems = []
    for table, count in sorted((expected or {}).items()):
        if table not in actual:
            problems.append('%s is missing (manifest: %d rows)' % (table, count))
        elif actual[table] != count:
            problems.append('%s has %d rows, manifest %d' % (table, actual[table], count))
    return problems


def derived_name(base, tag, stamp):
    """'<base>__<tag>_<stamp>' within PostgreSQL's 63-byte limit (base shortened if needed)."""
    suffix = '__%s_%s' % (tag, stamp.lower())
    return check_name(base[:63 - len(suffix)] + suffix)


def missing_extensions(conn, manifest, info=None):
    """Problems (strings) when the server lacks an extension the backup needs: any version of
    each extension the dump creates, and exactly the recorded version of timescaledb (the
    restore creates it at that version before timescaledb_pre_restore()), preloaded, with a
    superuser login (timescaledb_target_problems)."""
    needed = dict((name, None) for name in (info or {}).get('extensions', []))
    needed.update(dict((k, v) for k, v in (manifest.get('extensions') or {}).items() if k != 'plpgsql'))
    for name, version in ((info or {}).get('extension_versions') or {}).items():
        needed[name] = needed.get(name) or version
    problems = []
    for name, version in sorted(needed.items()):
        available = available_extension_versions(conn, name)
        if not available:
            problems.append('the backup needs the %s extension%s; this server does not offer it (install %s%s on '
                            'the server first)' % (name, ' version %s' % version if version else '', name,
                                                   ' %s' % version if version else ''))
        elif name == 'timescaledb':
            if version and version not in available:
                problems.append('the backup needs timescaledb version %s; this server offers %s (install timescaledb '
                                '%s on the server first)' % (version, ', '.join(available), version))
            problems += timescaledb_target_problems(conn)
    return problems


def timescaledb_target_problems(conn):
    """Why this server cannot take a TimescaleDB restore (strings; [] when it can), checked
    before anything changes, beside missing_extensions (which checks the version): the library
    must be preloaded (without it CREATE EXTENSION kills the session: 'extension "timescaledb"
    must be preloaded'), and the login must be a superuser (timescaledb_pre_restore() and
    timescaledb_post_restore() need one)."""
    problems = []
    available = available_extension_versions(conn, 'timescaledb')
    preload = readable_setting(conn, 'shared_preload_libraries')
    if preload is None:  # not readable by this login: the launcher runs only where it is preloaded
        loaded = bool(query(conn, "SELECT 1 FROM pg_stat_activity "
                                  "WHERE backend_type = 'TimescaleDB Background Worker Launcher'"))
    else:
        loaded = 'timescaledb' in [lib.strip().strip('"') for lib in preload.split(',')]
    if available and not loaded:
        problems.append('timescaledb %s is installed but not in shared_preload_libraries of this server: add '
                        "shared_preload_libraries = 'timescaledb' to postgresql.conf and restart PostgreSQL first"
                        % ', '.join(available))
    if not query(conn, 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')[0][0]:
        problems.append('login %s is not a superuser: timescaledb_pre_restore() and timescaledb_post_restore(), '
                        'which a TimescaleDB restore runs around pg_restore, need one' % conn.info.user)
    return problems


SCHEDULER = 'TimescaleDB Background Worker Scheduler'


def timescaledb_scheduler(conn, dbname):
    """Whether TimescaleDB's scheduler of `dbname` runs (pg_stat_activity)."""
    return bool(query(conn, 'SELECT 1 FROM pg_stat_activity WHERE backend_type = %s AND datname = %s',
                      (SCHEDULER, dbname)))


def freeze_timescaledb(conn, dbname):
    """Stop TimescaleDB's jobs in a database kept aside, for good: `timescaledb_pre_restore()` stops
    its background workers and sets timescaledb.restoring on for that database. A copy kept as
    evidence must not run policies (a retention policy would drop its old chunks), and each
    database's scheduler holds one of max_worker_processes: a few copies kept aside with their
    schedulers running leave none for the restored database's own. Returns 'frozen', or
    'no timescaledb' when the database lacks the extension."""
    target = conn.connect(dbname)
    try:
        if not query(target, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
            return 'no timescaledb'
        query(target, 'SELECT timescaledb_pre_restore()')
        return 'frozen'
    except psycopg2.Error as exc:
        raise PostgresError('cannot stop the TimescaleDB jobs of %s: %s' % (dbname, _first_line(exc)))
    finally:
        target.close()


def restart_timescaledb_scheduler(conn, dbname, timeout=30.0):
    """ALTER DATABASE ... RENAME stops the scheduler of the renamed database (TimescaleDB warns
    that running background workers must be restarted by hand): start the workers again in
    `dbname` and wait until its scheduler shows in pg_stat_activity. Returns 'running' or
    raises PostgresError."""
    target = conn.connect(dbname)
    try:
        query(target, 'SELECT _timescaledb_functions.start_background_workers()')
    except psycopg2.Error as exc:
        raise PostgresError('cannot restart the TimescaleDB background workers of %s: %s' % (dbname, _first_line(exc)))
    finally:
        target.close()
    admin = conn.connect()
    try:
        res = _service.wait_until(lambda: (timescaledb_scheduler(admin, dbname), 'no scheduler in pg_stat_activity'),
                                  timeout, first_delay=0.1, max_delay=1.0)
    finally:
        admin.close()
    if not res['ok']:
        raise PostgresError('the TimescaleDB scheduler of %s did not start within %ss: compression, retention and '
                            'continuous aggregate policies would not run (see the server log)' % (dbname, timeout))
    return 'running'


# --------------------------------------------------------------------------- one restore at a time

# Advisory locks of this collection: (LOCK_CLASS, hashtext('<what> <database>')), two-key form,
# so that pg_locks shows them as classid/objid with objsubid 2.
LOCK_CLASS = 0x74726472  # 'trdr'
RESTORE_LOCK = 'restore'  # held by pg_restore_swap for a whole restore; pg_swap_repair and pg_health read it


def _lock_key(what, dbname):
    return '%s %s' % (what, dbname)


def try_lock(conn, what, dbname):
    """Take the session-level advisory lock for `what` on dbname on this connection (held until
    it is released or the session ends, also when the process is killed). True when taken."""
    return bool(query(conn, 'SELECT pg_try_advisory_lock(%s, hashtext(%s))', (LOCK_CLASS, _lock_key(what, dbname)))[0][0])


def lock_holder(conn, what, dbname):
    """Who holds the lock: dict(pid, user, application, client, since) or None."""
    rows = query(conn, (
        "SELECT a.pid, a.usename, a.application_name, coalesce(host(a.client_addr), 'local'), "
        "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.classid = %s AND l.objid = hashtext(%s)::oid AND l.objsubid = 2"),
        (LOCK_CLASS, _lock_key(what, dbname)))
    if not rows:
        return None
    pid, user, app, client, since = rows[0]
    return dict(pid=pid, user=user, application=app, client=client, since=since)


def allows_connections(conn, dbname):
    rows = query(conn, 'SELECT datallowconn FROM pg_database WHERE datname = %s', (dbname,))
    return rows[0][0] if rows else None


# --------------------------------------------------------------------------- backups

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
            raise PostgresError('pg_dump of %s failed (rc=%d): %s' % (db, rc, _tail(err)))
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


def copy_database_properties(conn, source, target):
    """What pg_dump (without --create) leaves out and applications notice: the database's
    GRANTs (CONNECT, TEMP, CREATE) and its settings (ALTER DATABASE/ROLE ... IN DATABASE SET).
    Copied from source to target before a swap. Returns the statements that ran."""
    ran = []
    rows = query(conn, 'SELECT datacl IS NULL FROM pg_database WHERE datname = %s', (source,))
    if rows and not rows[0][0]:
        statements = [sql.SQL('REVOKE ALL ON DATABASE {} FROM PUBLIC').format(ident(target))]
        grants = query(conn, (
            "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, "
            "a.is_grantable FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s "
            "AND a.grantee <> d.datdba ORDER BY 1 NULLS FIRST, 2"), (source,))
        for grantee, privilege, grantable in grants:
            if privilege not in ('CONNECT', 'TEMPORARY', 'CREATE'):
                continue
            statements.append(sql.SQL('GRANT {} ON DATABASE {} TO {}{}').format(
                sql.SQL(privilege), ident(target), ident(grantee) if grantee else sql.SQL('PUBLIC'),
                sql.SQL(' WITH GRANT OPTION' if grantable else '')))
        for statement in statements:
            query(conn, statement)
            ran.append(statement.as_string(conn))
    settings = query(conn, (
        'SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, unnest(s.setconfig) '
        'FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s'), (source,))
    for role, item in settings:
        name, _sep, value = item.partition('=')
        if role:
            statement = sql.SQL('ALTER ROLE {} IN DATABASE {} SET {} = {}').format(
                ident(role), ident(target), ident(name), sql.Literal(value))
        else:
            statement = sql.SQL('ALTER DATABASE {} SET {} = {}').format(ident(target), ident(name), sql.Literal(value))
        query(conn, statement)
        ran.append(statement.as_string(conn))
    return ran
