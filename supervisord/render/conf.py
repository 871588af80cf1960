"""The pods spec as supervisord's stack.conf plus the controller's resolved stack.pods.json.

The conf uses only `%(here)s`, never `%(ENV_X)s`, so it runs with no environment set. Every stop
deadline in it comes from the pods' stop budgets (podvisor.core.budget).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from podvisor.supervisord.render import nginx
from podvisor.supervisord.spec.model import ENV_REF, Pod, Stack
from podvisor.supervisord.spec.parse import to_dict

SUPERVISORD_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = SUPERVISORD_DIR / "pods.toml"
DEFAULT_CONF = SUPERVISORD_DIR / "stack.conf"


UMASK = "077"
# supervisord's spawn order (lower first; its own shutdown stops in reverse): the controller is 1.
AGGREGATOR_PRIORITY = 10
SIDECAR_PRIORITY = 100
APP_PRIORITY = 300


def _escape(value: str) -> str:
    """`value` for the inside of a double-quoted supervisord environment value."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _q(value: str) -> str:
    """A supervisord environment value: double-quoted, with % doubled for its expansion pass."""
    return '"' + _escape(value) + '"'


class Renderer:
    """Builds the conf text; `state_dir` and `bin_dir` are absolute or relative to the conf's folder."""

    def __init__(self, stack: Stack, bin_dir: str = "../bin", source: str | None = None, conf_stem: str = "stack"):
        self.stack = stack
        self.conf_stem = conf_stem  # stack.conf -> its gateways' stack.<pod>.nginx.conf
        self.bin_dir = bin_dir
        self.source = source  # the TOML spec it was rendered from, for `podctl apply`

    def path(self, base: str, *parts: str) -> str:
        joined = "/".join((base.rstrip("/"),) + parts)
        return joined.replace("%", "%%") if os.path.isabs(base) else "%(here)s/" + joined

    def state(self, *parts: str) -> str:
        return self.path(self.stack.state_dir, *parts)

    def file(self, name: str) -> str:
        """A file the spec names: absolute, or relative to the conf's folder."""
        return name.replace("%", "%%") if os.path.isabs(name) else "%(here)s/" + name.replace("%", "%%")

    def credential(self, pod: Pod) -> str:
        """Where the aggregator writes the pod's logger credential (the logger's state directory)."""
        return self.state("pods", pod.name, "logger", "credential")

    def url(self, port: int) -> str:
        return f"http://{self.stack.host}:{port}"

    def command(self, command: str) -> str:
        """podvisor's own programs run from bin_dir; `./x` and `../x` are relative to the spec's
        folder (where the conf is rendered); anything else is left to supervisord's PATH search."""
        if command.startswith("podvisor-") and "/" not in command and " " not in command:
            return self.path(self.bin_dir, command)
        if command.startswith(("./", "../")):
            return "%(here)s/" + command.replace("%", "%%")
        return command.replace("%", "%%")

    def env(self, pairs: dict[str, str]) -> str:
        # Values are rendered already expanded; _q doubles % so supervisord leaves them alone,
        # except our own %(here)s paths which must expand, hence the raw marker.
        out = []
        for key, value in pairs.items():
            if isinstance(value, _Raw):
                out.append(f'{key}="{value}"')
            else:
                out.append(f"{key}={_q(value)}")
        return ",".join(out)

    def section(self, header: str, options: dict[str, object]) -> str:
        lines = [f"[{header}]"] + [f"{k}={v}" for k, v in options.items()]
        return "\n".join(lines) + "\n"

    def logfiles(self, stdout: str, stderr: str | None) -> dict[str, object]:
        opts: dict[str, object] = {
            "stdout_logfile": stdout,
            "stdout_logfile_maxbytes": self.stack.log_max_bytes,
            "stdout_logfile_backups": self.stack.log_backups,
        }
        if stderr is None:
            opts["redirect_stderr"] = "true"
        else:
            opts.update(stderr_logfile=stderr, stderr_logfile_maxbytes=self.stack.log_max_bytes,
                        stderr_logfile_backups=self.stack.log_backups)
        return opts

    def program(self, name: str, command: str, priority: int, stopwaitsecs: int, env: dict,
                logs: dict[str, object], group_kill: bool = False, stopsignal: str = "TERM") -> str:
        opts: dict[str, object] = {
            "command": command,
            "priority": priority,
            # The controller starts and restarts everything (ordered start, backoff with jitter);
            # supervisord's own autostart/autorestart would race it.
            "autostart": "false",
            "autorestart": "false",
            "startsecs": 0,
            "startretries": 0,
            "umask": UMASK,  # supervisord -n never applies its own umask: each child gets it here
            "stopsignal": stopsignal,
            "stopwaitsecs": stopwaitsecs,
            "exitcodes": 0,
        }
        if group_kill:
            opts.update(stopasgroup="true", killasgroup="true")
        opts.update(logs)
        opts["environment"] = self.env(env)
        return self.section(f"program:{name}", opts)

    def app_command(self, pod: Pod, slot: int = 0) -> str:
        """The app's command; a gateway's is nginx with the rendered config, its prefix the pod's
        state folder (logs/ there is the pod's log folder). Where podvisor holds the socket, the
        launcher fetches it and execs the command with it (LISTEN_FDS)."""
        if pod.gateway is None:
            command = self.command(pod.command)
        else:
            prefix = self.state("pods", pod.name) + "/"
            conf = nginx.conf_name(Path(self.conf_stem + ".conf"), pod, slot).name
            command = (f"{nginx.binary(pod.gateway.binary)} -p {prefix} "
                       f"-c %(here)s/{conf} -e {nginx.error_log(slot)}")
        if pod.socket != "held":
            return command
        return f"{self.command('podvisor-launch')} {pod.name} {slot} -- {command}"

    def pod_env(self, pod: Pod) -> dict[str, str]:
        return {"POD_NAME": pod.name, "SERVICE_NAME": pod.service, "ENVIRONMENT": self.stack.environment}

    def app_env(self, pod: Pod, slot: int = 0) -> dict:
        env: dict = {
            "APP_HOST": self.stack.host, "APP_PORT": str(pod.port),
            "APP_DB": _Raw(self.state("pods", pod.name, "data", f"{pod.name}.db")),
            "APP_LOG_FILE": _Raw(self.state("pods", pod.name, "logs", f"{slot_stem(slot)}.log")),
            "APP_DRAIN_SECONDS": f"{pod.budget.app_drain_seconds:g}",
            **self.pod_env(pod),
        }
        if pod.socket == "held":  # where the launcher asks for the sockets, and this slot's own port
            env.update(PODVISOR_HANDOFF=_Raw(self.state("handoff.sock")), APP_SLOT=str(slot),
                       APP_SLOT_PORT=str(pod.slot_ports[slot]))
        for key, value in pod.env.items():
            env[key] = ENV_REF.sub(lambda m: self._ref(m.group(1), m.group(2)), value)
        return env

    def _ref(self, pod_name: str, what: str) -> str:
        port = self.stack.pod(pod_name).port
        return self.url(port) if what == "url" else str(port)

    def render(self, json_path: str) -> str:
        st = self.stack
        parts = [
            "; Rendered by podvisor-render from the pods spec: edit the spec and re-render, not this file.\n",
            self.section("unix_http_server", {"file": self.state("supervisor.sock"), "chmod": "0700"}),
            self.section("supervisord", {
                "logfile": self.state("supervisord.log"), "logfile_maxbytes": st.log_max_bytes,
                "logfile_backups": st.log_backups, "pidfile": self.state("supervisord.pid"),
                "childlogdir": self.state(""), "identifier": "podvisor", "minfds": 4096,
                # Files the stack creates (logs.db, app logs, the token) are the user's alone.
                "umask": UMASK,
                "environment": 'PYTHONUNBUFFERED="1"',
            }),
            self.section("rpcinterface:supervisor", {
                "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"}),
            self.section("supervisorctl", {"serverurl": "unix://" + self.state("supervisor.sock")}),
            # Ignored by supervisord; read by podctl to find the controller and the aggregator.
            self.section("podvisor", {
                "state_dir": self.state(""), "spec": json_path,
                "controller_url": self.url(st.controller_port), "aggregator_url": self.url(st.aggregator_port),
                # what `podctl apply` needs to render this file again the same way
                "bin_dir": self.bin_dir.replace("%", "%%"),
                **({"source": self.source.replace("%", "%%")} if self.source else {}),
            }),
            self.section("eventlistener:podvisor-controller", {
                "command": self.command("podvisor-controller"),
                "events": "PROCESS_STATE,PROCESS_GROUP,SUPERVISOR_STATE_CHANGE,REMOTE_COMMUNICATION,TICK_5",
                # supervisord drops the oldest event when the buffer is full; the controller also
                # re-reads every state over XML-RPC, so a drop costs latency, never correctness.
                "buffer_size": 1024, "priority": 1, "autostart": "true", "autorestart": "true",
                "startsecs": 0, "stopwaitsecs": st.budget.controller_stopwaitsecs, "umask": UMASK,
                # stdout is the event-listener protocol channel: nothing worth keeping.
                "stdout_logfile": "NONE", "stderr_logfile": self.state("controller.log"),
                "stderr_logfile_maxbytes": st.log_max_bytes, "stderr_logfile_backups": st.log_backups,
                "environment": self.env({
                    "CONTROLLER_SPEC": _Raw(json_path), "CONTROLLER_HOST": st.host,
                    "CONTROLLER_PORT": str(st.controller_port),
                }),
            }),
            self.program("aggregator", self.command("podvisor-aggregator"), AGGREGATOR_PRIORITY,
                         st.budget.aggregator_stopwaitsecs, {
                "AGGREGATOR_HOST": st.host, "AGGREGATOR_PORT": str(st.aggregator_port),
                "AGGREGATOR_DB": _Raw(self.state("aggregator", "logs.db")),
                **({"AGGREGATOR_STORE": st.store} if st.store else {}),
                "AGGREGATOR_TOKEN_FILE": _Raw(self.file(st.token_file) if st.token_file
                                              else self.state("aggregator", "token")),
                "AGGREGATOR_READ_AUTH": st.read_auth,
                "AGGREGATOR_CONTROLLER_URL": self.url(st.controller_port),
                "AGGREGATOR_METRICS_URLS": ",".join(f"{p.name}={self.url(p.metrics_port)}" for p in st.pods),
                "AGGREGATOR_LOGGER_CREDENTIALS": _Raw(",".join(
                    f"{p.name}:{_escape(p.service)}={self.credential(p)}" for p in st.pods)),
            }, self.logfiles(self.state("aggregator", "aggregator.log"), None)),
        ]
        for pod in st.pods:
            parts.extend(self.pod_programs(pod))
        return "\n".join(parts)

    def pod_programs(self, pod: Pod) -> list[str]:
        st, progs = self.stack, pod.programs
        logs = ("pods", pod.name, "logs")
        sidecar_logs = (*logs, "sidecars")
        logger_env = {
            **self.pod_env(pod), "LOGGER_LOG_DIR": _Raw(self.state(*logs)),
            "LOGGER_STATE_DIR": _Raw(self.state("pods", pod.name, "logger")),
            "LOGGER_AGGREGATOR_URL": st.ingest_url or self.url(st.aggregator_port),
            **({"LOGGER_CA_FILE": _Raw(self.file(st.ca_file))} if st.ca_file else {}),
            "LOGGER_CREDENTIAL_FILE": _Raw(self.credential(pod)),
            "LOGGER_HOST": st.host, "LOGGER_PORT": str(pod.logger_port),
            "LOGGER_APP_PROGRAM": ",".join(pod.app_programs),
            "LOGGER_GRACE_SECONDS": f"{pod.budget.logger_seconds:g}",
            "LOGGER_STDERR_LEVEL": pod.stderr_level, "LOGGER_PROBE_PATHS": ",".join(pod.probe_paths),
            **pod.logger_env,  # tuning knobs (sidecars/logger/settings.py); the spec refuses the keys above
        }
        if pod.gateway is not None:  # its access log is counted per route (the logger's route metrics)
            logger_env["LOGGER_ROUTE_PREFIXES"] = ",".join(prefix for prefix, _ in pod.gateway.routes)
        metrics_env = {
            **self.pod_env(pod), "METRICS_HOST": st.host, "METRICS_PORT": str(pod.metrics_port),
            "METRICS_LOGGER_URL": self.url(pod.logger_port) + "/metrics",
            # one program per app slot: each running one is scraped on its slot's own port
            "METRICS_APP_PROGRAM": ",".join(pod.app_programs),
        }
        if pod.metrics_path:
            ports = pod.slot_ports if pod.socket == "held" else (pod.port,)
            metrics_env["METRICS_TARGET_URL"] = ",".join(self.url(port) + pod.metrics_path for port in ports)
            metrics_env["METRICS_ADAPTER"] = pod.metrics_adapter
        if pod.memory_limit_bytes:
            metrics_env["METRICS_MEMORY_LIMIT_BYTES"] = str(pod.memory_limit_bytes)
        # Stop order on supervisord shutdown is reverse priority, one program at a time: apps (300)
        # first, then sidecars (100), the aggregator (10), the controller (1) last.
        budget = pod.budget
        return [
            self.program(progs["logger"], self.command("podvisor-logger"), SIDECAR_PRIORITY, budget.logger_stopwaitsecs,
                         logger_env, self.logfiles(self.state(*sidecar_logs, "logger.log"), None)),
            self.program(progs["metrics"], self.command("podvisor-metrics"), SIDECAR_PRIORITY,
                         budget.metrics_stopwaitsecs, metrics_env,
                         self.logfiles(self.state(*sidecar_logs, "metrics.log"), None)),
            *(self.program(program, self.app_command(pod, slot), APP_PRIORITY, budget.app_stopwaitsecs,
                           self.app_env(pod, slot),
                           self.logfiles(self.state(*logs, f"{slot_stem(slot)}.stdout.log"),
                                         self.state(*logs, f"{slot_stem(slot)}.stderr.log")),
                           group_kill=True, stopsignal=pod.stop_signal)
              for slot, program in enumerate(pod.app_programs)),
        ]


def slot_stem(slot: int) -> str:
    """An app slot's log files: app.log, app.stdout.log for the first, app-1.log... for others."""
    return "app" if not slot else f"app-{slot}"


class _Raw(str):
    """An environment value that holds a %(here)s expansion and must not be %-escaped."""


def state_dirs(stack: Stack, base: Path) -> list[Path]:
    """Every folder of the state directory; supervisord refuses a conf whose log folders are missing."""
    dirs = [base, base / "aggregator", base / "controller"]
    for pod in stack.pods:
        root = base / "pods" / pod.name
        dirs += [root / "logs" / "sidecars", root / "data", root / "logger"]
        if pod.gateway is not None:
            dirs.append(root / nginx.NGINX_DIR / "tmp")
    return dirs


def make_state_dirs(stack: Stack, conf_dir: Path) -> None:
    base = Path(stack.state_dir)
    for d in state_dirs(stack, base if base.is_absolute() else conf_dir / base):
        d.mkdir(parents=True, exist_ok=True)


def render_files(stack: Stack, conf_path: Path, bin_dir: str = "../bin", source: str | None = None
                 ) -> dict[Path, str]:
    """The conf and the resolved JSON spec, by path; nothing is written. `source`: the spec file, as
    the conf should name it (relative to the conf's folder, or absolute)."""
    conf_path = Path(conf_path)
    json_path = conf_path.with_name(conf_path.stem + ".pods.json")  # stack.conf -> stack.pods.json
    conf = Renderer(stack, bin_dir, source, conf_path.stem).render("%(here)s/" + json_path.name)
    resolved = json.dumps(to_dict(stack), indent=2, sort_keys=True) + "\n"
    gateways = {nginx.conf_name(conf_path, pod, slot): nginx.render(stack, pod, slot)
                for pod in stack.pods if pod.gateway for slot in range(pod.slots)}
    return {conf_path: conf, json_path: resolved, **gateways}


def default_bin_dir(conf: Path) -> str:
    """podvisor's launchers as `conf` should name them: the checkout's bin/ relative to the conf's
    folder (`../bin` for supervisord/stack.conf), so a conf rendered elsewhere (an example's) runs
    them too; installed without a checkout, the console scripts beside this interpreter."""
    checkout = SUPERVISORD_DIR.parent / "bin"
    if (checkout / "podvisor-controller").exists():
        return os.path.relpath(checkout, Path(conf).resolve().parent)
    scripts = Path(sys.executable).parent
    return str(scripts) if (scripts / "podvisor-controller").exists() else "../bin"


def source_name(spec: Path, conf: Path) -> str:
    """The spec as the conf names it: relative to the conf's folder when below it, else absolute."""
    spec, folder = spec.resolve(), conf.resolve().parent
    return str(spec.relative_to(folder)) if spec.is_relative_to(folder) else str(spec)


def write_files(files: dict[Path, str]) -> None:
    for path, text in files.items():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
