"""Custom-resource schema handling for the emulator: the product's own validation module.

The API emulator prunes, defaults and validates every custom resource exactly as
``selftaught run`` does, because both use :mod:`selftaught.validation`; keeping one copy means
the emulator can never be more lenient than the embedded runner (or the other way round).
"""

from selftaught.validation import apply_defaults, prune, unknown_fields, validate_custom_resource

__all__ = ["apply_defaults", "prune", "unknown_fields", "validate_custom_resource"]
