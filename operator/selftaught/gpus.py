"""GPU memory by card: the table the capacity check compares its estimates against.

Keys are the values NVIDIA's GPU feature discovery writes into the ``nvidia.com/gpu.product``
node label (the product name with spaces replaced by dashes), so a stage's nodeSelector names its
card and the check can look the memory up. Figures are the total memory ``nvidia-smi`` reports
for the card, in MiB: that is what the CUDA allocator can see, a little less than the
marketing number (an "80 GB" H100 shows 81,559 MiB = 79.6 GiB). A card not in the table, or a
figure you want to override (a MIG slice, a vGPU profile), is given per stage with
``stages.<stage>.gpuMemory``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2

#: The node label NVIDIA's GPU feature discovery sets on every GPU node.
PRODUCT_LABEL = "nvidia.com/gpu.product"

#: Total memory per card in MiB, as ``nvidia-smi --query-gpu=memory.total`` reports it.
CARD_MIB: dict[str, int] = {
    "NVIDIA-A100-SXM4-40GB": 40_960,
    "NVIDIA-A100-PCIE-40GB": 40_960,
    "NVIDIA-A100-SXM4-80GB": 81_920,
    "NVIDIA-A100-80GB-PCIe": 81_920,
    "NVIDIA-H100-80GB-HBM3": 81_559,
    "NVIDIA-H100-PCIe": 81_559,
    "NVIDIA-H100-NVL": 95_830,
    "NVIDIA-H200": 143_771,
    "NVIDIA-H200-NVL": 143_771,
    "NVIDIA-GH200-480GB": 97_871,
    "NVIDIA-B200": 183_359,
    "NVIDIA-L4": 23_034,
    "NVIDIA-L40": 46_068,
    "NVIDIA-L40S": 46_068,
    "NVIDIA-A10G": 23_028,
    "NVIDIA-A10": 23_028,
    "Tesla-T4": 15_360,
    "Tesla-V100-SXM2-16GB": 16_384,
    "Tesla-V100-SXM2-32GB": 32_768,
}

#: A MIG slice as GFD labels it with the "single" strategy: "<card>-MIG-3g.40gb".
_MIG = re.compile(r"-MIG-\d+g\.(\d+)gb$", re.IGNORECASE)

#: Binary and decimal suffixes of a Kubernetes quantity, as multipliers of one byte.
_SUFFIXES = {
    "": 1,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGT]i|[kKMGT])?$")


@dataclass(frozen=True)
class Card:
    """The GPU a stage runs on: its name (label value or "gpuMemory") and memory in bytes."""

    name: str
    memory_bytes: int

    @property
    def gib(self) -> float:
        return self.memory_bytes / GIB


def parse_quantity(text: str, *, field: str) -> int:
    """Bytes in a memory quantity ("80Gi", "81559Mi", "85G"); a ValueError names ``field``."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{field}: {text!r} is not a memory quantity such as 80Gi")
    number, suffix = match.groups()
    return int(float(number) * _SUFFIXES[suffix or ""])


def lookup(product: str) -> int | None:
    """Memory in bytes of the card a product label names, or None when it is not known.

    Matching ignores case (labels are copied by hand into manifests); a MIG slice's memory is
    read from its profile name (``...-MIG-3g.40gb`` -> 40 GB as the profile promises).
    """
    for name, mib in CARD_MIB.items():
        if name.lower() == product.lower():
            return mib * MIB
    mig = _MIG.search(product)
    if mig:
        return int(mig.group(1)) * 1000**3
    return None


def card_of(*, node_selector: dict[str, str], gpu_memory: str | None, field: str) -> Card | None:
    """The card of one stage: ``gpuMemory`` wins, else the nodeSelector's product label.

    None when neither says (the check then cannot judge the fit and says which field to set).
    """
    if gpu_memory:
        return Card("gpuMemory", parse_quantity(gpu_memory, field=field))
    product = node_selector.get(PRODUCT_LABEL)
    if product is None:
        return None
    memory = lookup(product)
    return None if memory is None else Card(product, memory)
