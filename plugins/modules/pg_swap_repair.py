#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_swap_repair
short_description: Put right what an interrupted restore swap left - a database that refuses connections
version_added: 0.1.0
description:
  - M(tradeops.dr.pg_restore_swap) refuses new connections to the current database for the instant between
    ending its sessions and the rename. A run killed in that instant (C(kill -9)) leaves the database refusing
    every connection, C(datallowconn = false), while nothing is running any more.
  - This module takes the same advisory lock as a restore (so it never acts while a restore of the database is
    running, and names that restore instead), then allows connections to O(database) again when they are
    refused, and lists the C(<database>__restore_*) databases an interrupted restore left behind. Those are
    reported, not dropped - one may be kept on purpose for inspection.
extends_documentation_fragment:
  - tradeops.dr.postgres
options:
  database:
    description: The database a restore swaps.
    type: str
    required: true
attributes:
  check_mode:
    support: full
    description: Reports what it would put right; changes nothing.
  diff_mode:
    support: none
    description: The result lists what was changed.
  idempotent:
    support: full
    description: A database that accepts connections is left as it is.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Let connections in again after an interrupted swap
  tradeops.dr.pg_swap_repair:
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
    database: trading
'''

RETURN = r'''
repair:
  description: What was found and done.
  returned: always
  type: dict
  contains:
    allowed_connections:
      description: Whether connections to O(database) were allowed again (or would be, in check mode).
      type: bool
      sample: true
    leftovers:
      description: Databases named C(<database>__restore_*) that an interrupted or failed restore left behind.
      type: list
      elements: str
      sample: [trading__restore_20261123t031500z]
    restore_in_progress:
      description: The session holding the restore lock, when a restore is running (nothing is changed then).
      type: dict
'''

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tradeops.dr.plugins.module_utils import _postgres

LOCK = _postgres.RESTORE_LOCK  # the lock of pg_restore_swap


def main():
    spec = _postgres.postgres_argument_spec()
    spec.update(database=dict(type='str', required=True))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    result = dict(allowed_connections=False, leftovers=[], restore_in_progress=None)
    conn = None
    locked = None
    try:
        db = _postgres.check_name(p['database'])
        conn = _postgres.Connection(p).connect()
        if _postgres.try_lock(conn, LOCK, db):
            locked = db
        else:
            result['restore_in_progress'] = _postgres.lock_holder(conn, LOCK, db)
            module.fail_json(repair=result, msg=(
                'a restore of %s is running (session %s): it owns the database until it ends; nothing was changed'
                % (db, result['restore_in_progress'])))
        result['leftovers'] = _postgres.databases_like(conn, '%s__restore_' % db)
        allowed = _postgres.allows_connections(conn, db)
        if allowed is False:
            if not module.check_mode:
                _postgres.allow_connections(conn, db, True)
            result['allowed_connections'] = True
    except (_postgres.PostgresError,) + _postgres.DB_ERRORS as exc:
        module.fail_json(exception=traceback.format_exc(), repair=result, msg='%s; nothing was changed' % str(exc).strip())
    finally:
        if conn is not None:
            if locked:  # released now, not once the server sees the session end
                _postgres.release_lock(conn, LOCK, locked)
            conn.close()
    module.exit_json(changed=result['allowed_connections'], repair=result)


if __name__ == '__main__':
    main()
