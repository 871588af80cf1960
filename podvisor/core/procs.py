"""The app's process tree as the kernel sees it: its memory, a SIGKILL of all of it, and what it left behind.

supervisord gives every child its own process group and the environment variables
SUPERVISOR_SERVER_URL and SUPERVISOR_PROCESS_NAME. Descendants inherit both even when they leave the
group (setsid) or are re-parented to init after their parent exited, so that pair is how the
controller finds every process an app ever started; except where a program rewrites its environment
(nginx, for its process titles): what stays in the app's process group is found by the group.
"""
from __future__ import annotations

import logging
import os
import signal

import psutil

log = logging.getLogger(__name__)


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 when it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (those that left the group too)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not: it has exited and waits to be reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def nginx_holding(folder: str) -> list[psutil.Process]:
    """Live nginx processes holding a file below `folder` open: nginx rewrites its environment (for
    its process titles), so the variables supervisord gave it are gone from its processes, while its
    logs and pid file still tie it to the stack's state folder."""
    below = folder.rstrip(os.sep) + os.sep
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "nginx":
            continue
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and any(f.path.startswith(below) for f in proc.open_files()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def leftovers(serverurl: str, program: str) -> list[psutil.Process]:
    """Live processes started as `program` by the supervisord at `serverurl`, or descended from one."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            env = proc.environ()
            ours = env.get("SUPERVISOR_SERVER_URL") == serverurl
            named = env.get("SUPERVISOR_PROCESS_NAME") == program
            if ours and named and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:  # gone, or not ours to read
            continue
    return found


class Reaper:
    """SIGKILLs what is left of a program's tree once the program itself has ended (no orphans)."""

    def __init__(self, serverurl: str):
        self.serverurl = serverurl

    def __call__(self, program: str) -> list[int]:
        if not self.serverurl:
            return []
        killed = []
        for proc in leftovers(self.serverurl, program):
            try:
                proc.kill()
                killed.append(proc.pid)
            except psutil.Error:
                continue
        if killed:
            log.warning("%s has ended: killed %d process(es) it left behind: %s", program, len(killed),
                        ", ".join(map(str, killed)))
        return killed

    def group(self, pgid: int) -> list[int]:
        """SIGKILL what is left in an ended app's process group. A process can wipe the environment
        this reaper looks for (nginx rewrites it for its process titles), but not leave its group
        without calling setsid, and supervisord made the app the leader of its own group."""
        if not self.serverurl:  # unit tests: their pids are not real processes
            return []
        killed = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if (proc.pid != os.getpid() and os.getpgid(proc.pid) == pgid
                        and proc.status() != psutil.STATUS_ZOMBIE):
                    proc.kill()
                    killed.append(proc.pid)
            except (OSError, psutil.Error):  # gone meanwhile
                continue
        if killed:
            log.warning("the app of process group %d has ended: killed %d process(es) left in its group: %s",
                        pgid, len(killed), ", ".join(map(str, killed)))
        return killed
