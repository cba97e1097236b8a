#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: alert_guard
short_description: The guardrails of a response started by an alert - admit it, or say why not
version_added: 0.2.0
description:
  - Event-Driven Ansible (the rulebook C(extensions/eda/rulebooks/tradeops_dr_alerts.yml)) starts
    C(playbooks/alert_response.yml) for an Alertmanager alert with nobody watching. This module decides, first,
    whether the response may run, and keeps the count of what ran.
  - A protective response (V(kill_switch), V(dead_man)) is always admitted - capital first, and engaging twice
    changes nothing. A recovery (V(recover)) is refused while the maintenance flag O(maintenance_file) exists,
    for an alert already handled (the same fingerprint and start - Alertmanager sends a firing alert again at every
    repeat interval), and past O(max_runs_per_hour) automatic runs of the same component. An alert whose
    response is V(notify) is never admitted (people act on it).
  - Every admitted run is appended to C(runs.jsonl) in O(state_dir) under an exclusive lock held from the read to
    the write, so that two alerts arriving together are both counted.
  - Not admitted is not a failure (C(admitted=false) and the reason); an alert that is not a firing tradeops.dr
    alert is refused as bad input.
options:
  alert:
    description:
      - One alert of Alertmanager's webhook post, as ansible-rulebook's event splitter hands it over
        (C(ansible_eda.event)) - its C(labels) (C(alertname), C(component), C(response), C(severity)),
        C(annotations), C(startsAt), C(fingerprint) and C(status).
    type: dict
    required: true
  state_dir:
    description:
      - The guard's folder on the control node (created 0750; refused when another account can write it).
    type: path
    default: /var/lib/tradeops-dr/alerts
  max_runs_per_hour:
    description: Automatic recoveries of one component within an hour before the next alert only notifies.
    type: int
    default: 3
  maintenance_file:
    description:
      - While this file exists no automatic recovery runs (its first line says why, and is reported). Protective
        responses still run. Default C(maintenance) in O(state_dir).
    type: path
attributes:
  check_mode:
    support: full
    description: Decides as in a real run and records nothing.
  diff_mode:
    support: none
    description: The result says what was decided and why.
  idempotent:
    support: full
    description: The same alert is admitted once; a second call reports it handled, with no change.
author:
  - tradeops.dr maintainers (@tradeops)
'''

EXAMPLES = r'''
- name: Admit the alert
  tradeops.dr.alert_guard:
    alert: "{{ ansible_eda.event }}"
    max_runs_per_hour: 3
  register: guard

- name: Stop unless admitted
  ansible.builtin.meta: end_playbook
  when: not guard.admitted
'''

RETURN = r'''
admitted:
  description: Whether the response may run now.
  returned: always
  type: bool
reason:
  description: Why (admitted, protective, maintenance, handled already, over the hourly limit, people only).
  returned: always
  type: str
  sample: "3 automatic runs for redis in the last hour (the limit is 3): a component that keeps breaking needs a person"
trigger:
  description:
    - What the incident record keeps of the alert - its name, component, response, severity, fingerprint, labels,
      summary and runbook line, when it started firing (also as Alertmanager sent it, C(starts_at_sent) - its re-sends
      of the alert carry the same string), when it was received and the detection delay (seconds from firing to this
      run).
  returned: always
  type: dict
runs_last_hour:
  description: Automatic recoveries of this component in the last hour, before this one.
  returned: always
  type: int
'''

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tradeops.dr.plugins.module_utils import _alerts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            alert=dict(type='dict', required=True),
            state_dir=dict(type='path', default='/var/lib/tradeops-dr/alerts'),
            max_runs_per_hour=dict(type='int', default=3),
            maintenance_file=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p['max_runs_per_hour'] < 0:
        module.fail_json(msg='max_runs_per_hour must be 0 or more, got %d' % p['max_runs_per_hour'])
    try:
        admitted, reason, facts = _alerts.admit(p['state_dir'], p['alert'], p['max_runs_per_hour'],
                                                p['maintenance_file'], record=not module.check_mode)
    except _alerts.AlertError as exc:
        module.fail_json(msg='%s. Nothing was run.' % exc, admitted=False, exception=traceback.format_exc())
    except (IOError, OSError) as exc:
        module.fail_json(msg='the guard cannot keep its history in %s: %s. Nothing was run.' % (p['state_dir'], exc),
                         admitted=False, exception=traceback.format_exc())
    alert = facts.pop('alert')
    trigger = dict(alert, received_at=facts['received_at'], detection_delay_seconds=facts['detection_delay_seconds'])
    module.exit_json(changed=admitted and not module.check_mode, admitted=admitted, reason=reason, trigger=trigger,
                     runs_last_hour=facts['runs_last_hour'])


if __name__ == '__main__':
    main()
