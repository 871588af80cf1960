"""The reaper's process-group sweep: what an ended app leaves in its group dies with it (podvisor.core.procs)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

from podvisor.core.procs import Reaper
from podvisor.testing.waiting import wait_for

# A group leader with two children that survive it, as nginx's workers survive a SIGKILLed master.
LEADER = ("import subprocess, sys, time\n"
          "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']) for _ in range(2)]\n"
          "print(' '.join(str(k.pid) for k in kids), flush=True)\n"
          "time.sleep(60)\n")


def test_what_is_left_in_an_ended_apps_group_is_killed():
    leader = subprocess.Popen([sys.executable, "-c", LEADER], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)  # its own group, as supervisord gives every program
    kids = [int(pid) for pid in leader.stdout.readline().split()]
    try:
        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(10)
        assert all(psutil.pid_exists(pid) for pid in kids), "the children outlive their leader"
        assert Reaper("").group(leader.pid) == []  # without supervisord (unit tests) nothing is touched
        assert sorted(Reaper("unix:///tmp/supervisor.sock").group(leader.pid)) == sorted(kids)

        def gone() -> bool:
            return all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
                       for pid in kids)
        wait_for(gone, 10, "the group's leftovers killed")
        assert Reaper("unix:///tmp/supervisor.sock").group(leader.pid) == []  # an empty group: nothing
    finally:
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
