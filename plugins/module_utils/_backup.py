# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""The catalog of database backups (runbook 000's backup inventory).

    <root>/<YYYY-MM-DD>/<db>_<YYYYMMDDTHHMMSSZ>.pgdump          pg_dump -Fc
    <root>/<YYYY-MM-DD>/<db>_<stamp>.<schema>.<table>.csv        CSV exports (PMS tables)
    <root>/<YYYY-MM-DD>/<db>_<stamp>.manifest.json               the evidence below
    <root>/safety/<db>_<stamp>_pre_restore.pgdump (+ manifest)    taken before a restore

A manifest names every file with its sha256 and size, the server and pg_dump versions, the
extensions and their versions, the exact row count of every table, the time, and a status:
created (dumped), verified (checksums, pg_restore --list and, when asked, a test restore
whose row counts equal the manifest) or failed. Retention and staleness read only this.
This file imports nothing from Ansible so that `tradeops-dr backups` can use it directly."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.tradeops.dr.plugins.module_utils import _manifest

FORMAT = 'tradeops.dr/pg-backup/1'
MANIFEST_SUFFIX = '.manifest.json'
DUMP_SUFFIX = '.pgdump'
STATUSES = ('created', 'verified', 'failed')
KINDS = ('backup', 'safety')


class BackupError(Exception):
    """A backup or the catalog is not usable; the message says which file and why."""


stamp = _manifest.utc_stamp
iso = _manifest.utc_iso
parse_iso = _manifest.parse_utc_iso


def new_backup_paths(root, database, kind='backup', now=None):
    """(directory, base name) of a new backup; never the name of an existing one."""
    now = now if now is not None else time.time()
    if kind == 'safety':
        directory, base = os.path.join(root, 'safety'), '%s_%s_pre_restore' % (database, stamp(now))
    else:
        directory, base = os.path.join(root, time.strftime('%Y-%m-%d', time.gmtime(now))), \
            '%s_%s' % (database, stamp(now))
    candidate, n = base, 1
    while os.path.exists(os.path.join(directory, candidate + DUMP_SUFFIX)) or \
            os.path.exists(os.path.join(directory, candidate + MANIFEST_SUFFIX)):
        n += 1
        candidate = '%s-%d' % (base, n)
    return directory, candidate


def manifest_path_for(path):
    """The manifest of a dump; a manifest's path is returned as it is."""
    if path.endswith(MANIFEST_SUFFIX):
        return path
    base = path[:-len(DUMP_SUFFIX)] if path.endswith(DUMP_SUFFIX) else path
    return base + MANIFEST_SUFFIX


def write_manifest(path, manifest):
    _manifest.write_json_atomic(path, manifest)


def read_manifest(path):
    manifest, problem = _manifest.read_json(path)
    if problem:
        raise BackupError('manifest %s %s' % (path, problem))
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        raise BackupError('%s is not a tradeops.dr backup manifest (format %r)' % (
            path, manifest.get('format') if isinstance(manifest, dict) else None))
    for key in ('database', 'created_at', 'status', 'dump', 'files'):
        if key not in manifest:
            raise BackupError('manifest %s lacks %r' % (path, key))
    return manifest


def manifest_for_dump(dump_path):
    """(path, manifest) of a dump, or of a manifest given by its path; a dump without one is refused
    (nothing proves it complete)."""
    path = manifest_path_for(dump_path)
    if path != dump_path and not os.path.exists(path):
        raise BackupError('%s has no manifest (%s): nothing proves this dump is complete; verify it or name '
                          'a backup that has one' % (dump_path, os.path.basename(path)))
    return path, read_manifest(path)


def dump_file(manifest, directory):
    """The dump a manifest names, as a path, or BackupError: a plain file name in the backup's
    own folder (no directory part, no link), listed in the manifest's files as the dump, so
    that check_files proves its checksum. A manifest copied elsewhere and edited to point at
    another file must never lead a restore there."""
    name = manifest.get('dump')
    if not isinstance(name, str) or not name or name in ('.', '..') or os.path.basename(name) != name:
        raise BackupError('the manifest names its dump %r: only a file name in the backup folder %s is accepted' % (
            name, directory))
    entry = (manifest.get('files') or {}).get(name)
    if not isinstance(entry, dict) or entry.get('kind', 'dump') != 'dump' or not entry.get('sha256'):
        raise BackupError('the manifest does not list its dump %s among its files with a sha256: nothing proves it '
                          'is the dump that was taken' % name)
    path = os.path.join(directory, name)
    if os.path.islink(path):
        raise BackupError('the dump %s is a symbolic link: refused (a backup holds its own files)' % path)
    return path


def check_files(manifest, directory):
    """Problems (strings) found comparing the files beside a manifest with it; [] when all match.
    Every file must be a regular file inside the backup folder: links are refused."""
    problems = []
    for rel, entry in sorted(manifest['files'].items()):
        try:
            _manifest.safe_relpath(rel)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        path = os.path.join(directory, rel)
        if _manifest.link_below(directory, path) or not _manifest.inside(directory, path):
            problems.append('%s is a link or lies outside the backup folder: refused' % rel)
            continue
        kind = _manifest.mismatch(path, entry)
        if kind == 'missing':
            problems.append('%s is missing' % rel)
        elif kind == 'size':
            problems.append('%s has %d bytes, the manifest says %s (truncated or replaced)' % (
                rel, os.path.getsize(path), entry.get('size')))
        elif kind == 'sha256':
            problems.append('%s does not match its sha256 in the manifest (corrupted or replaced)' % rel)
    return problems


# --------------------------------------------------------------------------- the catalog

def catalog(root):
    """Every backup below root, newest first: dicts with manifest, dump, database, kind,
    status, created_at (epoch), size; dumps without a manifest come back with status
    'no-manifest' and are never chosen, verified into 'verified' or deleted by retention."""
    entries = []
    if not os.path.isdir(root):
        return entries
    for dirpath, _dirs, files in os.walk(root):
        names = set(files)
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            if name.endswith(MANIFEST_SUFFIX):
                try:
                    manifest = read_manifest(path)
                    created = parse_iso(manifest['created_at'])
                    dump_file(manifest, dirpath)  # a manifest whose dump is elsewhere is never chosen
                except (BackupError, ValueError) as exc:
                    entries.append(dict(manifest=path, dump=None, database=None, kind=None, status='unreadable',
                                        created_at=os.path.getmtime(path), size=0, problem=str(exc)))
                    continue
                entries.append(dict(
                    manifest=path, dump=os.path.join(dirpath, manifest['dump']), database=manifest['database'],
                    kind=manifest.get('kind', 'backup'), status=manifest['status'], created_at=created,
                    size=sum(int(f.get('size') or 0) for f in manifest['files'].values()),
                    files=sorted(manifest['files'])))
            elif name.endswith(DUMP_SUFFIX) and name[:-len(DUMP_SUFFIX)] + MANIFEST_SUFFIX not in names:
                entries.append(dict(manifest=None, dump=path, database=None, kind=None, status='no-manifest',
                                    created_at=os.path.getmtime(path), size=os.path.getsize(path)))
    entries.sort(key=lambda e: (-e['created_at'], e['dump'] or e['manifest']))
    return entries


def newest(entries, database=None, status=None, kind='backup'):
    for entry in entries:
        if entry['manifest'] is None or entry['status'] in ('unreadable',):
            continue
        if database and entry['database'] != database:
            continue
        if status and entry['status'] != status:
            continue
        if kind and entry['kind'] != kind:
            continue
        return entry
    return None


def retention_plan(entries, keep_days, now=None):
    """[(entry, keep, reason)]: a backup older than keep_days goes, except the newest backup
    and the newest verified backup of each database, and anything without a readable manifest
    (not ours to judge). Pure: deciding is separate from deleting, so a dry run is exact."""
    now = now if now is not None else time.time()
    cutoff = now - keep_days * 86400
    protected = {}
    for entry in entries:
        if entry['manifest'] is None or entry['status'] == 'unreadable':
            continue
        key = (entry['database'], entry['kind'])
        protected.setdefault(key + ('newest',), entry['manifest'])
        if entry['status'] == 'verified':
            protected.setdefault(key + ('newest verified',), entry['manifest'])
    plan = []
    for entry in entries:
        if entry['manifest'] is None or entry['status'] == 'unreadable':
            plan.append((entry, True, 'no readable manifest: not managed by tradeops.dr, left in place'))
            continue
        reasons = [k[2] for k, v in protected.items() if v == entry['manifest']]
        if reasons:
            why = ' and '.join(sorted(reasons))
            plan.append((entry, True, 'the %s %s of %s' % (why, entry['kind'], entry['database'])))
        elif entry['created_at'] >= cutoff:
            plan.append((entry, True, 'younger than %s days' % keep_days))
        else:
            plan.append((entry, False, 'older than %s days (%s)' % (keep_days, iso(entry['created_at']))))
    return plan


def delete_backup(entry):
    """Delete the files a manifest lists, then the manifest (last, so that an interrupted
    deletion is still described), then its folder when empty. Returns the paths removed."""
    directory = os.path.dirname(entry['manifest'])
    manifest = read_manifest(entry['manifest'])
    removed = []
    for rel in sorted(manifest['files']):
        path = os.path.join(directory, _manifest.safe_relpath(rel))
        if os.path.isfile(path):
            os.remove(path)
            removed.append(path)
    os.remove(entry['manifest'])
    removed.append(entry['manifest'])
    try:
        os.rmdir(directory)
    except OSError:
        pass
    return removed


def staleness(entries, database, max_age_hours, now=None):
    """(fresh, message, newest verified entry) for one database (runbook 002, scenario 4)."""
    now = now if now is not None else time.time()
    entry = newest(entries, database=database, status='verified')
    if entry is None:
        return False, 'no verified backup of %s exists' % database, None
    age_h = (now - entry['created_at']) / 3600.0
    if age_h > max_age_hours:
        return False, ('the newest verified backup of %s is %.1f hours old (%s), older than the %s hour limit' % (
            database, age_h, iso(entry['created_at']), max_age_hours)), entry
    return True, 'the newest verified backup of %s is %.1f hours old (limit %s)' % (
        database, age_h, max_age_hours), entry
