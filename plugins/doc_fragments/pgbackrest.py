# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The pgBackRest options shared by the pgbackrest, pg_pitr and pg_wal_transactions modules.
    DOCUMENTATION = r'''
options:
  stanza:
    description: The pgBackRest stanza of the cluster (one per cluster).
    type: str
    required: true
  config:
    description: The pgBackRest configuration file (the pgbackrest module writes it, every command reads it).
    type: path
    required: true
  repo_path:
    description:
      - The repository folder - read to name missing WAL segments and to find archived segments by time.
      - Required by V(configure) of the pgbackrest module and by pg_wal_transactions.
    type: path
  os_user:
    description: The cluster's operating-system owner; pgBackRest (and pg_ctl) run as this user when the module runs as root.
    type: str
    default: postgres
  binary:
    description: The pgbackrest command.
    type: str
    default: pgbackrest
'''
