# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The PMS (portfolio management system) of runbook 000, as the book-correction modules reach it.
    DOCUMENTATION = r'''
options:
  url:
    description:
      - Base URL of the PMS API (the runbook's C(/api/v1/pms/...) paths and C(/health) are under it), for example
        V(http://127.0.0.1:8000).
    type: str
    required: true
  token:
    description:
      - Bearer token of the PMS API, when it needs one. Never logged, never part of a message or a record.
      - Falls back to the environment variable E(PMS_API_TOKEN); keep it in Ansible Vault.
    type: str
  timeout:
    description: Seconds to wait for each answer of the PMS.
    type: float
    default: 10
  validate_certs:
    description: Verify the PMS's TLS certificate (V(https) URLs).
    type: bool
    default: true
  incident:
    description: The incident the correction belongs to (recorded in the Decision Journal; part of the approval code).
    type: str
    required: true
  actor:
    description: Who corrects (recorded in the Decision Journal).
    type: str
    required: true
  approval:
    description:
      - The approval code of this correction's plan (V(xxxx-xxxx-xxxx)), as a run without it printed. Needed when
        the correction is above its approval threshold. A code approves that plan only, and is refused once the
        Decision Journal shows it spent on another correction.
    type: str
'''
