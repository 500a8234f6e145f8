"""The quarterback: the sidecar of every micro pod, driving the Micro engine in its own pod.

`quarterback(work_dir)` runs it as the pod's container does: it plans the flow it was handed,
runs its section's units in the pod's step slots, swaps a slot's image in place through the
Kubernetes API when a step needs another image (patching its own pod, the one thing its Role
allows), and ends with the section's outcome.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from importlib import resources

from meta.kube.api import ClientApi
from meta.kube.quarterback.driver import PodPaths
from meta.kube.quarterback.main import run_quarterback

TERMINATION_LOG = "/dev/termination-log"


def quarterback(work_dir: str, termination: str = TERMINATION_LOG) -> int:
    """Run the section of a micro pod; the exit code the container ends with."""
    api = ClientApi.from_environment()
    pod, namespace = os.environ["META_POD_NAME"], os.environ["META_POD_NAMESPACE"]

    async def swap(slot: int, image: str) -> None:
        patch = {"spec": {"containers": [{"name": f"slot-{slot}", "image": image}]}}
        await api.patch_pod(namespace, pod, patch)

    async def run() -> int:
        # Kubernetes asks a pod to end with SIGTERM (the operator deletes it, with a grace
        # period long enough for the section's finally units).
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        return await run_quarterback(PodPaths(work=work_dir), swap, termination, stop)

    try:
        return asyncio.run(run())
    finally:
        api.close()


def install_launcher(directory: str) -> str:
    """Copy the launcher where the slot containers find it (an init container does this)."""
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, "launcher.py")
    source = resources.files("meta.kube.quarterback").joinpath("launcher.py")
    with resources.as_file(source) as path:
        shutil.copyfile(path, target)
    return target
