# -*- coding: utf-8 -*-
# Copyright (c) tradeops.dr contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options of the shared service-control layer (module_utils/_service.py).
    DOCUMENTATION = r'''
options:
  name:
    description:
      - Name of the service, used in messages and as the default unit, container or compose service.
      - Required, here or in O(service).
    type: str
  manager:
    description:
      - How the service is run on this host.
      - V(process) runs O(start_command) and tracks the service by O(pidfile); used by the sandbox.
      - V(systemd) uses C(systemctl) on O(unit).
      - V(docker) controls the container O(container) through the Docker SDK and waits for its
        health status when the image defines a HEALTHCHECK.
      - V(compose) controls O(compose_service) of a C(docker compose) project.
      - V(kubernetes) controls the Deployment O(name) with C(kubectl) - restart is C(rollout restart)
        then C(rollout status); stop and start scale it to 0 and O(replicas).
      - Required, here or in O(service).
    type: str
    choices: [process, systemd, docker, compose, kubernetes]
  start_command:
    description:
      - Command that starts the service (a list, or a string split like a shell would).
      - By default the command must daemonize, exit 0 within O(ready_timeout) and have the
        service write O(pidfile) (C(redis-server) with C(daemonize yes), C(pg_ctl start)).
        With O(foreground=true) the command is the service - it is detached and its pid written to O(pidfile).
      - Required with O(manager=process) to start the service.
    type: raw
  foreground:
    description: The O(start_command) stays in the foreground (see O(start_command)).
    type: bool
    default: false
  pidfile:
    description: Pidfile of the service. Required with O(manager=process).
    type: path
  workdir:
    description: Working directory of O(start_command).
    type: path
  log_file:
    description: File that receives the output of O(start_command).
    type: path
  stop_timeout:
    description: Seconds to wait after SIGTERM (or C(docker stop)) before the service is killed.
    type: float
    default: 30.0
  unit:
    description: systemd unit; defaults to O(name).
    type: str
  container:
    description: Container name; defaults to O(name).
    type: str
  docker_host:
    description:
      - Docker engine to talk to, for example V(unix:///run/docker.sock).
      - Falls back to the environment variable E(DOCKER_HOST), then to the SDK's default.
    type: str
  compose_project:
    description: Compose project name (C(-p)).
    type: str
  compose_files:
    description: Compose files (C(-f)).
    type: list
    elements: path
    default: []
  compose_service:
    description: Compose service; defaults to O(name).
    type: str
  compose_project_dir:
    description: Compose project directory (C(--project-directory)).
    type: path
  namespace:
    description: Kubernetes namespace (V(kubernetes)).
    type: str
  replicas:
    description: Replicas a start scales the Deployment to (V(kubernetes)).
    type: int
    default: 1
  probe:
    description:
      - Readiness probe retried with exponential backoff until O(ready_timeout).
    type: dict
    default: {}
    suboptions:
      type:
        description: V(redis) sends PING, V(postgres) runs C(pg_isready), V(http) expects O(probe.status_code),
          V(tcp) connects, V(command) expects rc 0, V(none) only checks that the service runs.
        type: str
        default: none
        choices: [redis, postgres, http, tcp, command, none]
      host:
        description: Host to probe.
        type: str
        default: 127.0.0.1
      port:
        description: Port to probe (required for V(redis) and V(tcp)).
        type: int
      username:
        description: User for V(redis) (ACL) or V(postgres).
        type: str
      password:
        description: Password for V(redis). Never logged.
        type: str
      database:
        description: Database for V(postgres).
        type: str
      url:
        description: URL for V(http).
        type: str
      status_code:
        description: Expected HTTP status for V(http).
        type: int
        default: 200
      command:
        description: Command for V(command).
        type: raw
      probe_timeout:
        description: Seconds one probe attempt may take.
        type: float
        default: 2.0
  ready_timeout:
    description: Seconds to wait for the probe (and the container health) after a start.
    type: float
    default: 60.0
'''
