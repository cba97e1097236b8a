# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: lean_workers
type: aggregate
short_description: Spare each task's worker process the garbage collection of the controller's objects
version_added: 0.1.0
description:
  - The controller runs every task of every host in a worker process forked from itself. A worker inherits the
    controller's whole heap - the inventory, every variable, the parsed playbook, the loaded plugins - and
    Python's cyclic garbage collector, once the worker has allocated enough to run, walks all of those inherited
    objects again in each worker (and, by touching them, copies their memory pages out of the shared copy).
  - This callback does what the Python documentation of C(gc.freeze) advises for a process that forks without
    exec - in each worker, right after the fork, it moves the inherited objects into the collector's permanent
    generation (C(os.register_at_fork), C(gc.freeze)). The worker still collects what it allocates itself; the
    controller's own collection is not touched; the results are the same.
  - Measured on a healthy C(full_recovery.yml) run of the sandbox (157 workers, three interleaved pairs), the
    workers' CPU time fell by a fifth (4.9 to 3.9 CPU-s) and the whole run's by about 4 per cent;
    C(bench/lean_workers.py) measures it again.
  - It has no options and prints nothing; enable it in C(callbacks_enabled) (the collection's C(ansible.cfg) and
    the tradeops_dr Python API do).
'''

import gc
import os

from ansible.plugins.callback import CallbackBase

_REGISTERED = []  # once per process, however many times the plugin is loaded


def freeze_inherited_objects_in_each_worker():
    """Register gc.freeze to run in every child forked from this process from now on; once per process."""
    if not _REGISTERED:
        os.register_at_fork(after_in_child=gc.freeze)
        _REGISTERED.append(True)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'tradeops.dr.lean_workers'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        # the callbacks are loaded before the strategy forks its first worker
        freeze_inherited_objects_in_each_worker()
