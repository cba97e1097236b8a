# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module_utils is PRIVATE to the tradeops.dr collection. It may change without notice.
"""Is the run that started this module still there?

A destructive module (a database swap) must not go on alone after its controller was killed:
`kill -9` of ansible-playbook leaves the module's own process running, and a re-run may have
finished meanwhile. At start the module records its ancestors (pid and start time, from /proc);
`gone()` names the first that has exited or been replaced. Where /proc is not readable the
watch is empty and never reports a loss (documented, not hidden: `supported`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


def proc_stat(pid):
    """(ppid, starttime) of a live process, or None."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
    except (IOError, OSError, IndexError):
        return None
    if fields[0] == 'Z':  # exited, not reaped yet
        return None
    return int(fields[1]), fields[19]


class ControllerWatch(object):
    """The chain of ancestors of this process (up to, not including, pid 1)."""

    def __init__(self, pid=None):
        self.chain = []
        pid = pid or os.getpid()
        seen = set()
        while True:
            st = proc_stat(pid)
            if st is None:
                break
            ppid = st[0]
            if ppid <= 1 or ppid in seen:
                break
            parent = proc_stat(ppid)
            if parent is None:
                break
            self.chain.append((ppid, parent[1]))
            seen.add(ppid)
            pid = ppid

    @property
    def supported(self):
        return bool(self.chain)

    def gone(self):
        """The pid of the first ancestor that is no longer the same process, or None."""
        for pid, started in self.chain:
            st = proc_stat(pid)
            if st is None or st[1] != started:
                return pid
        return None
