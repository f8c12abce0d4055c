"""``python -m tests.harness --port 8443 --kubeconfig /tmp/kc``: an emulated cluster for a shell.

Runs the API emulator and the kubelet until Ctrl-C, and prints how to point kubectl at them.
"""

from __future__ import annotations

import argparse
import signal
import threading

from tests.harness.cluster import Cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness", description=__doc__)
    parser.add_argument(
        "--port", type=int, default=8443, help="port on 127.0.0.1 (0: any free port)"
    )
    parser.add_argument(
        "--kubeconfig", default="/tmp/selftaught-emulator.kubeconfig", help="kubeconfig to write"
    )
    parser.add_argument("--max-pods", type=int, default=4, help="pod processes run at once")
    parser.add_argument("--no-kubelet", action="store_true", help="serve the API only")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Cluster(
        port=args.port,
        kubeconfig=args.kubeconfig,
        max_pods=args.max_pods,
        kubelet=not args.no_kubelet,
    ) as cluster:
        print(
            f"Kubernetes API emulator on {cluster.api.url}"
            f" (kubelet: {'off' if args.no_kubelet else 'on'})"
        )
        print(f"  export KUBECONFIG={cluster.kubeconfig}")
        print("  kubectl get namespaces")
        print("Ctrl-C to stop.", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
