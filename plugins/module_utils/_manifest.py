# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Evidence about files: sha256 and size, manifests of a set of files, safety copies that
are never overwritten, and path checks that refuse anything escaping a target."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time

CHUNK = 1024 * 1024


def utc_stamp(now=None):
    """20261123T020000Z: sorts by time, safe in file and database names."""
    return time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now if now is not None else time.time()))


def utc_iso(now=None):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now if now is not None else time.time()))


def parse_utc_iso(text):
    return calendar.timegm(time.strptime(text, '%Y-%m-%dT%H:%M:%SZ'))


# Backups hold every trade and every setting: files are readable by their owner and group only
# (give the people and jobs that read backups the owner's group), folders likewise.
PRIVATE_FILE = 0o640
PRIVATE_DIR = 0o750


def private(path):
    """Restrict a file or folder the collection wrote into a backup location."""
    os.chmod(path, PRIVATE_DIR if os.path.isdir(path) else PRIVATE_FILE)
    return path


def private_dirs(path):
    """Create the folder path and every missing parent as private folders (PRIVATE_DIR, whatever
    the umask); folders that exist keep their mode (they are the user's). Returns path."""
    path = target = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
            continue
        os.chmod(folder, PRIVATE_DIR)
    return target


def inside(root, path):
    """Whether path, every link resolved, lies inside root (resolved too)."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def link_below(root, path):
    """The first symbolic link among path and its parents below root (root itself may be a
    link: it is the folder configured now, or the backup's own folder), or None."""
    root = os.path.abspath(root)
    rel = os.path.relpath(os.path.abspath(path), root)
    current = root
    for part in ([] if rel == os.curdir else rel.split(os.sep)):
        current = os.path.join(current, part)
        if os.path.islink(current):
            return current
    return None


def _own_fd(fd, mode=None, owner=None):
    """Mode and owner set on an open file, never by path; owner (uid, gid) applied only as root."""
    if mode is not None:
        os.fchmod(fd, mode)
    if owner is not None and os.geteuid() == 0:
        os.fchown(fd, owner[0], owner[1])


@contextlib.contextmanager
def atomic_file(path, mode=0o640, owner=None, binary=False):
    """Write path so that a reader sees the old file or the new one, never half of one: yields
    (handle, temp path); on a clean exit the temp file is flushed, fsynced and renamed over path, on
    an exception it is removed and path is left as it was. owner: (uid, gid), applied as root.

    The folder may belong to another account (a database's data directory, an application's tree):
    the temp file gets a name nobody can guess, is created with O_EXCL|O_NOFOLLOW (mkstemp), and its
    mode and owner are set on the open descriptor, never by path - a link planted in the folder is
    never followed, and root never writes or chowns a file it did not create."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb' if binary else 'w') as handle:
            _own_fd(handle.fileno(), mode, owner)
            yield handle, tmp
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # rename() replaces a link planted at path, it does not follow it
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text_atomic(path, text, mode=0o640, owner=None):
    """text (str or bytes) written to path through atomic_file."""
    with atomic_file(path, mode, owner, binary=isinstance(text, bytes)) as (handle, _tmp):
        handle.write(text)


def write_json_atomic(path, data, mode=0o640):
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + '\n', mode)


def set_owner_mode(path, mode=None, owner=None):
    """chmod/chown a file or folder this module made, through a descriptor opened with O_NOFOLLOW:
    a link swapped in for it by the account that can write its folder is refused, not followed.
    owner: (uid, gid), applied only when the module runs as root."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))
    try:
        _own_fd(fd, mode, owner)
    finally:
        os.close(fd)


def create_private(path, mode=0o600, owner=None, append=False):
    """Open a new file for writing that did not exist: O_CREAT|O_EXCL|O_NOFOLLOW, mode and owner
    set on the descriptor. A file (or a link) already at path raises FileExistsError unless
    append is set, in which case only a regular file with one link that root or the owner made
    is opened again - never a link, never another account's hard link to a root file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        if not append:
            raise
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))
        st = os.fstat(fd)
        allowed = {0, os.geteuid()} | ({owner[0]} if owner else set())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid not in allowed:
            os.close(fd)
            raise OSError(errno.EPERM, 'not a private regular file (owner uid %d, %d links): refused' %
                          (st.st_uid, st.st_nlink), path)
        return fd  # a file this module (or the owner) made before keeps its mode and owner
    try:
        _own_fd(fd, mode, owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_json(path):
    """(data, None) or (None, reason): the reason says whether the file is unreadable or not JSON."""
    try:
        with open(path) as handle:
            return json.load(handle), None
    except (IOError, OSError) as exc:
        return None, 'cannot be read: %s' % (exc.strerror or exc)
    except ValueError as exc:
        return None, 'is not valid JSON: %s' % exc


def digest(path, algorithm='sha256'):
    """Hex digest of a file, read in 1 MiB blocks (sha256 for evidence; md5 where model cards use it)."""
    h = hashlib.new(algorithm)
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            h.update(block)
    return h.hexdigest()


def sha256_file(path):
    return digest(path, 'sha256')


def mismatch(path, entry):
    """How a file differs from its recorded {size, sha256}: None, 'missing', 'size' or 'sha256'
    (the size is compared first: it is free and catches truncation)."""
    if not os.path.isfile(path):
        return 'missing'
    if os.path.getsize(path) != entry.get('size'):
        return 'size'
    if sha256_file(path) != entry.get('sha256'):
        return 'sha256'
    return None


def file_entries(root, paths=None):
    """{relative path: {sha256, size}} for the given files (relative to root) or for every
    regular file below root."""
    entries = {}
    if paths is None:
        if os.path.isfile(root):
            return {os.path.basename(root): _entry(root)}
        paths = []
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                paths.append(os.path.relpath(os.path.join(dirpath, name), root))
    for rel in sorted(paths):
        entries[rel] = _entry(os.path.join(root, rel))
    return entries


def _entry(path):
    return dict(sha256=sha256_file(path), size=os.path.getsize(path))


def safe_relpath(rel):
    """Refuse a manifest path that is absolute or climbs out of its target with '..'."""
    if not rel or os.path.isabs(rel) or rel.startswith('~'):
        raise ValueError('unsafe path %r: absolute paths are refused' % rel)
    norm = os.path.normpath(rel)
    if norm == '..' or norm.startswith('..' + os.sep) or '..' in norm.split(os.sep):
        raise ValueError('unsafe path %r: it escapes the target directory' % rel)
    return norm


def find_identical_copy(backup_root, prefix, entries):
    """A safety copy below backup_root whose manifest lists exactly these entries, if any,
    so that running twice does not pile up identical copies."""
    if not os.path.isdir(backup_root):
        return None
    for name in sorted(os.listdir(backup_root)):
        if not name.startswith(prefix):
            continue
        manifest = os.path.join(backup_root, name, 'MANIFEST.json')
        try:
            with open(manifest) as handle:
                if json.load(handle).get('files') == entries:
                    return os.path.join(backup_root, name)
        except (IOError, OSError, ValueError):
            continue
    return None


def copy_aside(source, backup_root, prefix, reason, entries=None):
    """Copy a file or directory into a new folder below backup_root with a MANIFEST.json
    (sha256 and size of each file, source, reason, time), verify the copy against it, and
    return (folder, entries, reused). An identical earlier copy is reused, never overwritten."""
    entries = entries if entries is not None else file_entries(source)
    existing = find_identical_copy(backup_root, prefix, entries)
    if existing:
        return existing, entries, True
    stamp = time.strftime('%Y%m%dT%H%M%S', time.gmtime())
    dest = os.path.join(backup_root, '%s%s' % (prefix, stamp))
    suffix = 1
    while os.path.exists(dest):
        suffix += 1
        dest = os.path.join(backup_root, '%s%s-%d' % (prefix, stamp, suffix))
    os.makedirs(dest, mode=0o700)
    data_dest = os.path.join(dest, os.path.basename(source.rstrip(os.sep)))
    if os.path.isdir(source):
        shutil.copytree(source, data_dest)
        copied = file_entries(data_dest)
    else:
        shutil.copy2(source, data_dest)
        copied = {os.path.basename(source): _entry(data_dest)}
    if copied != entries:
        raise IOError('the safety copy in %s does not match its source (checksums differ)' % dest)
    with open(os.path.join(dest, 'MANIFEST.json'), 'w') as handle:
        json.dump(dict(source=os.path.abspath(source), reason=reason,
                       created_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), files=entries),
                  handle, indent=2, sort_keys=True)
    return dest, entries, False
