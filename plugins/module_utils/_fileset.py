# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""File-state backup sets (runbook 002's recovery manager).

    <root>/<type>_<YYYYMMDDTHHMMSSZ>/metadata.json
    <root>/<type>_<stamp>/files/<category>/<n>/<path relative to the source root>

A set holds the files of configured source roots per category (config, state, data). The
metadata names type (full, config, data, state, pre-restore), description, tags, created_at,
status and every file with its category, root index, relative path, sha256 and size. A restore
maps files back onto the roots configured NOW (never onto paths read from the metadata), and
refuses any relative path that is absolute or climbs out with '..'."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import stat
import time

from ansible_collections.tradeops.dr.plugins.module_utils import _manifest

CATEGORIES = ('config', 'state', 'data')
TYPES = ('full', 'config', 'state', 'data', 'pre-restore', 'post-restore')
METADATA = 'metadata.json'


class FilesetError(Exception):
    """A backup set is unusable or an operation was refused; the message says why."""


stamp = _manifest.utc_stamp
iso = _manifest.utc_iso
parse_iso = _manifest.parse_utc_iso


def check_sources(sources):
    """Refuse categories other than config, state, data and roots that are not absolute paths."""
    bad = [c for c in sources if c not in CATEGORIES]
    if bad:
        raise FilesetError('unknown source categories %s (use %s)' % (', '.join(bad), ', '.join(CATEGORIES)))
    for category, roots in sources.items():
        if not isinstance(roots, list) or not all(isinstance(r, str) and os.path.isabs(r) for r in roots):
            raise FilesetError('sources.%s must be a list of absolute paths' % category)


def categories_of(set_type):
    return CATEGORIES if set_type in ('full', 'pre-restore', 'post-restore') else (set_type,)


def walk(root):
    """Relative paths of the regular files below root (root itself when it is a file)."""
    if os.path.isfile(root):
        return [os.path.basename(root)]
    found = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(os.path.relpath(path, root))
    return found


def source_file(root, rel):
    """The live path of a file walk(root) found (root itself when the root is one file)."""
    return root if os.path.isfile(root) else os.path.join(root, rel)


def live_target(entry, rel, sources):
    """(root, target) where a set's file belongs on the roots configured NOW in sources, or None when
    its category has no root at that index any more (a root may be one file)."""
    roots = sources.get(entry['category']) or []
    index = int(entry['root'])
    if index >= len(roots):
        return None
    root = os.path.abspath(roots[index])
    return root, root if entry.get('single') else os.path.join(root, rel)


def create(backup_root, sources, set_type='full', description='', tags=(), now=None):
    """Copy the files of sources[category] (lists of files or folders) for the set's categories,
    verify each copy by sha256, write metadata.json last (a set without it is incomplete)."""
    if set_type not in TYPES:
        raise FilesetError('type %r is not one of %s' % (set_type, ', '.join(TYPES)))
    now = now if now is not None else time.time()
    set_id = '%s_%s' % (set_type, stamp(now))
    dest, n = os.path.join(backup_root, set_id), 1
    while os.path.exists(dest):
        n += 1
        set_id = '%s_%s-%d' % (set_type, stamp(now), n)
        dest = os.path.join(backup_root, set_id)
    _manifest.private_dirs(backup_root)
    os.makedirs(dest, mode=_manifest.PRIVATE_DIR)
    _manifest.private(dest)
    files = []
    roots = {}
    for category in categories_of(set_type):
        roots[category] = [os.path.abspath(r) for r in sources.get(category) or []]
        for index, root in enumerate(roots[category]):
            if not os.path.exists(root):
                continue  # reported as missing in the metadata's roots; nothing to copy
            for rel in walk(root):
                src = source_file(root, rel)
                stored = os.path.join('files', category, str(index), rel)
                target = os.path.join(dest, stored)
                os.makedirs(os.path.dirname(target), mode=_manifest.PRIVATE_DIR, exist_ok=True)
                shutil.copy2(src, target)
                _manifest.private(target)
                entry = _manifest.file_entries(dest, [stored])[stored]
                if entry['sha256'] != _manifest.sha256_file(src):
                    raise FilesetError('%s changed while it was copied; run the backup again' % src)
                files.append(dict(category=category, root=index, path=rel, single=os.path.isfile(root),
                                  sha256=entry['sha256'], size=entry['size']))
    metadata = dict(backup_id=set_id, type=set_type, description=description, tags=list(tags), created_at=iso(now),
                    status='created', roots=roots, files=files, files_count=len(files),
                    size_bytes=sum(f['size'] for f in files),
                    missing_roots=[r for c in roots for r in roots[c] if not os.path.exists(r)])
    write_metadata(dest, metadata)
    return dest, metadata


def write_metadata(set_dir, metadata):
    _manifest.write_json_atomic(os.path.join(set_dir, METADATA), metadata)


def read_metadata(set_dir):
    path = os.path.join(set_dir, METADATA)
    metadata, problem = _manifest.read_json(path)
    if problem:
        raise FilesetError('backup set %s has no readable metadata.json: it %s' % (set_dir, problem))
    for key in ('backup_id', 'type', 'created_at', 'files'):
        if key not in metadata:
            raise FilesetError('backup set %s: metadata.json lacks %r' % (set_dir, key))
    return metadata


def stored_path(entry):
    """files/<category>/<root>/<path>, refusing traversal in any part."""
    if entry.get('category') not in CATEGORIES:
        raise FilesetError('unknown category %r in the metadata' % entry.get('category'))
    try:
        rel = _manifest.safe_relpath(entry['path'])
    except ValueError as exc:
        raise FilesetError('refused: %s' % exc)
    return os.path.join('files', entry['category'], str(int(entry['root'])), rel), rel


def verify(set_dir):
    """Problems (strings): unreadable metadata, unsafe paths, missing or changed files."""
    try:
        metadata = read_metadata(set_dir)
    except FilesetError as exc:
        return None, [str(exc)]
    problems = []
    for entry in metadata['files']:
        try:
            stored, _rel = stored_path(entry)
        except (FilesetError, KeyError, ValueError, TypeError) as exc:
            problems.append(str(exc))
            continue
        path = os.path.join(set_dir, stored)
        if _manifest.link_below(set_dir, path) or not _manifest.inside(set_dir, path):
            problems.append('%s is a symbolic link or lies outside the set: refused (a set holds its own files)'
                            % stored)
            continue
        kind = _manifest.mismatch(path, entry)
        if kind == 'missing':
            problems.append('%s is missing from the set' % stored)
        elif kind:
            problems.append('%s does not match its sha256/size in metadata.json (tampered or corrupted)' % stored)
    return metadata, problems


def catalog(backup_root):
    """Every set below backup_root, newest first: dicts of id, dir, type, created_at, status,
    tags, files_count, size_bytes (status 'incomplete' for a folder without metadata)."""
    sets = []
    if not os.path.isdir(backup_root):
        return sets
    for name in sorted(os.listdir(backup_root)):
        set_dir = os.path.join(backup_root, name)
        if not os.path.isdir(set_dir):
            continue
        try:
            m = read_metadata(set_dir)
        except FilesetError as exc:
            sets.append(dict(backup_id=name, dir=set_dir, type=None, created_at=None, status='incomplete',
                             problem=str(exc)))
            continue
        sets.append(dict(backup_id=m['backup_id'], dir=set_dir, type=m['type'], created_at=m['created_at'],
                         status=m.get('status', 'created'), tags=m.get('tags', []), description=m.get('description', ''),
                         files_count=len(m['files']), size_bytes=sum(f.get('size', 0) for f in m['files'])))
    sets.sort(key=lambda s: s['created_at'] or '', reverse=True)
    return sets


def check_target(root, target):
    """Refuse to write target unless it lies inside root with every link resolved, and no
    link stands at it or between it and root: a restore never writes through a link."""
    link = _manifest.link_below(root, target)
    if link:
        raise FilesetError('refused: %s is a symbolic link; a restore never writes through a link (%s -> %s)' % (
            link, link, os.readlink(link)))
    if not _manifest.inside(root, target):
        raise FilesetError('refused: %s resolves outside %s' % (target, os.path.realpath(root)))


def plan_restore(set_dir, metadata, sources, categories):
    """[(entry, stored, target, action)] with action create, replace or unchanged; targets are
    built from the roots configured now. Raises FilesetError on a path that escapes."""
    plan = []
    for entry in metadata['files']:
        if entry['category'] not in categories:
            continue
        stored, rel = stored_path(entry)
        placed = live_target(entry, rel, sources)
        if placed is None:
            roots = sources.get(entry['category']) or []
            raise FilesetError('the set holds %s root #%d, but only %d %s root(s) are configured now' % (
                entry['category'], int(entry['root']), len(roots), entry['category']))
        root, target = placed
        if os.path.commonpath([root, os.path.abspath(target)]) != root:
            raise FilesetError('refused: %s would be written outside %s' % (rel, root))
        if not entry.get('single'):
            check_target(root, target)
        elif os.path.islink(target):
            raise FilesetError('refused: %s is a symbolic link; a restore never writes through a link' % target)
        if os.path.isfile(target) and _manifest.sha256_file(target) == entry['sha256']:
            action = 'unchanged'
        else:
            action = 'replace' if os.path.exists(target) else 'create'
        plan.append((dict(entry, __root=None if entry.get('single') else root), os.path.join(set_dir, stored),
                     target, action))
    return plan


def apply_restore(plan):
    """Write each planned file atomically (temp file beside it, then rename), verified by sha256."""
    written = []
    for entry, stored, target, action in plan:
        if action == 'unchanged':
            continue
        root = entry.get('__root')
        if root:  # checked again right before the write: a link may have appeared since the plan
            check_target(root, target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        st = os.stat(stored)
        with _manifest.atomic_file(target, stat.S_IMODE(st.st_mode), binary=True) as (handle, tmp):
            with open(stored, 'rb') as source:
                shutil.copyfileobj(source, handle, _manifest.CHUNK)
            handle.flush()
            os.utime(handle.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
            if _manifest.sha256_file(tmp) != entry['sha256']:  # the temp file is removed, the target left as it was
                raise FilesetError('the copy of %s does not match its sha256; %s was left as it was' % (stored, target))
        written.append(target)
    return written
