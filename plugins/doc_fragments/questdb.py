# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every QuestDB module of tradeops.dr.
    DOCUMENTATION = r'''
options:
  url:
    description:
      - Base URL of QuestDB's HTTP API (the C(/exec) endpoint lives below it).
      - Falls back to the environment variable E(QUESTDB_URL).
    type: str
    default: http://127.0.0.1:9000
  health_url:
    description:
      - Base URL of QuestDB's health port (minimal HTTP server).
      - Falls back to the environment variable E(QUESTDB_HEALTH_URL).
    type: str
    default: http://127.0.0.1:9003
  login_user:
    description:
      - User for HTTP basic authentication, when QuestDB requires it.
      - Falls back to the environment variable E(QUESTDB_USER).
    type: str
  login_password:
    description:
      - Password for HTTP basic authentication. Never logged.
      - Falls back to the environment variable E(QUESTDB_PASSWORD).
    type: str
  request_timeout:
    description: Seconds one HTTP request may take.
    type: float
    default: 10.0
  validate_certs:
    description: Verify TLS certificates for C(https) URLs.
    type: bool
    default: true
notes:
  - Errors of QuestDB (HTTP 400 with C(error) and C(position)) fail with the statement, the error and the position.
  - Table names are refused unless they are plain identifiers; they go into SQL unquoted.
'''
