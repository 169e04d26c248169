"""The mirror over HTTP: the submission API's statuses, attacks on it, the monitoring API."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from overt.formats import tiles
from overt.formats.checkpoint import open_checkpoint, parse_checkpoint
from overt.formats.mirror import (
    UploadHeader,
    format_upload_header,
    parse_mirror_info,
    parse_package,
)
from overt.formats.note import parse_note, parse_vkey
from overt.formats.subtree import subtree_consistency_proof
from overt.formats.witness import AddCheckpointRequest, format_add_checkpoint
from overt.log.client import HTTPSource, verify_log
from overt.log.log import Log
from overt.mirror import __all__ as mirror_all
from overt.mirror.client import MirrorClient
from overt.mirror.errors import MirrorConflictError, MirrorVerificationError
from overt.mirror.store import origin_hash
from overt.witness.client import WitnessClient
from overt.witness.errors import UnknownLogError, WitnessConsistencyError, WitnessSignatureError

from .sim import ORIGIN, MirrorUnderTest, grow, make_log, memory_tree, upload_body


class Setup:
    def __init__(self, log: Log, log_dir: Path, mirror: MirrorUnderTest, url: str) -> None:
        self.log, self.log_dir, self.mirror, self.url = log, log_dir, mirror, url

    def add_checkpoint(self, old: int = 0) -> httpx.Response:
        proof = [] if old in (0, self.log.size) else self.log.consistency_proof(old)
        body = format_add_checkpoint(AddCheckpointRequest(old, tuple(proof), self.log.checkpoint()))
        return httpx.post(f"{self.url}/add-checkpoint", content=body)

    def add_entries(self, body: bytes, **headers: str) -> httpx.Response:
        return httpx.post(f"{self.url}/add-entries", content=body, headers=headers)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}/{origin_hash(ORIGIN)}/{path}")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    log = make_log(tmp_path / "log", 300)
    mirror = MirrorUnderTest(tmp_path / "mirror", tmp_path / "log")
    with mirror.serve() as url:
        yield Setup(log, tmp_path / "log", mirror, url)
    log.close()


def test_package_exports() -> None:
    assert "MirrorPusher" in mirror_all and "MirrorError" in mirror_all


def test_push_mirrors_the_log_byte_for_byte_and_cosigns(setup: Setup) -> None:
    with setup.mirror.pusher() as pusher:
        result = pusher.push()
    assert (result.size, result.sent) == (300, 300)
    note = setup.get("checkpoint").content
    assert note == result.note
    log_key = parse_vkey((setup.log_dir / "log.vkey").read_text().strip())
    mirror_key = parse_vkey(setup.mirror.vkey)
    assert open_checkpoint(note, log_key).checkpoint.size == 300
    text = parse_note(note).text
    (sig,) = [s for s in parse_note(note).signatures if s.name == mirror_key.name]
    mirror_key.verify(text, sig.signature)
    for path in ("tile/0/001.p/44", "tile/entries/000", "tile/entries/001.p/44", "tile/1/000.p/1"):
        assert setup.get(path).content == (setup.log_dir / "tiles" / path).read_bytes()
    # A client reads the mirror like any tiled log, and it verifies.
    with HTTPSource(f"{setup.url}/{origin_hash(ORIGIN)}") as source:
        verify_log(source, log_key)
    assert setup.get("min-index").content == b"0\n"


def test_a_down_mirror_is_caught_up_by_the_next_push(setup: Setup) -> None:
    with setup.mirror.pusher() as pusher:
        pusher.push()
        grow(setup.log, 9000)
        result = pusher.push()
    assert result.size == 9300 and 0 < result.sent <= 9000  # only what it missed
    assert parse_checkpoint(parse_note(setup.get("checkpoint").content).text).size == 9300


def test_add_checkpoint_moves_the_pending_checkpoint_only(setup: Setup) -> None:
    reply = setup.add_checkpoint(0)
    assert (reply.status_code, reply.content) == (200, b"")
    assert setup.get("checkpoint").status_code == 404  # nothing cosigned yet
    again = setup.add_checkpoint(0)  # as a witness: the old size must be the pending size
    assert (again.status_code, again.content) == (409, b"300\n")
    assert again.headers["content-type"] == "text/x.tlog.size"
    assert setup.mirror.record().pending_size == 300


def test_add_entries_statuses(setup: Setup) -> None:
    tree = memory_tree(300)
    body = upload_body(ORIGIN, 0, 300, tree)
    # 422: no pending checkpoint yet.
    assert setup.add_entries(body).status_code == 422
    # 404: an origin the mirror does not mirror.
    other = format_upload_header(UploadHeader("other.test/log", 0, 0))
    assert setup.add_entries(other).status_code == 404
    assert setup.add_checkpoint(0).status_code == 200
    # 409: upload_end is not a pending size (mirror-info names the pending size).
    wrong = setup.add_entries(format_upload_header(UploadHeader(ORIGIN, 0, 299)))
    assert wrong.status_code == 409
    assert wrong.headers["content-type"] == "text/x.tlog.mirror-info"
    assert parse_mirror_info(wrong.content).size == 300
    # 409: upload_start past the next entry.
    ahead = setup.add_entries(format_upload_header(UploadHeader(ORIGIN, 10, 300)))
    assert ahead.status_code == 409 and parse_mirror_info(ahead.content).next_entry == 0
    # 400: the header is cut short; or no package arrived.
    assert setup.add_entries(body[:5]).status_code == 400
    assert (
        setup.add_entries(
            body[: len(format_upload_header(UploadHeader(ORIGIN, 0, 300)))]
        ).status_code
        == 400
    )
    # 415: an encoding the spec does not name.
    assert setup.add_entries(body, **{"content-encoding": "br"}).status_code == 415
    # 200 (gzip): everything, and the mirror's cosignature.
    rest = body
    done = setup.add_entries(gzip.compress(rest), **{"content-encoding": "gzip"})
    assert done.status_code == 200, done.text
    assert done.content.startswith("\u2014 mirror.test/m1 ".encode())
    assert setup.mirror.record().mirror_size == 300


def test_prefix_upload_is_202_with_the_next_entry(setup: Setup) -> None:
    tree = memory_tree(300)
    assert setup.add_checkpoint(0).status_code == 200
    body = upload_body(ORIGIN, 0, 300, tree)
    header = format_upload_header(UploadHeader(ORIGIN, 0, 300))
    got = parse_package(body, len(header), 256)
    assert got is not None
    reply = setup.add_entries(body[: got[1]])
    assert reply.status_code == 202
    info = parse_mirror_info(reply.content)
    assert (info.size, info.next_entry) == (300, 256)
    assert setup.get("checkpoint").status_code == 404  # not yet: 256 < 300


def test_malicious_uploader_entries_not_matching_the_tree_are_refused_nothing_committed(
    setup: Setup,
) -> None:
    assert setup.add_checkpoint(0).status_code == 200
    tree = memory_tree(300)
    forged = [b"entry %d" % i for i in range(300)]
    forged[17] = b"backdoored build"
    reply = setup.add_entries(upload_body(ORIGIN, 0, 300, tree, forged))
    assert reply.status_code == 422
    assert "not the log's" in reply.text
    record = setup.mirror.record()
    assert (record.next_entry, record.mirror) == (0, None)
    assert not (setup.mirror.tiles / "tile" / "entries").exists()
    assert setup.get("checkpoint").status_code == 404
    # A forged second package: the first (genuine) one is kept, the forged one is not.
    forged = [b"entry %d" % i for i in range(300)]
    forged[280] = b"backdoored build"
    reply = setup.add_entries(upload_body(ORIGIN, 0, 300, tree, forged))
    assert reply.status_code == 422
    assert setup.mirror.record().next_entry == 256
    assert setup.get("checkpoint").status_code == 404


def test_mirror_asked_to_cosign_beyond_what_it_holds_is_refused(setup: Setup) -> None:
    assert setup.add_checkpoint(0).status_code == 200
    client = MirrorClient(setup.url)
    # No entries sent at all: the mirror holds nothing up to 300.
    with pytest.raises(MirrorConflictError):
        client.add_entries(UploadHeader(ORIGIN, 300, 300), [])
    reply = setup.add_entries(format_upload_header(UploadHeader(ORIGIN, 0, 300)))
    assert reply.status_code == 400
    # Half of them: 202, never 200.
    tree = memory_tree(300)
    body = upload_body(ORIGIN, 0, 300, tree)
    header_len = len(format_upload_header(UploadHeader(ORIGIN, 0, 300)))
    got = parse_package(body, header_len, 256)
    assert got is not None
    assert setup.add_entries(body[: got[1]]).status_code == 202
    with pytest.raises(MirrorConflictError):
        client.add_entries(UploadHeader(ORIGIN, 300, 300), [])
    assert setup.mirror.record().mirror is None
    assert setup.get("checkpoint").status_code == 404
    client.close()


def test_every_single_byte_change_of_an_upload_never_gets_a_cosignature(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 5)
    mirror = MirrorUnderTest(tmp_path / "mirror", tmp_path / "log")
    body = upload_body(ORIGIN, 0, 5, memory_tree(5))
    with mirror.serve() as url, httpx.Client() as http:
        setup = Setup(log, tmp_path / "log", mirror, url)
        assert setup.add_checkpoint(0).status_code == 200
        for i in range(len(body)):
            mutated = body[:i] + bytes((body[i] ^ 0x01,)) + body[i + 1 :]
            reply = http.post(f"{url}/add-entries", content=mutated)
            assert reply.status_code in (400, 404, 409, 422), (i, reply.status_code, reply.text)
        for cut in range(len(body)):
            reply = http.post(f"{url}/add-entries", content=body[:cut])
            assert reply.status_code in (400, 409), (cut, reply.status_code)
        assert mirror.record().mirror is None
        assert http.post(f"{url}/add-entries", content=body).status_code == 200
    log.close()


def test_log_deletes_and_rewrites_old_entries_after_mirroring_mirror_serves_the_originals(
    setup: Setup,
) -> None:
    with setup.mirror.pusher() as pusher:
        pusher.push()
    originals = {
        path: (setup.log_dir / "tiles" / path).read_bytes()
        for path in ("tile/entries/000", "tile/entries/001.p/44", "tile/0/000")
    }
    # The log rewrites its first bundle and deletes the second.
    rewritten = tiles.format_entry_bundle([b"rewritten %d" % i for i in range(256)])
    (setup.log_dir / "tiles" / "tile/entries/000").write_bytes(rewritten)
    (setup.log_dir / "tiles" / "tile/entries/001.p/44").unlink()
    for path, data in originals.items():
        assert setup.get(path).content == data
    shutil.rmtree(setup.log_dir / "tiles" / "tile")
    assert setup.get("tile/entries/000").content == originals["tile/entries/000"]


def test_pruned_bundles_are_not_served_and_the_minimum_index_is(setup: Setup) -> None:
    with setup.mirror.pusher() as pusher:
        pusher.push()
    from overt.mirror.config import load_mirror

    config = load_mirror(setup.mirror.directory)
    with config.open_state() as state:
        state.set_min_index(ORIGIN, 256)
    # (A running server reads its records at start: restart it.)
    with setup.mirror.serve() as url:
        assert httpx.get(f"{url}/{origin_hash(ORIGIN)}/min-index").content == b"256\n"
        assert httpx.get(f"{url}/{origin_hash(ORIGIN)}/tile/entries/000").status_code == 404
        assert httpx.get(f"{url}/{origin_hash(ORIGIN)}/tile/entries/001.p/44").status_code == 200
        assert httpx.get(f"{url}/{origin_hash(ORIGIN)}/tile/0/000").status_code == 200
        with MirrorClient(url) as client:
            assert client.min_index(ORIGIN) == 256


def test_read_endpoints_refuse_what_the_mirror_checkpoint_does_not_cover(setup: Setup) -> None:
    assert setup.get("tile/entries/000").status_code == 404
    assert setup.get("tile/0/000.p/5").status_code == 404
    assert setup.get("nonsense").status_code == 404
    assert httpx.get(f"{setup.url}/{'0' * 64}/checkpoint").status_code == 404
    assert httpx.get(f"{setup.url}/add-entries").status_code == 405
    assert httpx.post(f"{setup.url}/logs").status_code == 405
    logs = httpx.get(f"{setup.url}/logs").text
    assert logs == f"{origin_hash(ORIGIN)} {ORIGIN}\n"


def test_client_maps_422_and_409(setup: Setup) -> None:
    client = MirrorClient(setup.url)
    with pytest.raises(MirrorVerificationError):
        client.add_entries(UploadHeader(ORIGIN, 0, 0), [])
    assert setup.add_checkpoint(0).status_code == 200
    with pytest.raises(MirrorConflictError) as err:
        client.add_entries(UploadHeader(ORIGIN, 0, 7), [])
    assert err.value.info.size == 300
    client.close()


def _slowly(body: bytes) -> Iterator[bytes]:
    yield body[: len(body) // 2]
    time.sleep(0.3)
    yield body[len(body) // 2 :]


@pytest.mark.parametrize("forged", [False, True])
def test_a_pipelined_request_waits_for_the_one_in_progress(setup: Setup, forged: bool) -> None:
    """The second request starts where the first will end: it waits for it (200), or,
    if the first turns out not to be the log's, is refused (409) and nothing past the
    first's genuine entries is stored or cosigned."""
    assert setup.add_checkpoint(0).status_code == 200
    tree = memory_tree(300)
    items = [b"entry %d" % i for i in range(300)]
    if forged:
        items[100] = b"backdoored build"
    whole = upload_body(ORIGIN, 0, 300, tree, items)
    header_len = len(format_upload_header(UploadHeader(ORIGIN, 0, 300)))
    got = parse_package(whole, header_len, 256)
    assert got is not None
    first = whole[: got[1]]  # [0, 256) as a prefix of [0, 300)
    second = upload_body(ORIGIN, 256, 300, tree)
    replies: dict[str, httpx.Response] = {}
    thread = threading.Thread(
        target=lambda: replies.__setitem__(
            "first", httpx.post(f"{setup.url}/add-entries", content=_slowly(first))
        )
    )
    thread.start()
    time.sleep(0.1)
    replies["second"] = setup.add_entries(second)
    thread.join(10)
    record = setup.mirror.record()
    if forged:
        assert replies["first"].status_code == 422
        assert replies["second"].status_code == 409
        assert parse_mirror_info(replies["second"].content).next_entry == 0
        assert (record.next_entry, record.mirror) == (0, None)
    else:
        assert replies["first"].status_code == 202
        assert replies["second"].status_code == 200
        assert record.mirror_size == 300


def test_an_ml_dsa_mirror_signs_subtrees_of_checkpoints_it_cosigned_only(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 600)
    mirror = MirrorUnderTest(tmp_path / "mirror", tmp_path / "log", key_type="ml-dsa-44")
    key = parse_vkey(mirror.vkey)
    tree = memory_tree(600)
    proof = subtree_consistency_proof(256, 512, 600, tree.subtree)
    with mirror.serve() as url:
        with mirror.pusher() as pusher:
            cosigned = pusher.push().note
        with WitnessClient(url, verifier=key) as client:
            lines = client.sign_subtree(256, 512, tree.subtree(256, 512), proof, cosigned)
            assert lines.startswith("\u2014 mirror.test/m1 ".encode())
            # The log's checkpoint alone was never cosigned by this mirror: refused.
            with pytest.raises(WitnessSignatureError):
                client.sign_subtree(256, 512, tree.subtree(256, 512), proof, log.checkpoint())
            with pytest.raises(WitnessConsistencyError):
                client.sign_subtree(256, 512, tree.subtree(0, 256), proof, cosigned)
    log.close()


def test_an_ed25519_mirror_does_not_offer_sign_subtree(setup: Setup) -> None:
    with setup.mirror.pusher() as pusher:
        cosigned = pusher.push().note
    tree = memory_tree(300)
    proof = subtree_consistency_proof(0, 256, 300, tree.subtree)
    with WitnessClient(setup.url) as client, pytest.raises(UnknownLogError):
        client.sign_subtree(0, 256, tree.subtree(0, 256), proof, cosigned)


def test_a_checkpoint_below_what_is_stored_is_served_with_every_tile_of_its_size(
    tmp_path: Path,
) -> None:
    """Another upload stored past a pending size in one go (no partial tiles at it): when that
    size is cosigned, the mirror lays out its partial tiles, so clients of it find them."""
    from overt.log.fs import TileStore
    from overt.mirror.state import MirrorState
    from overt.mirror.store import MirroredTiles

    log = make_log(tmp_path / "log", 700)
    mirror = MirrorUnderTest(tmp_path / "mirror", tmp_path / "log")
    with mirror.serve() as url:  # adds the log's record
        setup = Setup(log, tmp_path / "log", mirror, url)
        assert setup.add_checkpoint(0).status_code == 200
    grow(log, 300)
    from overt.formats import merkle

    items = [b"entry %d" % i for i in range(1000)]
    copy = MirroredTiles(TileStore(mirror.tiles), 0)
    copy.append(0, items, [merkle.leaf_hash(e) for e in items])  # as another upload would
    with MirrorState(f"sqlite:///{mirror.directory.resolve() / 'state.db'}") as state:
        state.set_next_entry(ORIGIN, 1000)
    assert not (mirror.tiles / "tile/0/002.p/188").exists()
    with mirror.serve() as url:
        setup = Setup(log, tmp_path / "log", mirror, url)
        reply = setup.add_entries(format_upload_header(UploadHeader(ORIGIN, 700, 700)))
        assert reply.status_code == 200, reply.text
        for path in ("tile/0/002.p/188", "tile/1/000.p/2", "tile/entries/002.p/188"):
            got = setup.get(path)
            assert got.status_code == 200, path
        log_view = memory_tree(700)
        assert setup.get("tile/0/002.p/188").content == b"".join(
            log_view.subtree(i, i + 1) for i in range(512, 700)
        )
        with HTTPSource(f"{url}/{origin_hash(ORIGIN)}") as source:
            verify_log(source, parse_vkey((tmp_path / "log" / "log.vkey").read_text().strip()))
    log.close()


def test_a_flood_of_uploads_that_never_finish_a_package_is_refused_503_beyond_the_cap(
    tmp_path: Path,
) -> None:
    """Anyone may open add-entries requests for a mirrored log (its checkpoint is public),
    and a package can only be checked once it has all arrived (up to ~17 MB): the requests
    read at once are capped, so the junk a mirror buffers is too. The ones beyond the cap
    are 503 before their body is read; the mirror serves honest pushes once they end."""
    from overt._asgi import Message
    from overt.mirror.config import load_mirror
    from overt.mirror.server import MAX_UPLOADS, MirrorApp
    from overt.witness.config import read_logs

    assert MAX_UPLOADS == 16
    log = make_log(tmp_path / "log", 300)
    mirror = MirrorUnderTest(tmp_path / "mirror", tmp_path / "log")
    config = load_mirror(mirror.directory)
    checkpoint = format_add_checkpoint(AddCheckpointRequest(0, (), log.checkpoint()))
    honest = upload_body(ORIGIN, 0, 300, memory_tree(300))
    header = format_upload_header(UploadHeader(ORIGIN, 0, 300))
    # 256 entries of 65,535 bytes declared; the first few sent, then the sender stalls.
    junk = header + (b"\xff\xff" + b"j" * 65535) * 8

    async def call(app: MirrorApp, path: str, receive: Any) -> list[Message]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": path, "headers": []}
        await app(scope, receive, send)
        return sent

    def whole(body: bytes) -> Any:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        return receive

    async def flood(app: MirrorApp) -> None:
        (start, _) = await call(app, "/add-checkpoint", whole(checkpoint))
        assert start["status"] == 200
        release = asyncio.Event()
        reads = [0] * (MAX_UPLOADS + 1)

        def stalling(i: int) -> Any:
            async def receive() -> dict[str, Any]:
                reads[i] += 1
                if reads[i] == 1:
                    return {"type": "http.request", "body": junk, "more_body": True}
                await release.wait()
                return {"type": "http.request", "body": b"", "more_body": False}

            return receive

        stalled = [
            asyncio.create_task(call(app, "/add-entries", stalling(i))) for i in range(MAX_UPLOADS)
        ]
        for _ in range(1000):
            if all(n >= 2 for n in reads[:MAX_UPLOADS]):
                break
            await asyncio.sleep(0.01)
        assert all(n >= 2 for n in reads[:MAX_UPLOADS]), reads
        try:
            refused = await asyncio.wait_for(call(app, "/add-entries", stalling(MAX_UPLOADS)), 5)
        except TimeoutError:
            pytest.fail(f"request {MAX_UPLOADS + 1} was read and held, not refused")
        assert refused[0]["status"] == 503
        assert reads[MAX_UPLOADS] == 0  # refused before its body was read
        assert (b"connection", b"close") in refused[0]["headers"]
        release.set()
        for task in stalled:
            assert (await task)[0]["status"] == 400  # cut inside the first package
        done = await call(app, "/add-entries", whole(honest))
        assert done[0]["status"] == 200, done

    with config.open_state() as state:
        app = MirrorApp(state, read_logs(mirror.directory), config.signer, config.tiles_for)
        try:
            asyncio.run(flood(app))
        finally:
            app.close()
    log.close()
