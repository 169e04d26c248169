"""The monitor's ``rule-audit`` check: audit every rule bundle the log publishes.

``overt monitor URL --check rule-audit=STORE`` runs this on every new entry.
``STORE`` is a folder where the rule bundles the vendor distributes can be read
(a mirror of its update server, the transparency center's copy); bundles are
found by SHA-256, whatever their file names. For every logged ``rule-bundle``
publication (``https://overt.dev/rule-bundle/v1``):

- the bundle is audited (:func:`overt.rules.audit.audit_bundle_bytes`, static
  and dynamic) and every finding at or above the level (default ``medium``;
  ``rule-audit=STORE:high`` to change it) is an alert;
- a bundle that is logged but not in the store is an alert too: rules that
  reach endpoints but not the auditors are exactly what transparency is for.

A logged rule-audit attestation (``https://overt.dev/rule-audit/v1``) whose
result is ``fail`` is also an alert: an auditor refused that bundle.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from overt.errors import ConfigError, FormatError
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, parse_envelope
from overt.formats.statement import RULE_AUDIT, RULE_BUNDLE, RuleAudit, parse_statement
from overt.monitor.alert import Alert
from overt.rules.audit import audit_bundle_bytes
from overt.rules.bundle import MAX_ARCHIVE_BYTES, read_capped
from overt.rules.detectors import Severity

__all__ = ["RuleAuditCheck"]


class RuleAuditCheck:
    """Audits every logged rule bundle found in a store folder; alerts on findings."""

    name = "rule-audit"

    def __init__(
        self, store: Path, level: Severity = Severity.MEDIUM, dynamic: bool = True
    ) -> None:
        if not store.is_dir():
            raise ConfigError(f"rule-audit: store {store} is not a folder")
        self.store = store
        self.level = level
        self.dynamic = dynamic
        self._by_sha: dict[str, Path] = {}
        self._seen: dict[Path, tuple[int, int]] = {}

    @classmethod
    def from_arg(cls, arg: str | None) -> RuleAuditCheck:
        if not arg:
            raise ConfigError("rule-audit needs a store folder: --check rule-audit=DIR[:LEVEL]")
        store, sep, level = arg.rpartition(":") if ":" in arg else (arg, "", "")
        try:
            return cls(Path(store), Severity.parse(level) if sep else Severity.MEDIUM)
        except ValueError as err:
            raise ConfigError(f"rule-audit: {err}") from err

    def _read(self, path: Path) -> bytes | None:
        """The file's bytes if it is a regular file inside the store (after
        resolving symlinks) of at most MAX_ARCHIVE_BYTES, read with that cap."""
        root = os.path.realpath(self.store)
        real = os.path.realpath(path)
        if not real.startswith(root.rstrip("/") + "/"):
            return None  # a symlink out of the store is not read
        try:
            data = read_capped(real, MAX_ARCHIVE_BYTES)
        except ConfigError:
            return None  # vanished, unreadable, or not a regular file
        return data if len(data) <= MAX_ARCHIVE_BYTES else None

    def _scan(self) -> None:
        """Hash files that are new or changed since the last scan."""
        for path in self.store.rglob("*"):
            try:
                st = path.stat()
            except OSError:
                continue
            stamp = (st.st_size, st.st_mtime_ns)
            if self._seen.get(path) == stamp or st.st_size > MAX_ARCHIVE_BYTES:
                continue
            self._seen[path] = stamp
            data = self._read(path)
            if data is not None:
                self._by_sha[hashlib.sha256(data).hexdigest()] = path

    def _find(self, sha256: str) -> bytes | None:
        path = self._by_sha.get(sha256)
        if path is None:
            self._scan()
            path = self._by_sha.get(sha256)
        if path is None:
            return None
        data = self._read(path)
        # The file may have changed since it was indexed: only its exact bytes count.
        if data is None or hashlib.sha256(data).hexdigest() != sha256:
            return None
        return data

    def check(self, index: int, entry: bytes) -> list[Alert]:
        if entry.lstrip()[:1] != b"{":
            return []
        try:
            envelope = parse_envelope(entry)
            if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
                return []
            statement = parse_statement(envelope.payload)
        except FormatError:
            return []  # not a publication; the dsse-envelope check speaks to malformed ones
        if statement.predicate_type == RULE_AUDIT:
            try:
                verdict = RuleAudit.from_json(statement.predicate)
            except FormatError as err:
                return [Alert(self.name, index, f"entry {index}: malformed rule audit: {err}")]
            if verdict.result == "fail":
                names = ", ".join(s.name for s in statement.subjects)
                return [
                    Alert(
                        self.name,
                        index,
                        f"entry {index}: an auditor failed {verdict.audit!r} for {names}",
                    )
                ]
            return []
        if statement.predicate_type != RULE_BUNDLE:
            return []
        alerts: list[Alert] = []
        for subject in statement.subjects:
            sha = subject.sha256 or ""
            data = self._find(sha) if sha else None
            if data is None:
                alerts.append(
                    Alert(
                        self.name,
                        index,
                        f"entry {index}: rule bundle {subject.name} (sha256 {sha or 'none'}) is logged"
                        f" but not in the audit store {self.store}",
                    )
                )
                continue
            try:
                report = audit_bundle_bytes(subject.name, data, dynamic=self.dynamic)
            except FormatError as err:  # a hostile archive: refused, and said so
                alerts.append(
                    Alert(
                        self.name,
                        index,
                        f"entry {index}: rule bundle {subject.name} cannot be audited: {err}",
                    )
                )
                continue
            for f in report.findings:
                if f.severity >= self.level:
                    alerts.append(
                        Alert(
                            self.name,
                            index,
                            f"entry {index}: {f.severity} {f.id} {subject.name}:{f.path}:{f.line}"
                            f" rule {f.rule}: {f.reason} ({f.evidence[:120]})",
                        )
                    )
        return alerts
