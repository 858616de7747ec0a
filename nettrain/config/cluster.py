"""The cluster of a `runtime.distribute: multi_worker` run: `TF_CONFIG`, or `--worker I --workers LIST`.

No TensorFlow here: the checks run before anything slow, and a mistake is a `UsageError` (exit 2)
that names what is wrong and what is allowed. The cluster is TensorFlow's own description,
`TF_CONFIG` (https://www.tensorflow.org/guide/distributed_training#TF_CONFIG), with the roles
nettrain trains with: `worker` tasks, and optionally one `chief` task. The chief (the `chief`
task, else worker 0) owns the run directory; every other task is a worker that trains in step with
it and writes only to a temporary folder of its own.

`gather` runs before TensorFlow joins the cluster: it takes this process's port (a port in use is a
`UsageError` naming the address) and waits, in an interruptible Python loop, until every other
process answers on its port, at most `runtime.worker_timeout` seconds (then a `JobFailed` naming the
ones that never started). TensorFlow's own wait for the cluster blocks in C++ with the interpreter
held: no signal and no timeout of nettrain's could end it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Callable

from nettrain.errors import JobFailed, UsageError

ENV = "TF_CONFIG"
ROLES = ("chief", "worker")
POLL = 0.25       # seconds between two looks at the peers' ports
TELL_AFTER = 2.0  # seconds of waiting before the one "waiting for" notice
EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
_ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252}))?:(\d{1,5})")


@dataclass(frozen=True)
class Cluster:
    """Who trains: every task's address in TF_CONFIG order (the chief first), and which one this process is."""

    tasks: tuple[tuple[str, int, str], ...]   # (role, index, host:port), the chief (or worker 0) first
    role: str
    index: int

    @property
    def size(self) -> int:
        return len(self.tasks)

    @property
    def rank(self) -> int:
        """This process's place in `tasks` (0: the chief)."""
        return next(i for i, (r, k, _) in enumerate(self.tasks) if (r, k) == (self.role, self.index))

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def name(self, rank: int | None = None) -> str:
        """'worker 1 (host:port)' for the task at `rank` (default: this process)."""
        role, index, address = self.tasks[self.rank if rank is None else rank]
        return f"{role}{'' if role == 'chief' else ' ' + str(index)} ({address})"

    def rank_of(self, role: str, index: int) -> int | None:
        return next((i for i, (r, k, _) in enumerate(self.tasks) if (r, k) == (role, index)), None)

    def rank_of_address(self, address: str) -> int | None:
        return next((i for i, (_, _, a) in enumerate(self.tasks) if a == address), None)


def from_env(environ=None) -> Cluster:
    """The cluster TF_CONFIG describes (UsageError when it is missing or malformed)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(ENV)
    if raw is None or not raw.strip():
        raise UsageError(f"runtime.distribute: multi_worker needs the cluster in the environment variable {ENV} "
                         f"(e.g. {EXAMPLE}), or nettrain fit CONFIG --worker I --workers HOST:PORT,HOST:PORT")
    return parse(raw)


def parse(raw: str) -> Cluster:
    """TF_CONFIG's JSON text -> Cluster; each mistake one line naming the field and what is allowed."""
    where = f"{ENV}:"
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise UsageError(f"{where} not JSON ({e.msg} at character {e.pos}); expected e.g. {EXAMPLE}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where} expected a JSON object with 'cluster' and 'task', e.g. {EXAMPLE}")
    extra = sorted(set(data) - {"cluster", "task", "environment", "rpc_layer"})
    if extra:
        raise UsageError(f"{where} unknown field(s) {', '.join(map(repr, extra))}; allowed: cluster, task "
                         "(and environment, rpc_layer)")
    cluster, task = data.get("cluster"), data.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise UsageError(f"{where} 'cluster' must map roles to address lists, e.g. "
                         '{"worker": ["host1:12345", "host2:12345"]}')
    bad_roles = sorted(set(cluster) - set(ROLES))
    if bad_roles:
        raise UsageError(f"{where} cluster role(s) {', '.join(map(repr, bad_roles))} are not used by nettrain "
                         f"(no parameter servers or evaluators); allowed roles: {', '.join(ROLES)}")
    tasks: list[tuple[str, int, str]] = []
    for role in ROLES:
        addresses = cluster.get(role)
        if addresses is None:
            continue
        if not isinstance(addresses, list) or not addresses:
            raise UsageError(f"{where} cluster.{role} must be a non-empty list of \"host:port\" strings")
        if role == "chief" and len(addresses) != 1:
            raise UsageError(f"{where} cluster.chief must list exactly one address, got {len(addresses)}")
        for i, address in enumerate(addresses):
            check_address(address, f"{where} cluster.{role}[{i}]")
            tasks.append((role, i, address))
    if "worker" not in cluster and "chief" not in cluster:
        raise UsageError(f"{where} the cluster has no workers")
    seen: dict[str, str] = {}
    for role, i, address in tasks:
        if address in seen:
            raise UsageError(f"{where} address {address} is given twice ({seen[address]} and {role}[{i}]); "
                             "every task needs its own host:port")
        seen[address] = f"{role}[{i}]"
    if not isinstance(task, dict):
        raise UsageError(f"{where} 'task' must say which task this process is, e.g. "
                         '{"type": "worker", "index": 0}')
    role, index = task.get("type"), task.get("index", 0)
    if role not in cluster:
        raise UsageError(f"{where} task.type {json.dumps(role)} is not a role of the cluster; allowed: "
                         f"{', '.join(r for r in ROLES if r in cluster)}")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[role]):
        raise UsageError(f"{where} task.index {json.dumps(index)} is out of range: cluster.{role} has "
                         f"{len(cluster[role])} address(es), so 0..{len(cluster[role]) - 1}")
    return Cluster(tuple(tasks), role, index)


def check_address(address, where: str) -> str:
    ok = isinstance(address, str) and _ADDRESS.fullmatch(address) and 0 < int(address.rsplit(":", 1)[1]) < 65536
    if not ok:
        raise UsageError(f"{where} {json.dumps(address)} is not host:port (a host name or IP address, a colon and "
                         "a port 1-65535, e.g. 10.0.0.2:12345)")
    return address


def from_options(worker: int | None, workers: str | None) -> str:
    """`--worker I --workers HOST:PORT,HOST:PORT,...` -> the TF_CONFIG text they stand for (workers only,
    worker 0 the chief)."""
    if workers is None:
        raise UsageError("--worker needs --workers HOST:PORT,HOST:PORT,... (every worker's address, the same "
                         "list on every machine)")
    if worker is None:
        raise UsageError("--workers needs --worker I: which of the listed workers this machine is (0 is the chief)")
    addresses = [a.strip() for a in workers.split(",")]
    if len(addresses) < 1 or any(not a for a in addresses):
        raise UsageError(f"--workers {workers!r}: expected a comma-separated list of host:port, "
                         "e.g. 10.0.0.1:12345,10.0.0.2:12345")
    for i, address in enumerate(addresses):
        check_address(address, f"--workers item {i}:")
    if len(set(addresses)) != len(addresses):
        raise UsageError(f"--workers {workers!r}: an address is listed twice; every worker needs its own host:port")
    if not 0 <= worker < len(addresses):
        raise UsageError(f"--worker {worker}: out of range for {len(addresses)} worker(s) in --workers "
                         f"(0..{len(addresses) - 1}; 0 is the chief)")
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": worker}})


# ------------------------------------------------------------------------------ before TensorFlow joins

def gather(cluster: Cluster, timeout: float, tell: Callable[[str], None] | None = None) -> None:
    """Take this process's port, then wait until every other process of the cluster answers on its own
    (at most `timeout` seconds). A port in use: `UsageError`; peers that never start: `JobFailed`. The
    port is held (connections accepted and dropped) so that the others see this process too, and let go
    at the end for TensorFlow's server. SIGINT/SIGTERM end the wait (`KeyboardInterrupt`)."""
    listener = _listen(cluster)
    try:
        _wait_for_peers(cluster, listener, timeout, tell)
    finally:
        listener.close()


def check_port(cluster: Cluster) -> None:
    """This process's port can be taken now (else the `UsageError` of `port_in_use`): a quick look before
    anything slow; `gather` takes it for good."""
    _listen(cluster).close()


def port_in_use(cluster: Cluster, why: str = "another process listens there") -> UsageError:
    """The one line for a port this process cannot take."""
    return UsageError(f"{cluster.name()}: cannot listen on port {_split(cluster.tasks[cluster.rank][2])[1]} "
                      f"({why}); free that port, or give this worker another one in --workers (or TF_CONFIG), "
                      "the same list on every worker")


def _split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


def _listen(cluster: Cluster) -> socket.socket:
    """A listening socket on this process's port, on every interface (as TensorFlow's server binds it)."""
    port = _split(cluster.tasks[cluster.rank][2])[1]
    try:
        sock = _bound(port)
    except OSError as e:
        why = "another process listens there" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise port_in_use(cluster, why) from None
    sock.listen(16)
    sock.setblocking(False)
    return sock


def _bound(port: int) -> socket.socket:
    """A socket bound to `port` on all addresses: IPv6 and IPv4 where the machine has IPv6, else IPv4."""
    families = [socket.AF_INET6, socket.AF_INET] if socket.has_ipv6 else [socket.AF_INET]
    for family in families:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this machine
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a past connection's TIME_WAIT is no use
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
            return sock
        except OSError as e:
            sock.close()
            if family == socket.AF_INET6 and e.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                continue
            raise
    raise OSError(errno.EAFNOSUPPORT, "no IPv4 or IPv6 socket")


def _wait_for_peers(cluster: Cluster, listener: socket.socket, timeout: float,
                    tell: Callable[[str], None] | None) -> None:
    start = time.monotonic()
    waiting = [rank for rank in range(cluster.size) if rank != cluster.rank]
    told = False
    while True:
        _drop_connections(listener)
        waiting = [rank for rank in waiting if not _answers(cluster.tasks[rank][2])]
        if not waiting:
            return
        waited = time.monotonic() - start
        if waited >= timeout:
            raise JobFailed(_never_started(cluster, waiting, timeout))
        if not told and waited >= TELL_AFTER and tell is not None:
            tell(f"{cluster.name()}: waiting for {_names(cluster, waiting)} to start (at most {timeout:g} s, "
                 "runtime.worker_timeout)")
            told = True
        time.sleep(min(POLL, max(0.0, timeout - waited)))


def _drop_connections(listener: socket.socket) -> None:
    """Accept the peers' looks at this port and close them at once (a full backlog would hide this process)."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # none waiting (BlockingIOError), or the socket is gone
            return
        conn.close()


def _answers(address: str) -> bool:
    """Whether something accepts a connection at host:port (a connection to itself does not count: a
    loopback connect to a free port in the ephemeral range can pair with its own source port)."""
    host, port = _split(address)
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            return sock.getsockname()[:2] != sock.getpeername()[:2]
    except OSError:
        return False


def _names(cluster: Cluster, ranks: list[int]) -> str:
    return ", ".join(cluster.name(rank) for rank in ranks)


def _never_started(cluster: Cluster, ranks: list[int], timeout: float) -> str:
    one = len(ranks) == 1
    return (f"{_names(cluster, ranks)} never joined the cluster: nothing answered at "
            f"{'its address' if one else 'their addresses'} within runtime.worker_timeout ({timeout:g} s); start "
            f"{'it' if one else 'them'} with the same config and cluster (--worker I --workers LIST, or TF_CONFIG) "
            "and this worker again, or check the address and the firewall")
