"""A Kubernetes API emulator and a local-process kubelet for end-to-end tests without a cluster.

Public API: ``ApiServer``, ``Kubelet``, ``Cluster``, ``PodFault``, ``write_kubeconfig``; pytest
fixtures in ``tests.harness.fixtures``; pure CRD schema functions in ``tests.harness.schemas``.
"""

from tests.harness.apiserver import ApiServer
from tests.harness.cluster import Cluster
from tests.harness.kubeconfig import write_kubeconfig
from tests.harness.kubelet import Kubelet
from tests.harness.pod_faults import PodFault

__all__ = ["ApiServer", "Cluster", "Kubelet", "PodFault", "write_kubeconfig"]
