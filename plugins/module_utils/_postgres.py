# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""PostgreSQL for the tradeops.dr modules: one connection spec (doc fragment postgres),
identifier checks and quoting, server facts (version, extensions, row counts, sizes), the
client binaries (pg_dump, pg_restore, psql) run with the password in PGPASSWORD and never in
argv, databases created, renamed and compared, and the advisory lock a restore holds. Dumps are
_pgdump's, TimescaleDB's own steps _timescaledb's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess

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
            raise PostgresError('cannot connect to %s: %s' % (self.describe(dbname), first_line(exc)))
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


def first_line(exc):
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


def connections_to(conn, dbname):
    """The sessions on `dbname` that keep it from being renamed or dropped. Autovacuum workers are not among
    them: PostgreSQL ends those itself when a database is renamed or dropped (it signals them and waits), and
    one that happened to be vacuuming refused a restore as "a session still uses it" (issue 24's CI)."""
    return query(conn, 'SELECT pid, usename, application_name, state FROM pg_stat_activity '
                       "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type <> 'autovacuum worker'",
                 (dbname,))


def terminate_connections(conn, dbname):
    return len(query(conn, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                           'WHERE datname = %s AND pid <> pg_backend_pid()', (dbname,)))


# --------------------------------------------------------------------------- databases


def tail(text, lines=8):
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


def release_lock(conn, what, dbname):
    """Release the lock taken by try_lock on this connection now. Closing the connection releases it too, but only
    once the server process of the session has ended, after the client has gone on: a run right after this one
    could find the lock still held by nobody it can name. Best effort: the close that follows ends it either way."""
    try:
        query(conn, 'SELECT pg_advisory_unlock(%s, hashtext(%s))', (LOCK_CLASS, _lock_key(what, dbname)))
    except DB_ERRORS:
        pass


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
