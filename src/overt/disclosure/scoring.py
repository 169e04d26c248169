"""CVSS v3.1 and v4.0 vectors, validated and scored with the ``cvss`` library (FIRST's formulas).

A vector is ``CVSS:3.1/AV:N/AC:L/...`` (https://www.first.org/cvss/v3.1/specification-document)
or ``CVSS:4.0/AV:N/AC:L/AT:N/...`` (https://www.first.org/cvss/v4.0/specification-document).
Example: ``CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`` scores 9.8, critical.

Other versions (2.0, 3.0) are refused: the programme scores in the two current ones. The
library's parse error becomes :class:`InvalidVectorError` with its reason, so a researcher
or triager sees which metric is wrong. The stored vector is the library's canonical form.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from overt.disclosure.errors import InvalidVectorError

__all__ = ["MAX_VECTOR_LENGTH", "Score", "Severity", "score"]

MAX_VECTOR_LENGTH = 256
_PREFIX = re.compile(r"^CVSS:(3\.1|4\.0)/")


class Severity(enum.StrEnum):
    """Qualitative severity rating (the same five bands in v3.1 and v4.0)."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Score:
    """A validated vector: its version, canonical form, base score and severity."""

    version: str
    vector: str
    base: float
    severity: Severity


def score(vector: str) -> Score:
    """Validates and scores a CVSS v3.1 or v4.0 vector.

    Raises:
        InvalidVectorError: too long, another CVSS version, or refused by the ``cvss``
            library (an unknown metric or value, a missing mandatory metric, a repeat).
    """
    if len(vector) > MAX_VECTOR_LENGTH:
        raise InvalidVectorError(vector, f"longer than {MAX_VECTOR_LENGTH} characters")
    if not vector.isascii() or not vector.isprintable():
        raise InvalidVectorError(vector, "not printable ASCII")
    match = _PREFIX.match(vector)
    if match is None:
        raise InvalidVectorError(vector, "does not start with CVSS:3.1/ or CVSS:4.0/")
    from cvss import CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    try:
        if match.group(1) == "3.1":
            v3 = CVSS3(vector)
            base = float(v3.scores()[0])
            severity = str(v3.severities()[0])
            canonical = str(v3.clean_vector())
        else:
            v4 = CVSS4(vector)
            base = float(v4.base_score)
            severity = str(v4.severity)
            canonical = str(v4.clean_vector())
    except CVSSError as err:
        raise InvalidVectorError(vector, str(err)) from err
    return Score(match.group(1), canonical, base, Severity(severity.lower()))
