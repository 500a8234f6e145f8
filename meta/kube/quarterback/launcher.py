"""The launcher: what runs in each step slot of a micro pod, waiting for work orders.

It is copied into the pod (an init container puts it on a shared volume) and run by the slot
image's own `python3`, so it uses the standard library only and imports nothing of meta's. It
connects to the quarterback's Unix socket on the shared scratch volume, says which slot it is,
then runs one order at a time: a JSON line `{"id", "argv", "env", "secrets", "cwd", "stderr"}`
starts a process group; `{"stop": id}` ends it; `{"exit": true}` ends the launcher (and so the slot
container). For each order it answers `{"ended": id, "code", "stderrTail"}`. When the slot's
image is swapped, the kubelet restarts the container and a new launcher connects again.

A step writes its output to files in the pod's scratch; when it ends, the launcher copies them
to its own standard output, which is the slot container's log (`meta logs` reads them there),
each framed by a LOG_BEGIN line and a LOG_END line:

    === meta-orchestrator: unit <id> attempt <n> stdout ===
    <the step's standard output, and a newline>
    === meta-orchestrator: end ===

    python3 launcher.py SOCKET SLOT
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from typing import IO, Any

CONNECT_SECONDS = 120.0
CLOSED = ".closed"
STDERR_TAIL_BYTES = 2000
STOP_GRACE_SECONDS = 2.0
LOG_BEGIN = "=== meta-orchestrator: unit {id} attempt {attempt} {stream} ==="
LOG_END = "=== meta-orchestrator: end ==="
SECRET_PREFIX = "META_SECRET_"
"""The slot's own variables holding its section's secrets (meta.kube.layout.SECRET_PREFIX): a
step gets those its order names, under its own names, and never the others."""
MASK = "***"
MIN_MASKED = 4


def connect(path: str) -> socket.socket | None:
    """The quarterback may start after this slot: wait for its socket, backing off. None when
    the quarterback has finished (it leaves CLOSED beside its socket) before this slot came."""
    deadline = time.monotonic() + CONNECT_SECONDS
    delay = 0.005
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if os.path.exists(path + CLOSED):
                return None
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def open_log(path: str) -> IO[bytes]:
    """The ended step's log at `path` to read, if it is still a regular file: the step may have
    put a FIFO (which would block the launcher for good) or a link in its place."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OSError(f"{path} is not a regular file")
    return open(descriptor, "rb")


def tail(path: str) -> str:
    try:
        with open_log(path) as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - STDERR_TAIL_BYTES))
            return stream.read().decode(errors="replace")
    except OSError:
        return ""


def step_env(order: dict[str, Any]) -> dict[str, str]:
    """The slot's environment (its image's) without its secrets, the order's variables, and
    the secrets the order names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SECRET_PREFIX)}
    env.update({str(k): str(v) for k, v in order["env"].items()})
    for name, held in (order.get("secrets") or {}).items():
        if held in os.environ:
            env[str(name)] = os.environ[held]
    return env


def masked(text: str) -> str:
    """`text` with the values of the slot's secrets replaced: the stderr tail goes to the
    quarterback, and from there to the MetaFlow's status."""
    for key, value in os.environ.items():
        if key.startswith(SECRET_PREFIX) and len(value.strip()) >= MIN_MASKED:
            text = text.replace(value, MASK)
    return text


class Launcher:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.log_lock = threading.Lock()

    def send(self, message: dict[str, object]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with self.lock:
            self.sock.sendall(data)

    def start(self, order: dict[str, Any]) -> None:
        unit = str(order["id"])
        stderr_path = str(order["stderr"])
        try:
            with open(stderr_path, "wb") as err, open(str(order["stdout"]), "wb") as out:
                process = subprocess.Popen(
                    [str(a) for a in order["argv"]],
                    env=step_env(order),
                    cwd=str(order["cwd"]) or None,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
        except OSError as exc:
            self.send({"ended": unit, "code": 127, "stderrTail": f"cannot start: {exc}\n"})
            return
        self.running[unit] = process
        threading.Thread(target=self.wait, args=(order, process), daemon=True).start()

    def wait(self, order: dict[str, Any], process: subprocess.Popen[bytes]) -> None:
        unit = str(order["id"])
        code = process.wait()
        self.running.pop(unit, None)
        self.echo(order)
        self.send({"ended": unit, "code": code, "stderrTail": masked(tail(str(order["stderr"])))})

    def echo(self, order: dict[str, Any]) -> None:
        """Copy the ended step's output files into this container's log, framed; the pod's
        scratch goes with the pod, the container's log stays readable."""
        for stream in ("stdout", "stderr"):
            try:
                source = open_log(str(order[stream]))
            except OSError:
                continue
            with source, self.log_lock:
                if not os.fstat(source.fileno()).st_size:
                    continue
                begin = LOG_BEGIN.format(id=order["id"], attempt=order["attempt"], stream=stream)
                log = sys.stdout.buffer
                log.write(f"{begin}\n".encode())
                # Copied in pieces: a step's output may be larger than the memory to spare.
                shutil.copyfileobj(source, log)
                log.write(f"\n{LOG_END}\n".encode())
                log.flush()

    def stop(self, unit: str) -> None:
        process = self.running.get(unit)
        if process is None:
            return
        for sig, grace in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 0.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=grace or None)
                return
            except subprocess.TimeoutExpired:
                continue

    def serve(self, slot: str) -> int:
        self.send({"slot": slot, "pid": os.getpid()})
        buffer = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return 0
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                order = json.loads(line)
                if order.get("exit"):
                    for unit in list(self.running):
                        self.stop(unit)
                    return 0
                if "stop" in order:
                    self.stop(str(order["stop"]))
                else:
                    self.start(order)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: launcher.py SOCKET SLOT", file=sys.stderr)
        return 2
    # A pod being deleted gets SIGTERM in every container at once: the slots stay until the
    # quarterback lets them go, as the section's finally units may still need them.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    sock = connect(argv[0])
    return 0 if sock is None else Launcher(sock).serve(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
