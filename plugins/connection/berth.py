# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: berth
short_description: Run tasks in berth containers
description:
  - Executes commands in a running berth container with C(berth exec) and copies files in and out through
    the same channel, so containers can be Ansible hosts (system containers, molecule scenarios, fleets).
  - Become works inside the container where it needs no password (sudo with NOPASSWD, or running as root);
    a become password cannot be answered through C(berth exec) and is refused with a message.
author: berth contributors (@berth)
options:
  remote_addr:
    description: The container's name or ID.
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_berth_container
  berth_executable:
    description: The berth command on the controller.
    default: berth
    vars:
      - name: ansible_berth_executable
    env:
      - name: BERTH_EXECUTABLE
  berth_root:
    description: berth root holding the container.
    vars:
      - name: ansible_berth_root
    env:
      - name: BERTH_ROOT
  berth_runroot:
    description: berth run root.
    vars:
      - name: ansible_berth_runroot
    env:
      - name: BERTH_RUNROOT
  remote_user:
    description: User to run as inside the container.
    vars:
      - name: ansible_user
  pipelining:
    description:
      - Send modules on the exec's standard input instead of copying them in first (one C(berth exec) per
        task instead of four or five).
      - On by default here, unlike SSH, because C(berth exec) never allocates a terminal, so there is nothing
        that pipelining gives up (sudo with C(requiretty) cannot work through this connection in either mode).
    type: boolean
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
      - name: ansible_berth_pipelining
"""

import os
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.connection import ConnectionBase


class Connection(ConnectionBase):
    transport = "berth"
    has_pipelining = True

    def _berth(self) -> list[str]:
        argv = [self.get_option("berth_executable")]
        if self.get_option("berth_root"):
            argv += ["--root", self.get_option("berth_root")]
        if self.get_option("berth_runroot"):
            argv += ["--runroot", self.get_option("berth_runroot")]
        return argv

    def _container(self) -> str:
        return self.get_option("remote_addr")

    def _connect(self):
        # no round trip here: a missing or stopped container shows in the first exec (see _check_reachable)
        self._connected = True
        return self

    def _check_reachable(self, rc: int, stderr: bytes) -> None:
        if rc != 0 and stderr.startswith(b"berth: error: ") and (b"no such container" in stderr
                                                                 or b"is not running" in stderr):
            raise AnsibleConnectionFailure(f"berth container {self._container()}: "
                                           f"{stderr.decode(errors='replace').strip()[len('berth: error: '):]}")

    def _exec_argv(self, cmd: str) -> list[str]:
        argv = [*self._berth(), "exec"]
        if self.get_option("remote_user"):
            argv += ["-u", self.get_option("remote_user")]
        return argv + [self._container(), "/bin/sh", "-c", cmd]

    def exec_command(self, cmd, in_data=None, sudoable=False):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._connect()
        if sudoable and self.become and self.become.get_option("become_pass"):
            raise AnsibleError(f"berth container {self._container()}: the berth connection cannot answer a become "
                               "password prompt; allow the user passwordless sudo or connect as the target user")
        if in_data is not None:
            p = subprocess.run(self._exec_argv(cmd), input=in_data, capture_output=True)
        else:
            p = subprocess.run(self._exec_argv(cmd), stdin=subprocess.DEVNULL, capture_output=True)
        self._check_reachable(p.returncode, p.stderr)
        return p.returncode, p.stdout, p.stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        self._connect()
        if not os.path.exists(to_bytes(in_path)):
            raise AnsibleError(f"file {in_path} does not exist")
        with open(to_bytes(in_path), "rb") as f:
            p = subprocess.run(self._exec_argv(f"cat > {shlex.quote(out_path)}"), stdin=f, capture_output=True)
        self._check_reachable(p.returncode, p.stderr)
        if p.returncode != 0:
            raise AnsibleError(f"copying {in_path} into {self._container()}:{out_path} failed: "
                               f"{p.stderr.decode(errors='replace').strip()}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        self._connect()
        with open(to_bytes(out_path), "wb") as f:
            p = subprocess.run(self._exec_argv(f"cat {shlex.quote(in_path)}"), stdout=f, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
        self._check_reachable(p.returncode, p.stderr)
        if p.returncode != 0:
            raise AnsibleError(f"fetching {self._container()}:{in_path} failed: "
                               f"{p.stderr.decode(errors='replace').strip()}")

    def close(self):
        self._connected = False
