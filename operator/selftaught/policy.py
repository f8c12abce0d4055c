"""Who may run what: the operator's own check on the images and identity a run asks for. Pure.

Creating a SelfTaughtRun makes the operator create pods with the run's image, ServiceAccount
and Secret references, under the operator's own RBAC: "create selftaughtruns" is, in effect,
"create pods" (a confused deputy, see docs/security.md). A cluster admin can narrow that in two
places, which check the same thing:

- at admission, with the chart's optional ValidatingAdmissionPolicy (``policy.enabled``), so a
  refused run is never stored;
- in the operator (``--allowed-image-prefix``, ``--allowed-service-account``), so a run that
  reached the operator anyway (the policy off, a cluster without ValidatingAdmissionPolicy, a
  run stored before the policy) never gets a Job: :func:`refusal` is checked before each Job is
  created, and the run fails with the reason ``PolicyDenied``.

Only what the run itself names is checked: a stage without an image uses the operator's default
image (the admin's own choice), and a run without ``serviceAccountName`` runs as the namespace's
``default`` account. An empty allow-list allows everything (the default: no policy).
"""

from __future__ import annotations

from dataclasses import dataclass

from selftaught.api import RunSpec
from selftaught.phases import Stage


@dataclass(frozen=True)
class WorkloadPolicy:
    """What runs may ask for; empty tuples allow anything."""

    #: Image references a run may name must start with one of these (end each with '/' or ':'
    #: so that "registry.example.com/ml/" does not also allow "registry.example.com/ml-evil").
    allowed_image_prefixes: tuple[str, ...] = ()
    #: ServiceAccount names a run's workers may run as.
    allowed_service_accounts: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.allowed_image_prefixes or self.allowed_service_accounts)


def named_images(spec: RunSpec) -> dict[str, str]:
    """Every image the run itself names, by the field that names it."""
    images = {"spec.worker.image": spec.worker.image} if spec.worker.image else {}
    for stage in Stage:
        image = spec.stages.of(stage).image
        if image:
            images[f"spec.stages.{stage.value}.image"] = image
    return images


def refusal(spec: RunSpec, policy: WorkloadPolicy) -> str | None:
    """Why ``policy`` forbids this run, naming the field and value; None when it allows it."""
    problems = []
    if policy.allowed_image_prefixes:
        allowed = ", ".join(policy.allowed_image_prefixes)
        for field, image in named_images(spec).items():
            if not image.startswith(policy.allowed_image_prefixes):
                problems.append(
                    f"{field}: {image!r} does not start with an allowed prefix ({allowed})"
                )
    account = spec.worker.service_account_name
    accounts = policy.allowed_service_accounts
    if accounts and account is not None and account not in accounts:
        problems.append(
            f"spec.worker.serviceAccountName: {account!r} is not an allowed ServiceAccount "
            f"({', '.join(accounts)})"
        )
    if not problems:
        return None
    return "refused by the operator's workload policy: " + "; ".join(problems)
