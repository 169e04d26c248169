"""A disclosure programme's directory: its keys, database, log and settings, in one place.

::

    DIR/site.json       {"format": "overt.dev/disclosure-site/v1", "program", "base_url",
                         "publisher", "namespace", "store", "log", "log_token"}
    DIR/psirt.key       the PSIRT's HPKE private key (0600; overt.disclosure.crypto)
    DIR/publisher.key   the publisher key that signs logged advisories (0600)
    DIR/disclosure.db   the SQLite database (unless ``store`` is a PostgreSQL URL)
    DIR/log/            the commitment log (unless ``log`` is a log server's URL)

:func:`init_site` creates it; :func:`open_site` gives the :class:`~overt.disclosure.service.Desk`
over it. A local log is opened on the first commitment, not before, so read-only commands
(listing, showing, scoring) work while ``overt disclosure serve`` holds the log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overt.disclosure.advisories import Publisher
from overt.disclosure.crypto import PSIRTKey
from overt.disclosure.service import Desk
from overt.disclosure.store import Store
from overt.disclosure.timeline import LocalCommitmentLog, RemoteCommitmentLog
from overt.errors import ConfigError, FormatError
from overt.formats.strict import json_members, json_str, load_json

if TYPE_CHECKING:
    from overt.log.log import Log

__all__ = ["SITE_FORMAT", "Site", "close_site", "init_site", "open_site", "read_site"]

SITE_FORMAT = "overt.dev/disclosure-site/v1"
_FIELDS = ("format", "program", "base_url", "publisher", "namespace", "store", "log")


@dataclass(frozen=True)
class Site:
    directory: Path
    program: str
    base_url: str
    publisher: Publisher
    store: str
    log: str
    log_token: str | None


class _LazyLocalLog:
    """A local log directory, opened (and locked) on the first append."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log: Log | None = None

    def append(self, entries: Sequence[bytes]) -> list[bytes]:
        if self.log is None:
            from overt.log.log import Log

            self.log = Log.open(self.directory)
        return LocalCommitmentLog(self.log).append(entries)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


def init_site(
    directory: Path,
    program: str,
    base_url: str,
    publisher: str,
    log_url: str | None = None,
    log_token: str | None = None,
    store_url: str | None = None,
) -> Site:
    """Create a programme directory (keys, database, a local log unless ``log_url``).

    Raises:
        ConfigError: the directory holds a site already, or cannot be written.
        FormatError: a program name outside the commitment grammar.
    """
    from overt.disclosure.timeline import commitment_entry, new_salt
    from overt.disclosure.workflow import State
    from overt.publish.keys import generate_publisher_key

    if (directory / "site.json").exists():
        raise ConfigError(f"{directory} holds a disclosure site already")
    if not base_url.startswith("https://") and not base_url.startswith("http://127.0.0.1"):
        raise ConfigError(f"the base URL must be https://, got {base_url!r}")
    # Checks the program name against the commitment grammar before anything is written.
    commitment_entry(program, new_salt(), "R-check", State.RECEIVED, datetime.now(UTC))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        PSIRTKey.generate().save(directory / "psirt.key")
        skey, _signer = generate_publisher_key(program)
        fd = os.open(directory / "publisher.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(skey + "\n")
    except OSError as err:
        raise ConfigError(f"cannot create {directory}: {err}") from err
    if log_url is None:
        from overt.log.log import Log

        Log.create(directory / "log", program).close()
    doc: dict[str, Any] = {
        "format": SITE_FORMAT,
        "program": program,
        "base_url": base_url.rstrip("/"),
        "publisher": publisher,
        "namespace": base_url.rstrip("/"),
        "store": store_url or "disclosure.db",
        "log": log_url or "log",
    }
    if log_token is not None:
        doc["log_token"] = log_token
    (directory / "site.json").write_text(json.dumps(doc, indent=1) + "\n")
    Store.open(_store_location(directory, doc["store"])).close()
    return read_site(directory)


def _store_location(directory: Path, store: str) -> str:
    return store if "://" in store else str(directory / store)


def read_site(directory: Path) -> Site:
    """Raises ConfigError: no site there; FormatError: a malformed site.json."""
    try:
        raw = (directory / "site.json").read_bytes()
    except OSError as err:
        raise ConfigError(f"{directory} is not a disclosure site: {err.strerror}") from err
    what = "site.json"
    doc = json_members(load_json(raw, what, 64 * 1024), what, _FIELDS, ("log_token",))
    if doc["format"] != SITE_FORMAT:
        raise FormatError(what, f"format is not {SITE_FORMAT}")
    s = {k: json_str(doc[k], what, k) for k in _FIELDS}
    token = doc.get("log_token")
    return Site(
        directory,
        s["program"],
        s["base_url"],
        Publisher(s["publisher"], s["namespace"], s["base_url"]),
        s["store"],
        s["log"],
        json_str(token, what, "log_token") if token is not None else None,
    )


def open_site(directory: Path) -> tuple[Site, Desk]:
    """The site and a desk over it. Close with ``desk.store.close()`` and :func:`close_log`.

    Raises:
        ConfigError, FormatError: a missing or malformed site, keys or database.
    """
    from overt.publish.keys import load_publisher_signer

    site = read_site(directory)
    key = PSIRTKey.load(directory / "psirt.key")
    signer = load_publisher_signer(directory / "publisher.key")
    store = Store.open(_store_location(directory, site.store))
    log: Any
    if "://" in site.log:
        from overt.log.client import LogClient

        log = RemoteCommitmentLog(LogClient(site.log, site.log_token))
    else:
        log = _LazyLocalLog(directory / site.log)
    desk = Desk(store, key, log, site.program, publisher=site.publisher, signer=signer)
    return site, desk


def close_site(desk: Desk) -> None:
    """Close the desk's database and log."""
    desk.store.close()
    close = getattr(desk.log, "close", None)
    if close is not None:
        close()
    client = getattr(desk.log, "client", None)
    if client is not None:
        client.close()
