"""Benchmark of issue 10's source snapshots: hashing a large tree, warm cache.

- **snapshot, plain directory**: 20,000 files of about 10 KB (200 MB; ``--quick``: 2,000
  files, 20 MB), every file read and SHA-256 hashed in threads; the page cache is warm
  (one untimed run first), so this measures hashing and per-file overhead, not the disk.
- **snapshot, git checkout**: the same tree committed; each file's git blob id and SHA-256
  are computed from the working tree and checked against ``git ls-tree``.

- **review coverage**: :func:`overt.source.review.coverage` of the newest of 100 snapshots
  of 10,000 files each (1% of the files change from one to the next), over 100 reviews
  by two reviewers, each reading a whole snapshot (1,000,000 reviewed files in all), at
  least two reviewers per file. The reviews are already verified (``verify_review``, run
  once per bundle when it is read), so this is the coverage computation itself.

- **gate admit with source requirements**: ``UpdateGate.admit`` (in-memory state) of a
  1 MiB release whose bundle carries its provenance, its source snapshot, two reviews
  (each listing every file) and two rebuild summaries; the policy asks for 2 reviewers
  covering 100% of the files, no open high finding, 2 rebuilders, and 2-of-3 witnesses.
  Median. The target is for a 100-file source; a 1,000-file one is shown beside it: the
  cost grows with the files every review lists (each is parsed strictly).
  Where the time goes (100 files, this machine, best runs): 9 Ed25519 checks (the release,
  the checkpoint's log key and 2 witnesses, the provenance, 2 reviews, 2 summaries) about
  1.0 ms; the bundle's JSON about 0.45 ms; the 5 statements 0.25 ms; the snapshot 0.17 ms;
  the reviews' files 0.25 ms; coverage 0.08 ms. Each envelope is parsed once (the bundle
  keeps it beside its bytes), the snapshot hashed once, and manifests and review file lists
  are checked with one match over all their entries.

    python -m bench source [--quick]
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import Result

TARGET_S = 2.0
COVERAGE_TARGET_S = 1.0


def _tree(root: Path, files: int, size: int) -> None:
    block = os.urandom(size)
    for i in range(files):
        d = root / f"d{i % 200:03d}"
        d.mkdir(exist_ok=True)
        # Distinct contents (a counter up front), so no blob is hashed only once for many files.
        (d / f"f{i:05d}.py").write_bytes(i.to_bytes(4, "big") + block)


def _best(fn: object, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def run(quick: bool) -> list[Result]:
    from overt.source.snapshot import snapshot_tree

    files = 2_000 if quick else 20_000
    size = 10_000
    out: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        root.mkdir()
        _tree(root, files, size)
        snapshot_tree(root)  # warm the page cache
        t = _best(lambda: snapshot_tree(root))
        mb = files * size / 1e6
        out.append(
            Result(
                f"source snapshot, directory of {files:,} files ({mb:.0f} MB)",
                t,
                "s",
                f"<= {TARGET_S:g}",
                t <= TARGET_S,
                note=f"{mb / t:.0f} MB/s warm",
            )
        )
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "b",
            "GIT_AUTHOR_EMAIL": "b@example.com",
            "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@example.com",
        }
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
            subprocess.run(["git", "-C", str(root), *args], check=True, env=env)
        snapshot_tree(root)
        t = _best(lambda: snapshot_tree(root))
        git_t = t
        out.append(
            Result(
                f"source snapshot, git checkout of {files:,} files ({mb:.0f} MB)",
                git_t,
                "s",
                f"<= {TARGET_S:g}",
                git_t <= TARGET_S,
                note=f"{mb / git_t:.0f} MB/s warm",
            )
        )
    out.append(_coverage(quick))
    out.append(_gate(quick, 100))
    out.append(_gate(quick, 1000))
    return out


GATE_TARGET_MS = 3.0


def _median_cpu_ms(fn: Callable[[], object], n: int) -> float:
    """Median CPU time of ``fn`` in this thread (the machine is shared: wall time would
    count other processes' turns), in ms."""
    import statistics

    for _ in range(max(3, n // 20)):
        fn()
    times = []
    for _ in range(n):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return statistics.median(times) * 1000


def _gate(quick: bool, files: int) -> Result:
    import hashlib
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bench.bench_gate import _cosigner, _policy, _witnesses
    from overt.formats.checkpoint import Checkpoint, sign_checkpoint
    from overt.formats.merkle import MemoryTree, leaf_hash
    from overt.formats.note import Ed25519Signer
    from overt.formats.proof import TlogProof
    from overt.formats.source_review import REVIEW_PREDICATE
    from overt.formats.source_snapshot import FileEntry, Snapshot, format_snapshot
    from overt.formats.statement import Release
    from overt.formats.vsa import SOURCE_SNAPSHOT_URI, VSA_PREDICATE, Vsa
    from overt.gate import UpdateGate, parse_client_policy
    from overt.publish.bundle import Bundle, LoggedEntry, format_bundle
    from overt.publish.keys import generate_publisher_key
    from overt.publish.publisher import Publication, make_entry
    from overt.source.publishing import provenance_entry
    from overt.source.review import make_review

    artifact = bytes(range(256)) * 4096
    sha = hashlib.sha256(artifact).hexdigest()
    snapshot = Snapshot.of(
        FileEntry("100644", hashlib.sha256(b"%d" % i).hexdigest(), f"src/m{i:03d}.py")
        for i in range(files)
    )
    text = format_snapshot(snapshot)
    _, publisher = generate_publisher_key("vendor.example/release")
    reviewers = [generate_publisher_key(f"rev{i}.example")[1] for i in range(2)]
    rebuilders = [generate_publisher_key(f"reb{i}.example")[1] for i in range(2)]
    log = Ed25519Signer("log.example/overt", Ed25519PrivateKey.generate())
    witnesses = _witnesses(3)
    tree = MemoryTree()
    for i in range(1000):
        tree.append(leaf_hash(b"entry %d" % i))
    entry = make_entry(
        publisher, Publication("app.zip", sha, Release("agent", "1.0.0", "stable", "any"))
    )
    atts = [provenance_entry(publisher, "app.zip", sha, text, "https://ci.example")]
    for r in reviewers:
        review = make_review(snapshot, r.key.vkey, ["*"], "pass", "high")
        atts.append(
            make_entry(
                r, Publication("source", snapshot.digest, (REVIEW_PREDICATE, review.to_json()))
            )
        )
    for r in rebuilders:
        vsa = Vsa(r.key.name, "2026-11-26T12:00:00Z", "app.zip",
                  ((SOURCE_SNAPSHOT_URI, snapshot.digest),), True, sha)  # fmt: skip
        atts.append(make_entry(r, Publication("app.zip", sha, (VSA_PREDICATE, vsa.to_json()))))
    index = tree.append(leaf_hash(entry))
    indices = [tree.append(leaf_hash(a)) for a in atts]
    note = sign_checkpoint(Checkpoint(log.name, tree.size, tree.root()), log)
    note = _cosigner(witnesses[:2])(note)
    logged = tuple(
        LoggedEntry(a, i, tuple(tree.inclusion_proof(i)))
        for a, i in zip(atts, indices, strict=True)
    )
    bundle = format_bundle(
        Bundle(
            entry,
            TlogProof(index, tuple(tree.inclusion_proof(index)), note),
            (),
            logged,
            source=text,
        )
    )
    doc = json.loads(_policy(log.vkey, witnesses, publisher.key.vkey))
    doc["source"] = {
        "reviewers": [r.key.vkey for r in reviewers], "min_reviewers": 2, "min_coverage": 100,
        "max_open_severity": "high",
        "rebuilders": [r.key.vkey for r in rebuilders], "min_rebuilders": 2,
    }  # fmt: skip
    policy = parse_client_policy(json.dumps(doc).encode())
    with UpdateGate(policy) as gate:
        gate.admit(artifact, bundle)
        ms = _median_cpu_ms(lambda: gate.admit(artifact, bundle), 50 if quick else 500)
    small = files <= 100  # the target is for a small project; larger ones are shown beside it
    return Result(
        f"admit with source requirements, {files:,}-file source"
        " (2 reviewers, 2 rebuilders, 2-of-3 witnesses)",
        ms,
        "ms",
        f"<= {GATE_TARGET_MS:g}" if small else "",
        ms <= GATE_TARGET_MS if small else None,
        note="CPU time; 1 MiB release, in-memory state; every review lists every file",
    )


def _coverage(quick: bool) -> Result:
    import hashlib

    from overt.formats.source_review import ReviewedFile, ReviewPredicate
    from overt.formats.source_snapshot import FileEntry, Snapshot
    from overt.source.review import Review, coverage

    versions, files = (10, 10_000) if quick else (100, 10_000)
    digests = [hashlib.sha256(b"%d" % i).hexdigest() for i in range(files)]
    paths = [f"pkg/m{i // 100:03d}/f{i:05d}.py" for i in range(files)]
    reviews = []
    snap = None
    for v in range(versions):
        for i in range(v * 100, v * 100 + 100):  # 1% of the files change per version
            digests[i % files] = hashlib.sha256(b"v%d-%d" % (v, i)).hexdigest()
        snap = Snapshot.of(FileEntry("100644", d, p) for p, d in zip(paths, digests, strict=True))
        reviewed = tuple(ReviewedFile(f.path, f.sha256) for f in snap.files)
        predicate = ReviewPredicate("r", "pass", "high", reviewed)
        reviews.append(Review(f"reviewer-{v % 2}", "r", snap.digest, predicate, v))
    assert snap is not None
    newest = snap
    t = _best(lambda: coverage(newest, reviews, 2))
    share = coverage(newest, reviews, 2).file_share
    return Result(
        f"review coverage over {versions} snapshots of {files:,} files",
        t,
        "s",
        f"<= {COVERAGE_TARGET_S:g}",
        t <= COVERAGE_TARGET_S,
        note=f"{versions * files:,} reviewed files, 2 reviewers per file: {share:.0f}% covered",
    )
