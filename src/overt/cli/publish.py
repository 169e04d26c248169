"""``overt publish``, ``overt verify`` and ``overt publisher``: signed, logged publications.

- ``overt publish FILE --log URL_OR_DIR --key KEY --kind update --product P
  --version V [--channel C]`` logs the signed statement and writes ``FILE.overt``.
- ``overt verify FILE --bundle FILE.overt --policy POLICY [--state DIR]`` runs
  every check of :mod:`overt.gate.verify`; exit 0 only if all hold, else one
  line naming the first failing check (exit 1).
- ``overt publisher keygen|rotate|revoke`` manage publisher keys and their
  logged key-set chain.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from overt.cli._util import read_input
from overt.errors import ConfigError, FormatError
from overt.formats import merkle, tiles
from overt.formats.cosignature import CosignatureSigner
from overt.formats.note import parse_note, parse_skey, sign_note
from overt.formats.statement import Predicate, Release, RuleBundle, Update
from overt.gate.policy import load_client_policy
from overt.gate.updater import UpdateGate
from overt.publish.chain import append_chain, create_chain, read_chain
from overt.publish.keys import (
    generate_publisher_key,
    load_publisher_key,
    load_publisher_signer,
    write_key_files,
)
from overt.publish.keyset import make_keyset_entry
from overt.publish.publisher import Publication, open_log_writer, publish, write_bundle


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("publish", help="sign and log a release, update or rule bundle")
    p.add_argument("file", metavar="FILE", type=Path, help="the artifact to publish")
    p.add_argument("--log", required=True, metavar="URL_OR_DIR", help="log server URL or directory")
    p.add_argument("--key", required=True, type=Path, help="publisher private key file")
    p.add_argument("--kind", required=True, choices=["release", "update", "rule-bundle"])
    p.add_argument("--product", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--channel", default="stable")
    p.add_argument("--platform", default="any", help="release: target platform")
    p.add_argument("--min-previous", metavar="VERSION", help="update: lowest version it updates")
    p.add_argument("--engine", default="yara-x", help="rule-bundle: scanning engine")
    p.add_argument("--rule-count", type=int, default=0, help="rule-bundle: number of rules")
    p.add_argument("--name", help="subject name (default: the file's name)")
    p.add_argument("--chain", type=Path, help="key-set chain file (default KEY.chain if present)")
    p.add_argument(
        "--attest", type=Path, action="append", default=[], metavar="ENVELOPE",
        help="a signed attestation to log beside it (e.g. an auditor's sign-off); repeatable",
    )  # fmt: skip
    p.add_argument(
        "--consistency-from", type=int, action="append", default=[], metavar="SIZE",
        help="embed a consistency proof from this tree size; repeatable",
    )  # fmt: skip
    p.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
    p.add_argument("--out", type=Path, help="bundle path (default FILE.overt)")
    p.add_argument(
        "--unsafe-local-witness", type=Path, action="append", default=[], metavar="SKEY",
        help="demos and tests only: cosign the checkpoint with this local witness key"
        " (a real log collects cosignatures from independent witnesses)",
    )  # fmt: skip
    p.set_defaults(func=_publish)

    v = sub.add_parser("verify", help="check an artifact against its .overt bundle and a policy")
    v.add_argument("file", metavar="FILE", help="the artifact (or - for stdin)")
    v.add_argument("--bundle", required=True, metavar="FILE.overt")
    v.add_argument("--policy", required=True, type=Path, help="client policy (JSON)")
    v.add_argument("--state", type=Path, metavar="DIR", help="client state: rollback, split view")
    v.add_argument(
        "--log", metavar="URL_OR_DIR",
        help="where to fetch consistency proofs (default: the witness policy's log URL)",
    )  # fmt: skip
    v.set_defaults(func=_verify)

    k = sub.add_parser("publisher", help="manage publisher keys and their key-set chain")
    cmds = k.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(k))
    cmds.required = True
    g = cmds.add_parser("keygen", help="create a publisher key (KEY, KEY.pub, KEY.chain)")
    g.add_argument("key", type=Path, metavar="KEY")
    g.add_argument("--name", required=True, help="key name, e.g. vendor.example/release")
    g.set_defaults(func=_keygen)
    for name, helptext in (
        ("rotate", "log a new key set: add and remove keys"),
        ("revoke", "log a new key set revoking keys for good"),
    ):
        r = cmds.add_parser(name, help=helptext)
        r.add_argument("--key", required=True, type=Path, help="a current private key (signs)")
        r.add_argument("--chain", required=True, type=Path, help="the key-set chain file")
        r.add_argument("--log", required=True, metavar="URL_OR_DIR")
        r.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
        if name == "rotate":
            r.add_argument("--add", action="append", default=[], metavar="PUB", help="key to add")
            r.add_argument("--remove", action="append", default=[], metavar="PUB")
        r.add_argument(
            "--revoke", action="append", default=[], metavar="PUB", required=name == "revoke"
        )
        r.add_argument("--threshold", type=int, default=1, help="signatures for the next set")
        r.set_defaults(func=_rotate)


def _predicate(args: argparse.Namespace) -> Predicate:
    if args.kind == "release":
        return Release(args.product, args.version, args.channel, args.platform)
    if args.kind == "update":
        return Update(args.product, args.version, args.channel, args.min_previous)
    return RuleBundle(args.product, args.channel, args.engine, args.version, args.rule_count)


def _publish(args: argparse.Namespace) -> int:
    signer = load_publisher_signer(args.key)
    artifact = read_input(str(args.file))
    chain_path = args.chain or args.key.with_name(args.key.name + ".chain")
    keysets: Sequence[bytes] = ()
    if args.chain is not None or chain_path.is_file():
        state, keysets = read_chain(chain_path)
        if signer.keyid not in state.trusted():
            raise ConfigError(
                f"{args.key} is not a key of the current key set {state.sequence} in {chain_path}"
            )
    attestations = [read_input(str(p)).strip() for p in args.attest]
    item = Publication(
        args.name or args.file.name, hashlib.sha256(artifact).hexdigest(), _predicate(args)
    )
    with open_log_writer(args.log, args.token) as log:
        (bundle,) = publish(
            log,
            signer,
            [item],
            keysets=keysets,
            attestations=attestations,
            consistency_from=args.consistency_from,
            cosign=_local_witnesses(args.unsafe_local_witness),
        )
    out = args.out or args.file.with_name(args.file.name + ".overt")
    write_bundle(out, bundle)
    print(f"published {item.name} as entry {bundle.proof.index}; bundle written to {out}")
    return 0


def _local_witnesses(paths: Sequence[Path]) -> Callable[[bytes], bytes] | None:
    if not paths:
        return None
    signers = []
    for path in paths:
        signer = parse_skey(read_input(str(path)).decode("utf-8", "replace").strip())
        if not isinstance(signer, CosignatureSigner):
            raise ConfigError(f"{path} is not a cosignature/v1 witness key")
        signers.append(signer)

    def cosign(note: bytes) -> bytes:
        parsed = parse_note(note)
        return sign_note(parsed.text, signers, existing=parsed)

    return cosign


def _fetcher(url_or_dir: str) -> object:
    from overt.log.client import open_source, tile_reader

    source = open_source(url_or_dir)
    reader = tile_reader(source)

    def fetch(old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(old, new, tiles.subtree_from_tiles(reader, new))

    return fetch


def _verify(args: argparse.Namespace) -> int:
    policy = load_client_policy(args.policy)
    artifact = read_input(args.file)
    bundle = read_input(args.bundle)
    log = args.log or next((lg.url for lg in policy.all_logs() if lg.url), None)
    fetch = _fetcher(log) if (log and args.state) else None
    with UpdateGate(policy, args.state, fetch_consistency=fetch) as gate:  # type: ignore[arg-type]
        pub = gate.admit(artifact, bundle)
    cp = pub.checkpoint.checkpoint
    print(
        f"ok: {pub.kind} {pub.product} {pub.version} ({pub.channel}) sha256 {pub.sha256[:16]}..."
        f" logged at index {pub.index} of {cp.origin} (size {cp.size}),"
        f" cosigned by {', '.join(sorted(pub.checkpoint.cosigned)) or 'no witness'}"
    )
    return 0


def _keygen(args: argparse.Namespace) -> int:
    skey, signer = generate_publisher_key(args.name)
    pub = write_key_files(args.key, skey, signer)
    create_chain(args.key.with_name(args.key.name + ".chain"), signer.key)
    print(signer.key.vkey)
    print(f"private key {args.key} (0600), public key {pub}, chain {args.key}.chain")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    signer = load_publisher_signer(args.key)
    state, _ = read_chain(args.chain)
    revoke = [load_publisher_key(p) for p in args.revoke]
    gone = {k.keyid for k in revoke}
    gone |= {load_publisher_key(p).keyid for p in getattr(args, "remove", [])}
    keys = [k for k in state.keys if k.keyid not in gone]
    for p in getattr(args, "add", []):
        new = load_publisher_key(p)
        if new.keyid not in {k.keyid for k in keys}:
            keys.append(new)
    if not keys:
        raise FormatError("key set", "no key would remain valid")
    entry = make_keyset_entry(state, [signer], keys, revoke, args.threshold)
    with open_log_writer(args.log, args.token) as log:
        (index,) = log.add_many([entry])
    append_chain(args.chain, entry)
    print(f"key set {state.sequence + 1} logged as entry {index}: {len(keys)} key(s) valid")
    return 0
