# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every PostgreSQL module of tradeops.dr.
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host of the PostgreSQL server (a name, an address or a socket folder).
      - Falls back to the environment variable E(PGHOST).
    type: str
    default: 127.0.0.1
  login_port:
    description:
      - Port of the PostgreSQL server.
      - Falls back to the environment variable E(PGPORT).
    type: int
    default: 5432
  login_user:
    description:
      - Role to connect as. Dumps, restores and renames need a role that owns the databases or a superuser.
      - Falls back to the environment variable E(PGUSER).
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user). Never logged; the client binaries receive it through E(PGPASSWORD), never on
        their command line.
      - Falls back to the environment variable E(PGPASSWORD).
    type: str
  maintenance_db:
    description: Database to connect to for server-wide work (creating, renaming and listing databases).
    type: str
    default: postgres
  connect_timeout:
    description: Seconds a connection attempt may take.
    type: int
    default: 10
  pg_bin_dir:
    description:
      - Folder of the PostgreSQL client binaries (C(pg_dump), C(pg_restore), C(psql)), for example
        C(/usr/lib/postgresql/15/bin). Default is to find them on E(PATH).
    type: path
requirements:
  - psycopg2 on the managed host
  - the PostgreSQL client binaries on the managed host
notes:
  - Database, schema and table names are accepted only when they consist of letters, digits, C(_), C($), C(.) and
    C(-) (at most 63 characters, starting with a letter or C(_)); anything else is refused before any SQL runs.
    Accepted names are still always quoted as identifiers.
'''
