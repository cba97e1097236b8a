# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The orchestrator of the data pipelines (runbook 000: Dagster; runbook 001: Airflow), as the pipeline modules
    # reach it.
    DOCUMENTATION = r'''
options:
  backend:
    description:
      - V(dagster) - Dagster's webserver, through its GraphQL API (the C(dagster-graphql) client).
      - V(airflow) - Airflow 3's API server, through its stable REST API C(/api/v2) (the C(apache-airflow-client)
        client).
    type: str
    required: true
    choices: [dagster, airflow]
  url:
    description:
      - Base URL of the orchestrator, for example V(http://127.0.0.1:3001) (Dagster's webserver; C(/graphql) is
        under it) or V(http://127.0.0.1:8080) (Airflow's API server).
    type: str
    required: true
  username:
    description: Airflow - the user whose O(password) is exchanged for a token at C(POST /auth/token).
    type: str
  password:
    description:
      - Airflow - the password of O(username). Never logged, never part of a message.
      - Falls back to the environment variable E(PIPELINE_API_PASSWORD); keep it in Ansible Vault.
    type: str
  token:
    description:
      - A bearer token instead of O(username) and O(password) (Airflow), or the C(Dagster-Cloud-Api-Token) of a
        Dagster+ deployment. Never logged.
      - Falls back to the environment variable E(PIPELINE_API_TOKEN).
    type: str
  timeout:
    description: Seconds to wait for each answer of the orchestrator.
    type: float
    default: 10
  validate_certs:
    description: Verify the orchestrator's TLS certificate (V(https) URLs).
    type: bool
    default: true
  heartbeat_max_age:
    description:
      - Dagster - seconds after which a required daemon's newest heartbeat means the daemon does not run (its daemons
        beat every 30 s at most; Dagster's own UI waits 1800 s, while runs stay queued).
    type: float
    default: 120
requirements:
  - dagster-graphql (O(backend=dagster))
  - apache-airflow-client 3.x (O(backend=airflow))
'''
