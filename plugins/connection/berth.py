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
  - With O(persist) (the default) one exec channel per container stays open between tasks, so that a task
    costs a fork inside the container instead of a new C(berth exec).
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
  persist:
    description:
      - Keep one exec channel into each container open between tasks, like SSH's ControlPersist. The first
        command starts C(berth exec-mux), which runs a small agent inside the container through the runtime's
        exec, with the container's user, capabilities, seccomp profile and cgroup, exactly as C(berth exec)
        would; every later command is a child of that agent instead of a new C(berth exec).
      - Needs python3 in the container (which Ansible modules need anyway); where it cannot start, commands
        fall back to C(berth exec).
    type: boolean
    default: true
    vars:
      - name: ansible_berth_persist
    env:
      - name: BERTH_PERSIST
  persist_idle:
    description: Seconds an unused exec channel stays open.
    type: int
    default: 60
    vars:
      - name: ansible_berth_persist_idle
  persist_dir:
    description: Directory (created mode 0700) for the exec channels' unix sockets.
    type: path
    default: ~/.ansible/cp
    vars:
      - name: ansible_berth_persist_dir
    env:
      - name: BERTH_PERSIST_DIR
"""

import hashlib
import os
import select
import shlex
import socket
import struct
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
        through_mux = self._mux_call(cmd, in_data)
        if through_mux is not None:
            return through_mux
        if in_data is not None:
            p = subprocess.run(self._exec_argv(cmd), input=in_data, capture_output=True)
        else:
            p = subprocess.run(self._exec_argv(cmd), stdin=subprocess.DEVNULL, capture_output=True)
        self._check_reachable(p.returncode, p.stderr)
        return p.returncode, p.stdout, p.stderr

    # -- the persistent exec channel (berth exec-mux; frames as in berth.container.execmux) --------
    def _mux_socket(self):
        key = "\0".join([*self._berth(), self._container(), self.get_option("remote_user") or ""])
        name = "berth-" + hashlib.sha256(key.encode()).hexdigest()[:20] + ".sock"
        return os.path.join(os.path.expanduser(self.get_option("persist_dir")), name)

    def _mux_connect(self, path):
        """A connection the mux has taken (its ACK byte read), or None."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            if s.recv(1) == b"\x01":
                return s
        except OSError:
            pass
        s.close()
        return None

    def _mux_start(self, path):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        argv = [*self._berth(), "exec-mux", "--socket", path, "--idle", str(self.get_option("persist_idle"))]
        if self.get_option("remote_user"):
            argv += ["-u", self.get_option("remote_user")]
        try:
            p = subprocess.Popen(argv + [self._container()], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            return
        # "ready" once it takes requests; end of output if it could not start (no python3, not running)
        if select.select([p.stdout], [], [], 60)[0]:
            p.stdout.readline()
        p.stdout.close()

    def _mux_call(self, cmd, in_data):
        """(rc, stdout, stderr) through the container's exec channel; None when there is none to use
        (the caller runs berth exec then: the command has not run)."""
        if not self.get_option("persist"):
            return None
        path = self._mux_socket()
        s = self._mux_connect(path)
        if s is None:
            self._mux_start(path)
            s = self._mux_connect(path)
            if s is None:
                return None
        with s:
            command = to_bytes(cmd)
            data = in_data or b""
            s.sendall(struct.pack(">I", len(command)) + command + struct.pack(">Q", len(data)) + data)
            try:
                rc, size = struct.unpack(">iQ", self._mux_read(s, 12))
                out = self._mux_read(s, size)
                err = self._mux_read(s, struct.unpack(">Q", self._mux_read(s, 8))[0])
            except EOFError:
                raise AnsibleConnectionFailure(f"berth container {self._container()}: the exec channel closed "
                                               "during the command (did the container stop?)") from None
        return rc, out, err

    @staticmethod
    def _mux_read(s, n):
        chunks, got = [], 0
        while got < n:
            chunk = s.recv(min(n - got, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

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
