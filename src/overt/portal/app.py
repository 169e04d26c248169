"""The Transparency Center portal: server-rendered pages over one log, on bare ASGI.

Routes (every page is HTML readable with curl; raw bytes for the in-browser verifier)::

    GET /                        the log: checkpoint, witness cosignatures and ages,
                                 growth, entry kinds, monitor alerts, newest entries
    GET /entries                 browse and search: ?kind= &product= &version= &digest= &q=
    GET /entries/<i>             one entry: decoded statement, verification steps
                                 (server and browser), downloads, related entries
    GET /entries/<i>/entry       the entry's bytes (a DSSE envelope, or whatever was logged)
    GET /entries/<i>/proof       its tlog-proof (c2sp.org/tlog-proof) against the checkpoint
    GET /entries/<i>/tile        the level-0 tile (c2sp.org/tlog-tiles) holding its leaf hash
    GET /entries/<i>/bundle      a statement's .overt bundle (overt.publish.bundle), built from
                                 the log: proof, key sets, attestations about its artifact
    GET /checkpoint              the published checkpoint with its cosignatures
    GET /rules                   rule bundles with their logged audits (pass / fail)
    GET /rules/<i>               one bundle (its file from ``--artifacts``): rule text, the
                                 auditor's findings, a side-by-side diff against the previous
    GET /releases                releases and updates with their evidence entries
    GET /telemetry               the telemetry policy (if given) and its logged revisions
    GET /disclosure              logged advisories, counts, a link to the intake service
    GET /static/<file>           verify.js, portal.js, sign.js, portal.css
    /login, /logout, /partners/* the partners' area (overt.portal.area), with ``state``

Hostile content stays inert: Jinja2 autoescapes every value, and every answer
carries a Content-Security-Policy that allows scripts, styles and fetches from
the portal itself only (no inline script, no inline style), plus ``nosniff``.

Status codes: 404 no such page or entry, 405 a method other than GET or HEAD
(outside the partners' area),
400 a malformed query (a non-decimal index), 503 the log cannot be read. The
portal only reads the log directory (``overt.log.LogView``: no lock, beside a
running ``overt log serve``); it re-reads the checkpoint at most once a second and
indexes the new entries into its SQLite index (``state/index.sqlite``). The one write
is a partner's accepted envelope, logged through ``config.log``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import jinja2

from overt._asgi import Receive, Scope, Send, error, reply
from overt.errors import ConfigError, FormatError, OvertError
from overt.formats import tiles
from overt.formats.checkpoint import Checkpoint, parse_checkpoint
from overt.formats.note import parse_note, parse_vkey
from overt.formats.policy import Policy, parse_policy
from overt.formats.proof import TlogProof, parse_proof
from overt.log.log import LogView, read_vkey
from overt.portal.checks import (
    WitnessRow,
    browser_quorum,
    checkpoint_steps,
    cosigners,
    entry_steps,
    witness_rows,
)
from overt.portal.entries import DecodedEntry, EntryIndex, decode_entry

if TYPE_CHECKING:
    from overt.gate.policy import ClientPolicy

__all__ = ["CSP", "Portal", "PortalConfig"]

CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HERE = Path(__file__).parent
_STATIC = {
    "verify.js": b"text/javascript; charset=utf-8",
    "portal.js": b"text/javascript; charset=utf-8",
    "sign.js": b"text/javascript; charset=utf-8",
    "portal.css": b"text/css; charset=utf-8",
}
_HTML = b"text/html; charset=utf-8"
_PARTNERS = re.compile(r"/login|/logout|/partners(/.*)?")
_TEXT_QUERY = re.compile(r"(^|&)q=[^&]")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_RULES = re.compile(r"/rules/(0|[1-9][0-9]{0,18})")
_MAX_ARTIFACT = 64 << 20  # bytes: larger files in the artifacts folder are not read
_ENTRY = re.compile(r"/entries/(0|[1-9][0-9]{0,18})(/entry|/proof|/tile|/bundle)?")
#: Logged statements a bundle carries as attestations about its artifact.
_ATTESTING = frozenset(
    {"rule-audit", "provenance", "sbom", "statement", "advisory", "review", "rebuild", "sbom-scan"}
)
_GATED = 100  # newest releases and rule bundles whose gate verdict a page shows
#: The products make run (and docs/telemetry.md) publish a telemetry policy and a
#: region collector's key under.
_POLICY_PRODUCT = "overt-telemetry-policy"
_COLLECTOR_KEY_PRODUCT = "overt-telemetry-collector-key"
_HISTORY_DIFFS = 50  # newest policy revisions shown as diffs
_HISTORY_BARS = 40  # newest rule bundles in the findings chart
_LISTED = 200  # newest releases on the releases page (the rest: /entries?kind=release)
_MAX_QUERY = 512
_MAX_ALERTS = 50
_HISTORY = 200
_CACHE = 4096  # rendered answers kept for the current checkpoint
#: Pages that show more than the log (the clock's witness ages, monitor alerts, access
#: reads, a partner's session): rendered again after ``refresh`` seconds.
_CLOCKED = frozenset({"/", "/telemetry"})
_Answer = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]


@dataclass(frozen=True)
class PortalConfig:
    """What the portal shows: a log directory and, optionally, the rest of the centre."""

    log_dir: Path
    monitor_events: Path | None = None  # the monitor's JSONL output (alerts, events)
    telemetry_policy: Path | None = None  # the current telemetry policy (JSON)
    client_policy: Path | None = None  # an update gate's client policy: is it met?
    artifacts: Path | None = None  # published files (a download mirror), found by sha256
    access_log: Path | None = None  # a telemetry collector's access log directory
    state: Path | None = None  # the portal's own folder: entry index, partner accounts
    log: str | None = None  # where partners' signed envelopes are logged: a URL or directory
    log_token: str | None = None  # the bearer token for a log URL (else $OVERT_LOG_TOKEN)
    secure_cookies: bool = True  # the session cookie's Secure flag (off only for plain-HTTP tests)
    disclosure_url: str | None = None  # the disclosure service's intake
    refresh: float = 1.0  # re-read the checkpoint at most this often (seconds)
    clock: Callable[[], float] = field(default=time.time, compare=False)


@dataclass
class _Snapshot:
    view: LogView
    note: bytes
    checkpoint: Checkpoint
    read_at: float


class Portal:
    """The portal's ASGI app over ``config.log_dir``.

    Raises (on construction):
        ConfigError: not a log directory, or an unreadable witness policy.
    """

    def __init__(self, config: PortalConfig) -> None:
        if config.disclosure_url is not None and not re.fullmatch(
            r"https?://[^\s\"'<>]+", config.disclosure_url
        ):
            raise ConfigError(f"the disclosure URL is not http(s): {config.disclosure_url!r}")
        self.config = config
        self.vkey = read_vkey(config.log_dir)
        self.log_verifier = parse_vkey(self.vkey)
        self.policy: Policy | None = None
        policy_path = config.log_dir / "witnesses.policy"
        if policy_path.exists():
            try:
                self.policy = parse_policy(policy_path.read_bytes())
            except (OSError, FormatError) as err:
                raise ConfigError(f"{policy_path}: {err}") from err
        self.gate_policy: ClientPolicy | None = None
        if config.client_policy is not None:
            from overt.gate.policy import load_client_policy

            self.gate_policy = load_client_policy(config.client_policy)
        index_path = None
        if config.state is not None:
            try:
                config.state.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as err:
                raise ConfigError(f"cannot create {config.state}: {err.strerror}") from err
            index_path = config.state / "index.sqlite"
        self.index = EntryIndex(index_path, log_id=self.vkey)
        self._artifacts: dict[str, Path] | None = None
        self._audits: dict[str, Any] = {}
        self._access: tuple[float, dict[str, Any]] | None = None
        self._snapshot: _Snapshot | None = None
        self._monitor_offset = 0  # bytes of the monitor's events already read for growth
        self._cache: dict[tuple[str, str], tuple[float, _Answer]] = {}
        self._cached_note = b""  # the checkpoint the cached answers were rendered for
        self._lock = threading.Lock()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,  # every value, whatever the template's name
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["age"] = _age
        self.static = {name: (_HERE / "static" / name).read_bytes() for name in _STATIC}
        self.area = None
        if config.state is not None:
            from overt.portal.area import PartnersArea

            self.area = PartnersArea(self)

    # -- the log, read-only ----------------------------------------------------

    def snapshot(self) -> _Snapshot:
        """The published log as last read (re-read when older than ``config.refresh``).

        Raises:
            OvertError: the log directory cannot be read or its checkpoint does not verify.
        """
        now = self.config.clock()
        with self._lock:
            snap = self._snapshot
            if snap is not None and now - snap.read_at < self.config.refresh:
                return snap
            view = LogView.open(self.config.log_dir)
            note = view.checkpoint()
            if snap is not None and note == snap.note:
                view = snap.view  # the same checkpoint: keep the view and its warm tile cache
            cp = parse_checkpoint(parse_note(note).text)
            self.index.update(view, cp.size)
            seen = self._monitor_checkpoints(cp.origin)
            if snap is None or snap.checkpoint.size != cp.size:
                seen.append((now, cp.size))
            self.index.record_growth(seen)
            self._snapshot = _Snapshot(view, note, cp, now)
            return self._snapshot

    # -- ASGI ------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers = [
            (b"content-security-policy", CSP),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-cache"),
        ]
        if _PARTNERS.fullmatch(scope["path"]):
            if self.area is None:
                off = "This portal has no partners' area (overt portal serve --state DIR)."
                page = self._render("partner_error.html", code=404, message=off)
                await reply(send, 404, page.encode("utf-8"), _HTML, headers)
                return
            try:
                status, body, ctype, extra = await self.area(scope, receive, send, headers)
            except OvertError as err:
                await error(send, 503, f"the log cannot be read: {err}", headers)
                return
            await reply(send, status, body, ctype, [*headers, *extra])
            return
        if scope["method"] not in ("GET", "HEAD"):
            await error(send, 405, "the portal is read-only", [*headers, (b"allow", b"GET, HEAD")])
            return
        path, query = scope["path"], scope.get("query_string", b"").decode("latin-1")
        try:
            # Pages are bounded work (at most a few hundred rows, a millisecond or so) and
            # are answered on the event loop: a hand-over to a thread costs more than that
            # under the GIL. A free-text search may scan the whole index, so it runs in a
            # worker thread and the other clients are not held up (SQLite releases the GIL).
            hit = self.cached(path, query)
            if hit is not None:
                status, body, ctype, extra = hit
            elif path == "/entries" and _TEXT_QUERY.search(query):
                status, body, ctype, extra = await asyncio.to_thread(self.handle, path, query)
            else:
                status, body, ctype, extra = self.handle(path, query)
        except _HTTPError as err:
            await error(send, err.status, err.message, headers)
            return
        except OvertError as err:
            await error(send, 503, f"the log cannot be read: {err}", headers)
            return
        if scope["method"] == "HEAD":
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", ctype),
                        (b"content-length", b"%d" % len(body)),
                        *headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await reply(send, status, body, ctype, [*headers, *extra])

    def cached(
        self, path: str, query: str
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]] | None:
        """The answer rendered for the current checkpoint, if it is still current."""
        snap = self._snapshot
        now = self.config.clock()
        if snap is None or now - snap.read_at >= self.config.refresh:
            return None  # the log is due a re-read first
        return self._fresh(snap, (path, query), now)

    def _fresh(
        self, snap: _Snapshot, key: tuple[str, str], now: float
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]] | None:
        if self._cached_note != snap.note:
            return None
        hit = self._cache.get(key)
        if hit is None:
            return None
        rendered_at, result = hit
        if key[0] in _CLOCKED and now - rendered_at >= self.config.refresh:
            return None
        return result

    def handle(self, path: str, query: str) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        """``(status, body, content type, headers)`` for a GET of ``path?query``.

        Raises:
            _HTTPError: 400 or 404; OvertError: the log cannot be read (503).
        """
        if path.startswith("/static/"):
            name = path[len("/static/") :]
            if name not in _STATIC:
                raise _HTTPError(404, "no such file")
            return 200, self.static[name], _STATIC[name], []
        if len(query) > _MAX_QUERY:
            raise _HTTPError(400, f"query longer than {_MAX_QUERY} characters")
        snap = self.snapshot()
        # Every page is a function of the published log (append-only): a page rendered for
        # this checkpoint is served again until the log publishes another one. Pages that
        # also show the clock or other files (witness ages, monitor alerts, access reads)
        # are rendered again at most every ``refresh`` seconds.
        key = (path, query)
        now = self.config.clock()
        if self._cached_note != snap.note:
            self._cache.clear()
            self._cached_note = snap.note
        hit = self._fresh(snap, key, now)
        if hit is not None:
            return hit
        result = self._handle(snap, path, query)
        if len(self._cache) >= _CACHE:
            self._cache.clear()
        self._cache[key] = (now, result)
        return result

    def _handle(
        self, snap: _Snapshot, path: str, query: str
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        if path == "/checkpoint":
            return 200, snap.note, b"text/plain; charset=utf-8", []
        match = _ENTRY.fullmatch(path)
        if match:
            return self._entry(snap, int(match.group(1)), match.group(2))
        match = _RULES.fullmatch(path)
        if match:
            html = self._rule_page(snap, int(match.group(1)))
            return 200, html.encode("utf-8"), _HTML, []
        pages: dict[str, Callable[[_Snapshot, dict[str, str]], str]] = {
            "/": self._log_page,
            "/entries": self._entries_page,
            "/rules": self._rules_page,
            "/releases": self._releases_page,
            "/telemetry": self._telemetry_page,
            "/disclosure": self._disclosure_page,
        }
        page = pages.get(path)
        if page is None:
            raise _HTTPError(404, "no such page")
        try:
            params = {k: v[0] for k, v in parse_qs(query, max_num_fields=16).items()}
        except ValueError as err:  # more fields than that
            raise _HTTPError(400, f"malformed query: {err}") from err
        return 200, page(snap, params).encode("utf-8"), _HTML, []

    def _render(self, template: str, **values: Any) -> str:
        return self.env.get_template(template).render(
            origin=self._snapshot.checkpoint.origin if self._snapshot else "",
            disclosure_url=self.config.disclosure_url,
            gated=self.gate_policy is not None,
            **values,
        )

    # -- pages -----------------------------------------------------------------

    def _witnesses(self, snap: _Snapshot) -> list[WitnessRow]:
        return witness_rows(snap.note, self.policy, self.config.clock())

    def _log_page(self, snap: _Snapshot, params: dict[str, str]) -> str:
        return self._render(
            "log.html",
            checkpoint=snap.checkpoint,
            note=snap.note.decode("utf-8", "replace"),
            vkey=self.vkey,
            witnesses=self._witnesses(snap),
            steps=checkpoint_steps(snap.note, self.log_verifier, self.policy, time.time()),
            trust=self._trust(None),
            policy=self.policy,
            growth=_chart(self._growth()),
            kinds=self.index.kinds(),
            alerts=self._alerts(),
            latest=self.index.search(limit=20),
        )

    def _entries_page(self, snap: _Snapshot, params: dict[str, str]) -> str:
        want = {k: params.get(k, "")[:200] for k in ("kind", "product", "version", "digest", "q")}
        rows = self.index.search(
            kind=want["kind"],
            product=want["product"],
            version=want["version"],
            digest=want["digest"],
            text=want["q"],
            limit=200,
        )
        return self._render("entries.html", rows=rows, want=want, kinds=self.index.kinds())

    def _row(self, snap: _Snapshot, index: int) -> DecodedEntry:
        """Entry ``index`` decoded afresh from the log (its whole statement).

        Raises:
            _HTTPError: 404, beyond the checkpoint.
        """
        if index >= snap.checkpoint.size:
            raise _HTTPError(404, f"no entry {index}: the log has {snap.checkpoint.size}")
        return decode_entry(index, snap.view.entry(index))

    def _raw(self, snap: _Snapshot, index: int) -> tuple[bytes, bytes, bytes]:
        """The entry's bytes, its tlog-proof and its level-0 tile, from one snapshot."""
        view, size = snap.view, snap.checkpoint.size
        tile_index = index // tiles.TILE_WIDTH
        width = min(tiles.TILE_WIDTH, size - tile_index * tiles.TILE_WIDTH)
        return view.entry(index), view.proof(index), view.read_tile(0, tile_index, width)

    def _entry(
        self, snap: _Snapshot, index: int, part: str | None
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        if index >= snap.checkpoint.size:
            raise _HTTPError(404, f"no entry {index}: the log has {snap.checkpoint.size}")
        entry, proof, tile = self._raw(snap, index)
        row = decode_entry(index, entry)  # the entry read once (a bundle read and parse)
        if part == "/bundle":
            if not row.statement:
                raise _HTTPError(404, f"entry {index} is not a statement: it has no bundle")
            disposition = b'attachment; filename="entry-%d.overt"' % index
            body = self._bundle(snap, row, entry, proof)
            return 200, body, b"application/json", [(b"content-disposition", disposition)]
        if part is not None:
            body = {"/entry": entry, "/proof": proof, "/tile": tile}[part]
            name = {
                "/entry": f"entry-{index}",
                "/proof": f"entry-{index}.tlog-proof",
                "/tile": f"tile-0-{index // tiles.TILE_WIDTH}",
            }[part]
            disposition = b'attachment; filename="%s"' % name.encode("ascii")
            return 200, body, b"application/octet-stream", [(b"content-disposition", disposition)]
        steps = entry_steps(entry, proof, tile, self.log_verifier, self.policy, time.time())
        trust = self._trust(index)
        page = self._render(
            "entry.html",
            row=row,
            steps=steps,
            related=self.index.related(row),
            trust=trust,
        )
        return 200, page.encode("utf-8"), _HTML, []

    def _bundle(self, snap: _Snapshot, row: DecodedEntry, entry: bytes, proof: bytes) -> bytes:
        """The .overt bundle of a logged statement, everything proven against one checkpoint.

        Raises:
            OvertError: the log's tiles do not give the proofs (503).
        """
        from overt.publish.bundle import Bundle, LoggedEntry, format_bundle

        view, size = snap.view, snap.checkpoint.size

        def logged(i: int) -> LoggedEntry:
            return LoggedEntry(view.entry(i), i, tuple(view.inclusion_proof(i, size)))

        keysets = tuple(logged(r.index) for r in self.index.search(kind="key-set", limit=1000))
        attestations = tuple(
            logged(r.index)
            for r in self.index.related(row)
            if r.kind in _ATTESTING and r.digest == row.digest
        )
        parsed: TlogProof = parse_proof(proof)
        return format_bundle(
            Bundle(entry, parsed, tuple(sorted(keysets, key=lambda e: e.index)), attestations)
        )

    def _gate(self, snap: _Snapshot, rows: list[DecodedEntry]) -> dict[int, str]:
        """What the client policy's update gate says of each row (the newest ``_GATED``):
        "met", or the first failing check and why (overt.gate.verify_publication)."""
        policy = self.gate_policy
        if policy is None:
            return {}
        from overt.gate.errors import GateError
        from overt.gate.verify import GateState, verify_publication

        verdicts: dict[int, str] = {}
        for row in rows[:_GATED]:
            entry, proof, _tile = self._raw(snap, row.index)
            bundle = self._bundle(snap, row, entry, proof)
            try:
                verify_publication(
                    bytes.fromhex(row.digest), bundle, policy, GateState(), time.time()
                )
                verdicts[row.index] = "met"
            except GateError as err:
                verdicts[row.index] = str(err)
        return verdicts

    def artifact(self, digest: str) -> bytes | None:
        """The published file with this sha256 from ``config.artifacts``, or None.

        The folder is indexed once (files up to 64 MiB); a file is read again and its
        digest checked before use, so a file changed since is not shown as the artifact.
        """
        folder = self.config.artifacts
        if folder is None or not digest:
            return None
        if self._artifacts is None:
            found: dict[str, Path] = {}
            for path in sorted(folder.rglob("*")):
                try:
                    if path.is_file() and path.stat().st_size <= _MAX_ARTIFACT:
                        found[hashlib.sha256(path.read_bytes()).hexdigest()] = path
                except OSError:
                    continue  # unreadable: not offered
            self._artifacts = found
        where = self._artifacts.get(digest)
        if where is None:
            return None
        try:
            data = where.read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == digest else None

    def _rule_page(self, snap: _Snapshot, index: int) -> str:
        from overt.rules import audit_bundle_bytes, diff_bundles, read_bundle

        row = self._row(snap, index)
        if row.kind != "rule-bundle":
            raise _HTTPError(404, f"entry {index} is not a rule bundle")
        audits = [r for r in self.index.related(row) if r.kind == "rule-audit"]
        data = self.artifact(row.digest)
        sources: dict[str, bytes] = {}
        findings: list[Any] = []
        changes: list[Any] = []
        sides: list[tuple[str, str, str]] = []
        previous = None
        if data is not None:
            try:
                sources = read_bundle(row.subject, data)
                report = self._audits.get(row.digest)
                if report is None:
                    # Static checks only: the canary scan runs in the auditor's sandbox, not here.
                    report = audit_bundle_bytes(row.subject, data, dynamic=False)
                    self._audits[row.digest] = report
                findings = sorted(report.findings, key=lambda f: -int(f.severity))
            except FormatError as err:
                findings = []
                sources = {"(unreadable)": str(err).encode()}
            older = [
                r
                for r in self.index.search(kind="rule-bundle", product=row.product, limit=1000)
                if r.index < row.index
            ]
            for r in older:
                old = self.artifact(r.digest)
                if old is not None:
                    previous = r
                    try:
                        old_sources = read_bundle(r.subject, old)
                        changes = diff_bundles(old_sources, sources, dynamic=False).changes
                        if len(old_sources) == len(sources) == 1:
                            # One file each (named after the release): compare them as one.
                            ((_, a),), ((name, b),) = old_sources.items(), sources.items()
                            sides.append((name, _text(a), _text(b)))
                        else:
                            for name in sorted(set(old_sources) | set(sources)):
                                a, b = old_sources.get(name, b""), sources.get(name, b"")
                                if a != b:
                                    sides.append((name, _text(a), _text(b)))
                    except FormatError:
                        changes = []
                    break
        return self._render(
            "rule.html",
            row=row,
            audits=audits,
            have=data is not None,
            files=[(name, _text(text)) for name, text in sorted(sources.items())],
            findings=findings,
            previous=previous,
            changes=changes,
            sides=sides,
        )

    def _trust(self, index: int | None) -> str:
        """What the browser verifies against (the page's ``data-trust``): the log and witness
        keys, the quorum, and the entry (None: the log page's checkpoint)."""
        witnesses = [{"name": w.name, "vkey": w.vkey} for w in cosigners(self.policy)]
        trust = {"log": self.vkey, "witnesses": witnesses, "quorum": browser_quorum(self.policy)}
        return json.dumps({**trust, "index": index})

    def _rules_page(self, snap: _Snapshot, params: dict[str, str]) -> str:
        bundles = []
        rows = self.index.search(kind="rule-bundle", limit=500)
        for row in rows:
            audits = [r for r in self.index.related(row) if r.kind == "rule-audit"]
            bundles.append((row, audits))
        return self._render(
            "rules.html",
            bundles=bundles,
            gate=self._gate(snap, rows),
            findings=self._findings_over_time(snap, bundles),
        )

    def _findings_over_time(
        self, snap: _Snapshot, bundles: list[tuple[DecodedEntry, list[DecodedEntry]]]
    ) -> dict[str, Any]:
        """Bars of the findings the logged audits counted, per rule bundle in log order
        (the newest ``_HISTORY_BARS``; each bundle's newest audit; severities high and
        critical, and all), as an inline SVG the template draws without script."""
        points: list[tuple[str, int, int]] = []
        for row, audits in reversed(bundles[:_HISTORY_BARS]):
            if not audits:
                continue
            predicate = self._row(snap, audits[-1].index).predicate or {}
            counts = predicate.get("counts")
            if not isinstance(counts, dict):
                continue
            values = {k: v for k, v in counts.items() if isinstance(v, int) and v >= 0}
            serious = values.get("high", 0) + values.get("critical", 0)
            points.append((f"{row.product} {row.version}".strip(), serious, sum(values.values())))
        return _bars(points)

    def _releases_page(self, snap: _Snapshot, params: dict[str, str]) -> str:
        rows = self.index.search(kind="release", limit=_LISTED) + self.index.search(
            kind="update", limit=_LISTED
        )
        rows = sorted(rows, key=lambda r: -r.index)[:_LISTED]
        evidence = self.index.evidence(rows)
        releases = [(row, evidence[row.index]) for row in rows]
        gate = self._gate(snap, [row for row, _ in releases])
        vulns = self._vulnerabilities(snap, [r for r in rows if "sbom" in evidence[r.index]])
        return self._render("releases.html", releases=releases, gate=gate, vulns=vulns)

    def _vulnerabilities(self, snap: _Snapshot, rows: list[DecodedEntry]) -> dict[int, Any]:
        """Each release's known vulnerabilities, from the newest logged scan verdict
        (overt.sbom.verdict: ``overt sbom check`` signed by a scanner) of its logged SBOM:
        ``{"severity", "components": [(name, version, severity, ids)], "scan": index}``,
        or ``{"severity": None}`` for an SBOM no scan is logged of (the newest ``_GATED``)."""
        from overt.sbom.verdict import ScanVerdict, sbom_digest

        out: dict[int, Any] = {}
        for row in rows[:_GATED]:
            sboms = [
                r for r in self.index.related(row) if r.kind == "sbom" and r.digest == row.digest
            ]
            verdict: dict[str, Any] = {"severity": None}
            for sbom in reversed(sboms):
                predicate = self._row(snap, sbom.index).predicate
                if predicate is None:
                    continue
                scans = self.index.search(kind="sbom-scan", digest=sbom_digest(predicate), limit=1)
                if not scans:
                    continue
                scan = self._row(snap, scans[0].index).predicate
                try:
                    parsed = ScanVerdict.from_json(scan or {})
                except FormatError:
                    continue  # a malformed verdict says nothing
                components = [
                    (c.name, c.version, c.severity, ", ".join(c.advisories))
                    for c in parsed.vulnerable
                ]
                verdict = {
                    "severity": parsed.max_severity,
                    "components": components,
                    "scan": scans[0].index,
                }
                break
            out[row.index] = verdict
        return out

    def _telemetry_page(self, snap: _Snapshot, params: dict[str, str]) -> str:
        policy_text = None
        path = self.config.telemetry_policy
        if path is not None:
            try:
                policy_text = json.dumps(json.loads(path.read_bytes()), indent=2, sort_keys=True)
            except (OSError, ValueError) as err:
                policy_text = f"(cannot read {path}: {err})"
        revisions = self.index.search(product=_POLICY_PRODUCT, limit=200)
        keys = self.index.search(product=_COLLECTOR_KEY_PRODUCT, limit=200)
        return self._render(
            "telemetry.html",
            policy_text=policy_text,
            revisions=revisions,
            diffs=self._policy_diffs(revisions),
            keys=keys,
            access=self._access_stats(),
        )

    def _policy_diffs(self, revisions: list[DecodedEntry]) -> list[dict[str, Any]]:
        """The logged policy revisions as diffs, newest first: each revision's JSON against
        the one logged before it (files from ``--artifacts``, found by their logged digest)."""
        import difflib

        texts: list[tuple[DecodedEntry, list[str] | None]] = []
        for row in reversed(revisions[:_HISTORY_DIFFS]):  # oldest first
            data = self.artifact(row.digest)
            try:
                doc = json.loads(data) if data is not None else None
                lines = json.dumps(doc, indent=2, sort_keys=True).splitlines() if doc else None
            except ValueError:
                lines = None
            texts.append((row, lines))
        diffs = []
        for (old_row, old), (row, new) in itertools.pairwise(texts):
            entry: dict[str, Any] = {"row": row, "previous": old_row, "lines": None}
            if old is not None and new is not None:
                entry["lines"] = [
                    line
                    for line in difflib.unified_diff(
                        old,
                        new,
                        f"version {old_row.version}",
                        f"version {row.version}",
                        lineterm="",
                    )
                ]
            diffs.append(entry)
        if texts:
            first, lines = texts[0]
            diffs.append({"row": first, "previous": None, "lines": lines})
        return diffs[::-1]

    def _access_stats(self) -> dict[str, Any] | None:
        """Reads of customers' data from a collector's access log, verified against its key
        (overt.telemetry.ledger.read_log_entries); re-read at most every 10 seconds."""
        directory = self.config.access_log
        if directory is None:
            return None
        now = self.config.clock()
        if self._access is not None and now - self._access[0] < 10:
            return self._access[1]
        from overt.telemetry.ledger import read_log_entries

        stats: dict[str, Any] = {"error": None, "customers": {}, "recent": [], "size": 0}
        try:
            _, entries = read_log_entries(str(directory), parse_vkey(read_vkey(directory)))
        except (OvertError, OSError) as err:
            stats["error"] = str(err)
            entries = []
        stats["size"] = len(entries)
        for data in entries:
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            who = str(obj.get("customer", "?"))
            per = stats["customers"].setdefault(who, {"reads": 0, "no_reason": 0, "other": 0})
            if obj.get("kind") == "read":
                per["reads"] += 1
                per["no_reason"] += 0 if obj.get("reason") else 1
            else:
                per["other"] += 1
            stats["recent"].append(
                {k: str(obj.get(k, "")) for k in ("time", "kind", "actor", "customer", "reason")}
            )
        stats["recent"] = stats["recent"][-20:][::-1]
        self._access = (now, stats)
        return stats

    def _disclosure_page(self, snap: _Snapshot, params: dict[str, str]) -> str:
        from overt.disclosure.stats import timeline_stats

        stats = timeline_stats(self.index.commitments)
        advisories = self.index.search(kind="advisory", limit=500)
        products: dict[str, int] = {}
        for row in advisories:
            products[row.product or row.subject] = products.get(row.product or row.subject, 0) + 1
        return self._render(
            "disclosure.html", advisories=advisories, products=products, stats=stats
        )

    def _monitor_checkpoints(self, origin: str) -> list[tuple[float, int]]:
        """(time, size) of each checkpoint of this log the monitor verified since the last
        call (its ``checkpoint`` events, overt.monitor.events): the log's growth from before
        the portal first read it. Lines that are not such events are skipped."""
        path = self.config.monitor_events
        if path is None:
            return []
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                if f.tell() < self._monitor_offset:
                    self._monitor_offset = 0  # a new file
                f.seek(self._monitor_offset)
                data = f.read(16 << 20)
        except OSError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._monitor_offset += len(complete)
        seen = []
        for line in complete.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict) or event.get("event") != "checkpoint":
                continue
            when, size = event.get("time"), event.get("size")
            if (
                event.get("origin") == origin
                and isinstance(when, int | float)
                and isinstance(size, int)
                and size >= 0
            ):
                seen.append((float(when), size))
        return seen

    def _growth(self) -> list[tuple[float, int]]:
        """The log's size over time, at most ``_HISTORY`` points spread over all of it."""
        history = self.index.growth()
        if len(history) > _HISTORY:
            step = (len(history) - 1) / (_HISTORY - 1)
            history = [history[round(i * step)] for i in range(_HISTORY)]
        return history

    def log_entry(self, entry: bytes) -> int:
        """Log ``entry`` in ``config.log`` (a partner's accepted envelope); its index.

        Blocks until the log acknowledges it (witnessed, when the log has witnesses).

        Raises:
            LogError, ConfigError: no log to write to, or it refused the entry.
        """
        from overt.publish.publisher import open_log_writer

        if self.config.log is None:
            raise ConfigError("no log to write to (--log)")
        with open_log_writer(self.config.log, self.config.log_token, 30.0) as log:
            (index,) = log.add_many([entry])
        with self._lock:
            self._snapshot = None  # the next page reads the log again and shows it
        return index

    def _alerts(self) -> list[str]:
        path = self.config.monitor_events
        if path is None:
            return []
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 64 * 1024))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        return lines[-_MAX_ALERTS:][::-1]


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _text(data: bytes, limit: int = 256 * 1024) -> str:
    """Rule text for display (escaped by the template; undecodable bytes replaced)."""
    text = data[:limit].decode("utf-8", "replace")
    return text + ("\n[... cut at 256 KiB]" if len(data) > limit else "")


def _age(seconds: float | None) -> str:
    """``42 s``, ``3 min``, ``5 h``, ``2 d`` (a cosignature's age)."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _chart(history: list[tuple[float, int]], width: int = 600, height: int = 120) -> dict[str, Any]:
    """An SVG polyline of tree size over time, as seen by this portal (no script needed)."""
    if len(history) < 2:
        points = [(0.0, float(height)), (float(width), float(height))]
        top = history[-1][1] if history else 0
        return {
            "points": " ".join(f"{x:.0f},{y:.0f}" for x, y in points),
            "top": top,
            "width": width,
            "height": height,
            "samples": len(history),
        }
    t0, t1 = history[0][0], history[-1][0]
    s0, s1 = history[0][1], history[-1][1]
    span_t, span_s = max(t1 - t0, 1e-9), max(s1 - s0, 1)
    pts = [(width * (t - t0) / span_t, height - height * (s - s0) / span_s) for t, s in history]
    return {
        "points": " ".join(f"{x:.0f},{y:.0f}" for x, y in pts),
        "top": s1,
        "width": width,
        "height": height,
        "samples": len(history),
    }


def _bars(
    points: list[tuple[str, int, int]], width: int = 600, height: int = 120
) -> dict[str, Any]:
    """SVG bars for ``(label, serious, all)`` points: one bar of ``all`` per point, its
    ``serious`` part drawn over it; coordinates only (the template escapes the labels)."""
    top = max((total for _, _, total in points), default=0)
    slot = width / max(len(points), 1)
    bars = []
    for i, (label, serious, total) in enumerate(points):
        scale = height / top if top else 0.0
        h_all, h_serious = total * scale, serious * scale
        bars.append(
            {
                "label": label,
                "serious": serious,
                "total": total,
                "x": f"{i * slot + slot * 0.1:.1f}",
                "w": f"{slot * 0.8:.1f}",
                "y_all": f"{height - h_all:.1f}",
                "h_all": f"{h_all:.1f}",
                "y_serious": f"{height - h_serious:.1f}",
                "h_serious": f"{h_serious:.1f}",
            }
        )
    return {"bars": bars, "top": top, "width": width, "height": height}
