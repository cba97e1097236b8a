# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every Redis module of tradeops.dr.
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host of the Redis server.
      - Falls back to the environment variable E(REDIS_HOST).
    type: str
    default: 127.0.0.1
  login_port:
    description:
      - TCP port of the Redis server.
      - Falls back to the environment variable E(REDIS_PORT).
    type: int
    default: 6379
  login_user:
    description:
      - ACL user name (Redis 6 and later). Leave unset for the default user.
      - Falls back to the environment variable E(REDIS_USER).
    type: str
  login_password:
    description:
      - Password of the user. Never logged nor shown in error messages.
      - Falls back to the environment variable E(REDISCLI_AUTH), the one C(redis-cli) reads.
    type: str
  db:
    description: Database number.
    type: int
    default: 0
  tls:
    description: Connect with TLS.
    type: bool
    default: false
  ca_cert:
    description: CA bundle to verify the server's certificate when O(tls=true).
    type: path
  connect_timeout:
    description: Seconds to wait for the connection and for each command.
    type: float
    default: 3.0
requirements:
  - redis (the Python library, on the host that runs the module)
notes:
  - Authentication failures, refused connections and time-outs fail with a message that
    names the endpoint and never the password.
'''
