"""SBOMs (CycloneDX 1.6) of a Python project or environment, and offline OSV matching.

- :mod:`overt.sbom.generate`: :func:`make_sbom`, :func:`validate_sbom`.
- :mod:`overt.sbom.osv`: :func:`load_osv`, :func:`load_osv_export`, :func:`vulnerable_components`.
- :mod:`overt.sbom.verdict`: a scanner's signed verdict (:class:`ScanVerdict`), :func:`sbom_digest`.
- :mod:`overt.sbom.errors`: :class:`SbomError`.

See docs/source-review.md. The names below are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.sbom.errors import SbomError
    from overt.sbom.generate import make_sbom, validate_sbom
    from overt.sbom.osv import (
        Advisory,
        OsvExport,
        Vulnerable,
        load_osv,
        load_osv_export,
        vulnerable_components,
    )
    from overt.sbom.verdict import ScanVerdict, VulnerableComponent, sbom_digest

__all__ = [
    "Advisory",
    "OsvExport",
    "SbomError",
    "ScanVerdict",
    "Vulnerable",
    "VulnerableComponent",
    "load_osv",
    "load_osv_export",
    "make_sbom",
    "sbom_digest",
    "validate_sbom",
    "vulnerable_components",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.sbom.errors": ["SbomError"],
            "overt.sbom.generate": ["make_sbom", "validate_sbom"],
            "overt.sbom.osv": [
                "Advisory",
                "OsvExport",
                "Vulnerable",
                "load_osv",
                "load_osv_export",
                "vulnerable_components",
            ],
            "overt.sbom.verdict": ["ScanVerdict", "VulnerableComponent", "sbom_digest"],
        },
    )
