"""The README, followed from top to bottom as a new user would: every command it shows is run.

The README's blocks run as written in a copy of the checkout (its tracked files, as a fresh git
repository) inside a network namespace this test creates and removes, so the stack gets its
default ports whatever else runs on the machine. `run` commands go to one bash session (the user's
terminal: `cd`, the activated venv and variables carry over); `serve` and `follow` commands each get
a terminal of their own with that session's environment, and Ctrl-C typed at it. The namespace has
no network: `pip install -e .` finds every package in a wheelhouse built beforehand from the
machine's package index. Directives and their rules: tests/fixtures/readme.py.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from podvisor.testing.harness import REPO
from podvisor.testing.waiting import Fatal, wait_for
from tests.fixtures import readme
from tests.fixtures.terminal import Terminal

pytestmark = pytest.mark.e2e
IP = shutil.which("ip") or "/usr/sbin/ip"
COMMAND_SECONDS = 240  # the longest a `run` command may take: the first creates a venv and installs
SERVE_SECONDS = 120  # until a serve command shows its text (podctl up waits up to 120 s for Ready)
FOLLOW_SECONDS = 20
EXIT_SECONDS = 60  # after Ctrl-C (podctl up stops the whole stack in order)
GIT = ["git", "-c", "user.name=readme test", "-c", "user.email=readme@test.invalid", "-c", "commit.gpgsign=false"]


def tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files (as they are on disk) in a new git repository at `dest`."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted but not yet committed is left out
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "checkout"]):
        subprocess.run([*GIT, *args], cwd=dest, check=True, capture_output=True)
    return dest


def wheelhouse(checkout: Path, dest: Path) -> Path:
    """Everything `pip install -e .` needs (its build backend and every dependency), fetched from
    the machine's package index before anything enters the namespace."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(dest),
                           "setuptools>=61", "wheel", str(checkout)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip download failed:\n{done.stdout}{done.stderr}"
    return dest


def user_env(home: Path, wheels: Path) -> dict[str, str]:
    """A login shell's environment: no virtualenv of the test's, pip pointed at the wheelhouse."""
    venv_bin = str(Path(sys.prefix) / "bin") if sys.prefix != sys.base_prefix else None
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p and p != venv_bin]
    env = {"PATH": os.pathsep.join([*path, "/usr/sbin", "/sbin"]), "HOME": str(home), "LANG": "C.UTF-8",
           "TERM": "xterm", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for name in ("PYENV_ROOT", "TMPDIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class Namespace:
    """A network namespace with only its loopback up: nothing in it reaches or is reached from outside."""

    def __init__(self) -> None:
        self.name = "pvreadme-" + uuid.uuid4().hex[:8]
        for argv in ([IP, "netns", "add", self.name], [IP, "netns", "exec", self.name, IP, "link", "set", "lo", "up"]):
            done = subprocess.run(argv, capture_output=True, text=True)
            assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr} (the README test needs root)"

    def argv(self, *command: str) -> list[str]:
        return [IP, "netns", "exec", self.name, *command]

    def pids(self) -> set[int]:
        done = subprocess.run([IP, "netns", "pids", self.name], capture_output=True, text=True)
        return {int(p) for p in done.stdout.split()}

    def describe(self, pids: set[int]) -> str:
        rows = []
        for pid in sorted(pids):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                rows.append(f"{pid}: {cmdline[:150]}")
            except OSError:
                rows.append(f"{pid}: (gone)")
        return "\n".join(rows)

    def remove(self) -> None:
        """SIGKILL everything still in the namespace, wait until it is gone, then delete it."""
        def gone() -> bool:
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return not self.pids()
        try:
            wait_for(gone, 30, f"every process in {self.name} to be gone", output=lambda: self.describe(self.pids()))
        finally:
            subprocess.run([IP, "netns", "del", self.name], capture_output=True)


class Session:
    """One bash session, the user's terminal: each command runs in it in turn, its output in files."""

    def __init__(self, ns: Namespace, cwd: Path, env: dict[str, str], work: Path) -> None:
        self.work, self.count = work, 0
        self.log = open(work / "session.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(ns.argv("bash", "--noprofile", "--norc"), stdin=subprocess.PIPE,
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                     start_new_session=True)

    def run(self, text: str, timeout: float = COMMAND_SECONDS) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of `text` run in the session as typed (stdin: nothing)."""
        self.count += 1
        n, w = self.count, self.work
        (w / f"cmd-{n}.sh").write_text(text + "\n")
        # sourced, so that `cd`, `. .venv/bin/activate` and variables stay for the next command
        self.proc.stdin.write(f'. {w}/cmd-{n}.sh >{w}/out-{n} 2>{w}/err-{n} </dev/null; '
                              f'echo $? >{w}/rc-{n}.tmp && mv {w}/rc-{n}.tmp {w}/rc-{n}\n'.encode())
        self.proc.stdin.flush()
        rc = w / f"rc-{n}"
        wait_for(rc.exists, timeout, f"`{text}` to finish", procs=[self.proc],
                 output=lambda: self.output(n))
        return int(rc.read_text()), (w / f"out-{n}").read_text(), (w / f"err-{n}").read_text()

    def output(self, n: int) -> str:
        parts = []
        for kind in ("out", "err"):
            path = self.work / f"{kind}-{n}"
            if path.exists():
                parts.append(f"--- {kind} ---\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def environment(self) -> tuple[dict[str, str], str]:
        """The session's exported environment and current folder, for a terminal opened beside it."""
        code, out, err = self.run("env -0; printf '\\0'; pwd")
        assert code == 0, err
        *pairs, cwd = out.split("\0")
        env = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        return env, cwd.strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def stack_logs(checkout: Path) -> str:
    var = checkout / "var"
    files = [var / "supervisord.log", var / "controller.log", *sorted(var.glob("pods/*/logs/*.log"))]
    return "\n".join(f"--- {f.relative_to(checkout)} ---\n{f.read_text(errors='replace')[-1500:]}"
                     for f in files if f.is_file())


class Reader:
    """Runs the README's blocks in order, as a user following it would."""

    def __init__(self, ns: Namespace, session: Session, checkout: Path) -> None:
        self.ns, self.session, self.checkout = ns, session, checkout
        self.serving: list[tuple[readme.Block, Terminal]] = []
        self.terminals: list[Terminal] = []

    def terminal(self, text: str) -> Terminal:
        """A terminal of its own, with the session's environment, running `text`."""
        env, cwd = self.session.environment()
        term = Terminal(self.ns.argv("bash", "-c", text), env, cwd=cwd)
        self.terminals.append(term)
        return term

    def block(self, block: readme.Block) -> None:
        if block.directive == "elsewhere":
            readme.check_elsewhere(block, REPO)
        elif block.directive == "file":
            readme.check_file(block, self.checkout)
        elif block.directive == "run":
            for command in readme.commands(block):
                self.run(block, command)
        else:
            (command,) = readme.commands(block)  # one long-running command per serve or follow block
            term = self.terminal(command.text)

            def running() -> None:
                if term.exit_code() is not None:
                    raise Fatal(f"{block.where}: `{command.text}` exited {term.status}:\n{term.plain()}\n"
                                f"{stack_logs(self.checkout)}")
            wait = SERVE_SECONDS if block.directive == "serve" else FOLLOW_SECONDS
            term.wait_output(lambda text: block.argument in Terminal.strip(text), wait,
                             f"{block.where}: `{command.text}` to show {block.argument!r}", check=running)
            if block.directive == "serve":
                self.serving.append((block, term))
            else:
                self.interrupt(block, term)

    def run(self, block: readme.Block, command: readme.Command) -> None:
        code, out, err = self.session.run(command.text)
        said = f"{block.where}, line {command.line}: `{command.text}`"
        assert code == command.exit_code, (f"{said} exited {code}, not {command.exit_code}\n--- stdout ---\n{out}"
                                           f"\n--- stderr ---\n{err}\n{stack_logs(self.checkout)}")
        if command.answer is not None:
            assert readme.matches(command.answer, out), f"{said} printed\n{out}\nnot what the README says:\n" \
                                                        f"{command.answer}"

    def interrupt(self, block: readme.Block, term: Terminal) -> None:
        """Ctrl-C typed at the terminal: the command must stop by itself, with exit status 0."""
        term.type("\x03")
        code = term.wait_exit(EXIT_SECONDS)
        assert code == 0, f"{block.where}: exited {code} after Ctrl-C:\n{term.plain()[-3000:]}"

    def end_of_section(self) -> None:
        while self.serving:
            self.interrupt(*self.serving.pop())

    def close(self) -> None:
        for term in self.terminals:
            try:
                term.close()
            except (AssertionError, OSError):
                pass  # still running after SIGTERM: the namespace's teardown SIGKILLs it


def test_every_readme_command_runs_as_written_and_leaves_nothing_behind(tmp_path):
    blocks = readme.blocks((REPO / "README.md").read_text())
    checkout = tracked_copy(tmp_path / "checkout")
    wheels = wheelhouse(checkout, tmp_path / "wheels")
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    ns = Namespace()
    session = reader = None
    try:
        session = Session(ns, checkout, user_env(tmp_path / "home", wheels), tmp_path / "work")
        reader = Reader(ns, session, checkout)
        section = None
        for block in blocks:
            if block.section != section:
                reader.end_of_section()
                section = block.section
            reader.block(block)
        reader.end_of_section()
        # the README stopped everything it started: only the session's shell is left
        wait_for(lambda: not ns.pids() - {session.proc.pid}, 30, "the README's steps to have stopped every process",
                 output=lambda: ns.describe(ns.pids() - {session.proc.pid}))
    finally:
        if reader is not None:
            reader.close()
        if session is not None:
            session.close()
        ns.remove()
