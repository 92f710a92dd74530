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

    # the attributes of every *_info module: it only reads
    INFO_MODULE = r"""
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: none
    description: Reports state; changes nothing to show a diff of.
  idempotent:
    support: full
    description: Never changes anything; on a root that does not exist it creates nothing.
"""
