# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Redis append-only files: where they are (Redis 7 multi-part AOF with its manifest, or
the single file of older servers), what redis-check-aof says of them, and how many bytes
a --fix would cut."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

# redis-check-aof prints one such line per file it analysed (Redis 7.0 and later; 6.x
# prints the same without filename=).
_ANALYZED = re.compile(
    r'AOF analyzed: (?:filename=(?P<file>[^,]+), )?size=(?P<size>\d+), ok_up_to=(?P<ok>\d+), '
    r'(?:ok_up_to_line=(?P<line>\d+), )?diff=(?P<diff>\d+)')
_INVALID = re.compile(r'AOF (?P<file>\S+) (?:is not valid|format error)')
_RDB_BAD = re.compile(r'RDB ERROR DETECTED|RDB (?:preamble|file) .*(?:is not valid|corrupt|error)', re.I)


class AofTarget(object):
    """What to hand to redis-check-aof: the manifest of a multi-part AOF, or one file."""

    def __init__(self, data_dir, appenddirname='appendonlydir', appendfilename='appendonly.aof'):
        self.data_dir = data_dir
        self.aof_dir = os.path.join(data_dir, appenddirname)
        self.manifest = os.path.join(self.aof_dir, appendfilename + '.manifest')
        self.single = os.path.join(data_dir, appendfilename)
        if os.path.isfile(self.manifest):
            self.kind, self.check_path, self.copy_path = 'multi-part', self.manifest, self.aof_dir
        elif os.path.isfile(self.single):
            self.kind, self.check_path, self.copy_path = 'single', self.single, self.single
        else:
            self.kind, self.check_path, self.copy_path = 'absent', None, None

    def files(self):
        """{name: size} of the AOF files (manifest included) as they are now."""
        if self.kind == 'multi-part':
            return dict((n, os.path.getsize(os.path.join(self.aof_dir, n)))
                        for n in sorted(os.listdir(self.aof_dir)) if os.path.isfile(os.path.join(self.aof_dir, n)))
        if self.kind == 'single':
            return {os.path.basename(self.single): os.path.getsize(self.single)}
        return {}


def parse_check_output(text, rc):
    """Turn redis-check-aof's output into dict(valid, files=[...], damaged=[...],
    bytes_to_cut, detail). A file is damaged when diff > 0 or it is named not valid."""
    files = []
    for match in _ANALYZED.finditer(text):
        files.append(dict(file=match.group('file'), size=int(match.group('size')),
                          ok_up_to=int(match.group('ok')),
                          ok_up_to_line=int(match.group('line')) if match.group('line') else None,
                          bytes_after_ok=int(match.group('diff'))))
    named_invalid = set(m.group('file') for m in _INVALID.finditer(text))
    damaged = [f for f in files if f['bytes_after_ok'] > 0 or f['file'] in named_invalid]
    rdb_bad = bool(_RDB_BAD.search(text))
    valid = rc == 0 and not damaged and not rdb_bad and 'is not valid' not in text
    detail_lines = [line.strip() for line in text.splitlines()
                    if re.search(r'not valid|format error|Expected|Bad file|truncated|Unexpected|corrupt', line, re.I)]
    return dict(valid=valid, files=files, damaged=damaged, rdb_damaged=rdb_bad,
                bytes_to_cut=sum(f['bytes_after_ok'] for f in damaged), detail=detail_lines[-6:])
