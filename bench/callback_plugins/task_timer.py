"""Records the wall-clock start and end of every task (per host) to a JSON file, for bench/patch_cycle.sh.

ansible-core ships no profiling callback (profile_tasks lives in ansible.posix), so the benchmark brings this
one. Enabled with ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins ANSIBLE_CALLBACKS_ENABLED=task_timer;
writes to $PBS_PATCH_TASK_TIMES (JSON list of {task, host, start, end, status}).
"""
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: task_timer
    type: aggregate
    short_description: wall-clock time of every task, written to a JSON file
    description:
      - Writes one record per task and host to the file named by the PBS_PATCH_TASK_TIMES environment variable.
    requirements:
      - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("PBS_PATCH_TASK_TIMES")
        self._records = []
        self._task = None
        self._start = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task = task.get_name()
        self._start = time.time()

    def _done(self, result, status):
        self._records.append({"task": self._task, "host": result._host.get_name(), "start": self._start,
                              "end": time.time(), "status": status})

    def v2_runner_on_ok(self, result):
        self._done(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._done(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._done(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if self._path:
            with open(self._path, "w", encoding="utf-8") as f:
                json.dump(self._records, f, indent=1)
