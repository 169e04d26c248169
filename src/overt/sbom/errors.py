"""What building or checking an SBOM refuses (see :mod:`overt.errors` for the tree)."""

from __future__ import annotations

from overt.errors import OvertError

__all__ = ["SbomError"]


class SbomError(OvertError):
    """An SBOM that cannot be made, is not valid CycloneDX, or an unreadable OSV export."""
