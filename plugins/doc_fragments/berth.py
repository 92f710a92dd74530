# -*- coding: utf-8 -*-
# Copyright: berth contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options every berth module takes: which berth root to work on."""

    DOCUMENTATION = r"""
options:
  root:
    description: berth root (default /var/lib/berth, or BERTH_ROOT).
    type: path
  runroot:
    description: berth run root (default /run/berth, or BERTH_RUNROOT).
    type: path
  driver:
    description: Storage driver (default chosen for the host, or the root's recorded driver).
    type: str
requirements:
  - berth importable by the Python that runs the module (set ansible_python_interpreter)
"""
