"""``overt publish``, ``overt verify`` and ``overt publisher``: signed, logged publications.

- ``overt publish FILE --log URL_OR_DIR --key KEY --kind update --product P
  --version V [--channel C]`` logs the signed statement and writes ``FILE.overt``.
- ``overt verify FILE --bundle FILE.overt --policy POLICY [--state DIR]`` runs
  every check of :mod:`overt.gate.verify`; exit 0 only if all hold, else one
  line naming the first failing check (exit 1).
- ``overt publisher keygen|rotate|keyset|revoke`` manage publisher keys and
  their logged key-set chain. ``keygen`` starts a publisher identity (a new
  chain); ``rotate OLD NEW --chain CHAIN`` replaces a key by extending the
  existing chain. ``publish`` refuses a key whose chain is not the chain the log
  holds for it (see :func:`overt.publish.keyset.check_chain_against_log`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from overt.cli._util import read_input
from overt.errors import ConfigError, FormatError

if TYPE_CHECKING:
    from overt.formats.checkpoint import Checkpoint
    from overt.formats.policy import Policy
    from overt.formats.statement import Predicate
    from overt.gate.verify import MirrorFetcher
    from overt.publish.keys import PublisherKey, PublisherSigner


#: ``overt.publish.keys.PUBLISHER_KEY_TYPES``, spelled here so that building the parser
#: does not import the crypto (tests/gate/test_pq_publisher_keys.py checks they agree).
PUBLISHER_KEY_TYPES = ("ed25519", "ml-dsa-44")

#: Top-level commands this module registers, with their one-line help.
COMMANDS = {
    "publish": "sign and log a release, update or rule bundle",
    "verify": "check an artifact against its .overt bundle and a policy",
    "publisher": "manage publisher keys and their key-set chain",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("publish", help=COMMANDS["publish"])
    p.add_argument("file", metavar="FILE", type=Path, help="the artifact to publish")
    p.add_argument("--log", required=True, metavar="URL_OR_DIR", help="log server URL or directory")
    p.add_argument("--key", required=True, type=Path, help="publisher private key file")
    p.add_argument(
        "--also-key", type=Path, action="append", default=[], metavar="KEY",
        help="another current key that signs too (a hybrid key set: one Ed25519 and one"
        " ML-DSA-44 key); repeatable",
    )  # fmt: skip
    p.add_argument(
        "--kind", required=True, choices=["release", "update", "rule-bundle"], help="what it is"
    )
    p.add_argument("--product", required=True, help="product name, as endpoints pin it")
    p.add_argument("--version", required=True, help="version, e.g. 1.2.0 or 1.2.0-rc.1")
    p.add_argument("--channel", default="stable", help="release channel")
    p.add_argument("--platform", default="any", help="release: target platform")
    p.add_argument("--min-previous", metavar="VERSION", help="update: lowest version it updates")
    p.add_argument("--engine", default="yara-x", help="rule-bundle: scanning engine")
    p.add_argument("--rule-count", type=int, default=0, help="rule-bundle: number of rules")
    p.add_argument("--name", help="subject name (default: the file's name)")
    p.add_argument("--chain", type=Path, help="key-set chain file (default KEY.chain if present)")
    p.add_argument(
        "--keyset-log", metavar="URL_OR_DIR",
        help="the publisher's key-set log: the chain is made its entries and its freshly"
        " cosigned checkpoint goes in the bundle (for policies with keyset_log)",
    )  # fmt: skip
    p.add_argument(
        "--attest", type=Path, action="append", default=[], metavar="ENVELOPE",
        help="a signed attestation to log beside it (e.g. an auditor's sign-off); repeatable",
    )  # fmt: skip
    p.add_argument(
        "--consistency-from", type=_size, action="append", default=[], metavar="SIZE",
        help="embed a consistency proof from this tree size; repeatable",
    )  # fmt: skip
    p.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
    p.add_argument(
        "--timeout", type=_seconds, default=30.0, metavar="SECONDS",
        help="how long a log server may take to publish a witnessed checkpoint",
    )  # fmt: skip
    p.add_argument(
        "--source", type=Path, metavar="SNAPSHOT",
        help="the source snapshot it was built from (overt source snapshot): logs SLSA"
        " provenance beside it and carries the snapshot in the bundle",
    )  # fmt: skip
    p.add_argument(
        "--builder-id", default="https://overt.dev/builder/local", metavar="URI",
        help="with --source: the builder's id in the provenance",
    )  # fmt: skip
    p.add_argument(
        "--wait-mirrors", type=Path, metavar="POLICY",
        help="wait (at most --timeout) until the log's checkpoint carries this tlog-policy's"
        " mirror quorum for the new entries, so offline endpoints can check it (a log"
        " directory pushes to the policy's mirror URLs itself)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="bundle path (default FILE.overt)")
    p.add_argument(
        "--unsafe-local-witness", type=Path, action="append", default=[], metavar="SKEY",
        help="demos and tests only: cosign the checkpoint with this local witness key"
        " (a real log collects cosignatures from independent witnesses)",
    )  # fmt: skip
    p.set_defaults(func=_publish)

    v = sub.add_parser("verify", help=COMMANDS["verify"])
    v.add_argument("file", metavar="FILE", help="the artifact (or - for stdin)")
    v.add_argument("--bundle", required=True, metavar="FILE.overt", help="the artifact's bundle")
    v.add_argument("--policy", required=True, type=Path, help="client policy (JSON)")
    v.add_argument("--state", type=Path, metavar="DIR", help="client state: rollback, split view")
    v.add_argument(
        "--log", metavar="URL_OR_DIR",
        help="where to fetch consistency proofs (default: the witness policy's log URL)",
    )  # fmt: skip
    v.add_argument(
        "--subtree-proof", metavar="FILE",
        help="the entry's subtree proof (overt log proof --subtree), used in place of the"
        " bundle's (with a keyset_log in the policy: inclusion by the witnessed subtree)",
    )  # fmt: skip
    v.add_argument(
        "--keyset-checkpoint", metavar="FILE",
        help="a newer cosigned checkpoint of the publisher's key-set log than the bundle's"
        " (fetched once for every bundle: an old bundle with a subtree proof stays admissible)",
    )  # fmt: skip
    v.add_argument(
        "--max-age", type=_seconds, metavar="SECONDS",
        help="require the witness quorum's cosignatures this recent (tightens the policy's"
        " max_checkpoint_age)",
    )  # fmt: skip
    v.set_defaults(func=_verify)

    k = sub.add_parser("publisher", help=COMMANDS["publisher"])
    cmds = k.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(k))
    cmds.required = True
    g = cmds.add_parser(
        "keygen",
        help="start a publisher identity: a key (KEY, KEY.pub) and its chain (KEY.chain)",
        description="Create a publisher key and the key-set chain that starts with it; clients"
        " pin KEY.pub. To replace the key of an existing publisher, use `overt publisher"
        " rotate` instead: a second chain would make bundles fresh endpoints refuse.",
    )
    g.add_argument("key", type=Path, metavar="KEY", help="private key file to create")
    g.add_argument("--name", required=True, help="key name, e.g. vendor.example/release")
    g.add_argument(
        "--key-type", choices=PUBLISHER_KEY_TYPES, default=PUBLISHER_KEY_TYPES[0],
        help="signature algorithm (ml-dsa-44: post-quantum; endpoints before it refuse it)",
    )  # fmt: skip
    g.add_argument(
        "--new-publisher",
        action="store_true",
        help="start a second publisher identity beside an existing chain in KEY's folder",
    )
    g.set_defaults(func=_keygen)

    r = cmds.add_parser(
        "rotate",
        help="replace a publisher key: log a key set with NEW instead of OLD",
        description="Log the next key set of CHAIN: the current keys with NEW_KEY in place of"
        " OLD_KEY (OLD_KEY signs it). NEW_KEY is created if it does not exist. NEW_KEY.chain"
        " becomes a link to CHAIN, so `overt publish --key NEW_KEY` finds the right chain.",
    )
    r.add_argument("old", type=Path, metavar="OLD_KEY", help="a current private key (signs)")
    r.add_argument(
        "new", type=Path, metavar="NEW_KEY", help="the new private key (created if absent)"
    )
    r.add_argument("--chain", required=True, type=Path, help="the publisher's key-set chain file")
    r.add_argument("--log", required=True, metavar="URL_OR_DIR", help="the transparency log")
    _keyset_log_arg(r)
    r.add_argument("--name", help="name of a created NEW_KEY (default: OLD_KEY's name)")
    r.add_argument(
        "--key-type", choices=PUBLISHER_KEY_TYPES,
        help="algorithm of a created NEW_KEY (default: OLD_KEY's)",
    )  # fmt: skip
    r.add_argument("--keep-old", action="store_true", help="keep OLD_KEY valid beside NEW_KEY")
    r.add_argument(
        "--revoke-old", action="store_true", help="revoke OLD_KEY for good (it was compromised)"
    )
    _log_args(r)
    r.set_defaults(func=_rotate_to)

    for name, helptext in (
        ("keyset", "log a new key set: add and remove keys, change the threshold"),
        ("revoke", "log a new key set revoking keys for good"),
    ):
        r = cmds.add_parser(name, help=helptext)
        r.add_argument("--key", required=True, type=Path, help="a current private key (signs)")
        r.add_argument("--chain", required=True, type=Path, help="the key-set chain file")
        r.add_argument("--log", required=True, metavar="URL_OR_DIR", help="the transparency log")
        _keyset_log_arg(r)
        if name == "keyset":
            r.add_argument("--add", action="append", default=[], metavar="PUB", help="key to add")
            r.add_argument(
                "--remove", action="append", default=[], metavar="PUB", help="key to remove"
            )
        r.add_argument(
            "--revoke", action="append", default=[], metavar="PUB", required=name == "revoke",
            help="key to revoke for good; repeatable",
        )  # fmt: skip
        r.add_argument(
            "--threshold", type=int, default=1, help="signatures needed for the next set"
        )
        r.add_argument(
            "--require", action="append", default=[], choices=[*PUBLISHER_KEY_TYPES, "none"],
            help="hybrid: every publication (and the next key set) must be signed by a key"
            " of this algorithm too; repeat for each (default: as the current set; none: drop)",
        )  # fmt: skip
        r.add_argument(
            "--also-key", type=Path, action="append", default=[], metavar="KEY",
            help="another current key that signs the new set (hybrid); repeatable",
        )  # fmt: skip
        _log_args(r)
        r.set_defaults(func=_keyset)


def _keyset_log_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--keyset-log", metavar="URL_OR_DIR",
        help="the publisher's key-set log: the new key set is logged there too (endpoints"
        " whose policy names it learn of it within its max_age)",
    )  # fmt: skip


def _keyset_token() -> str | None:
    """A key-set log server's write token: ``OVERT_KEYSET_LOG_TOKEN`` (it is another log)."""
    return os.environ.get("OVERT_KEYSET_LOG_TOKEN")


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
    p.add_argument(
        "--timeout", type=_seconds, default=30.0, metavar="SECONDS",
        help="how long a log server may take to publish a witnessed checkpoint",
    )  # fmt: skip


def _size(text: str) -> int:
    if not text.isascii() or not text.isdigit() or text[0] == "0":
        raise argparse.ArgumentTypeError(f"not a tree size (1, 2, ...): {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from err
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _predicate(args: argparse.Namespace) -> Predicate:
    from overt.formats.statement import Release, RuleBundle, Update

    if args.kind == "release":
        return Release(args.product, args.version, args.channel, args.platform)
    if args.kind == "update":
        return Update(args.product, args.version, args.channel, args.min_previous)
    return RuleBundle(args.product, args.channel, args.engine, args.version, args.rule_count)


def _chain_path(key: Path) -> Path:
    return key.with_name(key.name + ".chain")


def _publish(args: argparse.Namespace) -> int:
    from overt.publish.chain import read_chain
    from overt.publish.keys import load_publisher_signer
    from overt.publish.keyset import KeyState, check_chain_against_log
    from overt.publish.publisher import (
        Publication,
        logged_keysets,
        open_log_writer,
        publish,
        write_bundle,
    )

    signer = load_publisher_signer(args.key)
    signers = [signer, *(load_publisher_signer(p) for p in args.also_key)]
    artifact = read_input(str(args.file))
    chain_path = args.chain or _chain_path(args.key)
    keysets: Sequence[bytes] = ()
    state = KeyState.pinned(signer.key)
    if args.chain is not None or chain_path.is_file():
        state, keysets = read_chain(chain_path)
        for path, s in zip([args.key, *args.also_key], signers, strict=True):
            if s.keyid not in state.trusted():
                raise ConfigError(
                    f"{path} is not a key of the current key set {state.sequence} in {chain_path}"
                )
    state.check_hybrid([s.keyid for s in signers], "this publication")
    attestations = [read_input(str(p)).strip() for p in args.attest]
    item = Publication(
        args.name or args.file.name, hashlib.sha256(artifact).hexdigest(), _predicate(args)
    )
    source = b""
    if args.source is not None:
        from overt.source.publishing import provenance_entry

        source = read_input(str(args.source))
        attestations.append(
            provenance_entry(signer, item.name, item.sha256, source, args.builder_id)
        )
    with open_log_writer(args.log, args.token, args.timeout) as log:
        # Before anything is logged: the chain must be the one the log holds for this key.
        # The scan of the log's key sets is cached beside the chain (read again only from
        # the size it reached), shared by every key whose chain links to the same file.
        cache = chain_path.resolve().with_name(chain_path.resolve().name + ".scan")
        found = logged_keysets(log, cache if chain_path.is_file() else None)
        check_chain_against_log(state, keysets, signer.key, found)
        with contextlib.ExitStack() as stack:
            keyset_log = None
            if args.keyset_log is not None:
                keyset_log = stack.enter_context(
                    open_log_writer(args.keyset_log, _keyset_token(), args.timeout)
                )
            (bundle,) = publish(
                log,
                signers,
                [item],
                keysets=keysets,
                attestations=attestations,
                consistency_from=args.consistency_from,
                cosign=_local_witnesses(args.unsafe_local_witness),
                keyset_log=keyset_log,
                mirrored=_mirror_wait(log, args.wait_mirrors, args.timeout),
            )
    if source:
        import dataclasses

        bundle = dataclasses.replace(bundle, source=source)
    out = args.out or args.file.with_name(args.file.name + ".overt")
    write_bundle(out, bundle)
    print(f"published {item.name} as entry {bundle.proof.index}; bundle written to {out}")
    return 0


def _mirror_wait(
    log: object, policy_path: Path | None, timeout: float
) -> Callable[[int, int], bytes] | None:
    """``--wait-mirrors``: the log's checkpoint once the policy's mirror quorum cosigned it
    for a range of entries (overt.log.mirroring.wait_for_mirrors)."""
    if policy_path is None:
        return None
    from overt.formats.checkpoint import parse_checkpoint
    from overt.formats.note import parse_note
    from overt.formats.policy import parse_policy
    from overt.log.log import Log
    from overt.log.mirroring import collect_mirror_cosignatures, wait_for_mirrors

    policy = parse_policy(read_input(str(policy_path)))
    if policy.mirror_quorum is None:
        raise ConfigError(f"{policy_path} has no mirror-quorum line: nothing to wait for")
    read: Callable[[], bytes] = log.checkpoint  # type: ignore[attr-defined]
    directory = getattr(log, "log", None)  # a log directory: it pushes to the mirrors itself

    def wait(first: int, end: int) -> bytes:
        origin = parse_checkpoint(parse_note(read()).text).origin
        keys = [lg.verifier for lg in policy.logs if lg.verifier.name == origin]
        if not keys:
            raise ConfigError(f"{policy_path} names no log {origin}")
        collect = None
        if isinstance(directory, Log):
            d = directory

            def collect() -> dict[str, str]:
                return collect_mirror_cosignatures(d, d.directory, keys[0], policy.mirrors)

        return wait_for_mirrors(read, keys[0], policy, first, end, timeout, collect=collect)

    return wait


def _local_witnesses(paths: Sequence[Path]) -> Callable[[bytes], bytes] | None:
    if not paths:
        return None
    from overt.formats.keytypes import Purpose
    from overt.formats.note import parse_note, parse_skey, sign_note

    signers = []
    for path in paths:
        text = read_input(str(path)).decode("utf-8", "replace").strip()
        if not text.startswith("PRIVATE+KEY+"):
            raise ConfigError(
                f"{path} is not a private key (a public/verifier key?): --unsafe-local-witness"
                " needs the witness's private key (witness.skey)"
            )
        signer = parse_skey(text)
        if not signer.key_type.may_sign(Purpose.COSIGNATURE):
            raise ConfigError(f"{path} is not a witness (cosignature) key")
        signers.append(signer)

    def cosign(note: bytes) -> bytes:
        parsed = parse_note(note)
        return sign_note(parsed.text, signers, existing=parsed)

    return cosign


def _fetcher(url_or_dir: str) -> object:
    from overt.formats import merkle, tiles
    from overt.log.client import open_source, tile_reader

    source = open_source(url_or_dir)
    reader = tile_reader(source)

    def fetch(old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(old, new, tiles.subtree_from_tiles(reader, new))

    return fetch


def _verify(args: argparse.Namespace) -> int:
    import dataclasses

    from overt.gate.policy import load_client_policy
    from overt.gate.updater import UpdateGate

    policy = load_client_policy(args.policy)
    if args.max_age is not None and args.max_age < policy.max_checkpoint_age:
        policy = dataclasses.replace(policy, max_checkpoint_age=args.max_age)
    artifact = read_input(args.file)
    bundle = read_input(args.bundle)
    if args.subtree_proof is not None or args.keyset_checkpoint is not None:
        # Untrusted like the rest of the bundle: the gate verifies them.
        from overt.publish.bundle import format_bundle, parse_bundle

        parsed = parse_bundle(bundle)
        if args.subtree_proof is not None:
            parsed = dataclasses.replace(parsed, subtree_proof=read_input(args.subtree_proof))
        if args.keyset_checkpoint is not None:
            note = read_input(args.keyset_checkpoint)
            parsed = dataclasses.replace(parsed, keyset_checkpoint=note)
        bundle = format_bundle(parsed)
    log = args.log or next((lg.url for lg in policy.all_logs() if lg.url), None)
    fetch = _fetcher(log) if (log and args.state) else None
    mirrors = _mirror_fetcher(policy.witnesses)
    with UpdateGate(policy, args.state, fetch_consistency=fetch, fetch_mirrors=mirrors) as gate:  # type: ignore[arg-type]
        pub = gate.admit(artifact, bundle)
    cp = pub.checkpoint.checkpoint
    head = f"ok: {pub.kind} {pub.product} {pub.version} ({pub.channel}) sha256 {pub.sha256[:16]}..."
    if pub.subtree is not None:  # inclusion by subtree, freshness from the key-set log
        st = pub.subtree.proof.subtree
        print(
            f"{head} logged at index {pub.index} of {st.origin} in subtree [{st.start},"
            f" {st.end}) cosigned by {', '.join(sorted(pub.subtree.cosigned_by))}; key set"
            f" current at {cp.origin} size {cp.size}"
        )
        return 0
    print(
        f"{head} logged at index {pub.index} of {cp.origin} (size {cp.size}),"
        f" cosigned by {', '.join(sorted(pub.checkpoint.cosigned)) or 'no witness'}"
    )
    return 0


def _mirror_fetcher(policy: Policy) -> MirrorFetcher | None:
    """With a mirror quorum: ask the policy's mirrors (those with URLs) for checkpoints they
    cosigned after the bundle's, with proofs from their tiles (the gate verifies them)."""
    if policy.mirror_quorum is None or not any(m.url for m in policy.mirrors):
        return None

    def fetch(checkpoint: Checkpoint) -> list[tuple[bytes, list[bytes]]]:
        from overt.monitor.mirrors import mirror_evidence, mirrors_from

        mirrors = mirrors_from(policy, checkpoint.origin)
        try:
            return mirror_evidence(mirrors, checkpoint)
        finally:
            for m in mirrors:
                m.source.close()

    return fetch


def _keygen(args: argparse.Namespace) -> int:
    from overt.publish.chain import create_chain
    from overt.publish.keys import generate_publisher_key, write_key_files

    chain = _chain_path(args.key)
    others = sorted(
        p.name for p in args.key.parent.glob("*.chain") if p != chain and not p.is_symlink()
    )
    if others and not args.new_publisher:
        raise ConfigError(
            f"{args.key.parent} already holds the publisher chain {others[0]}: to replace a key"
            f" use `overt publisher rotate OLD_KEY {args.key} --chain {others[0]} --log LOG`"
            f" (a second chain makes bundles fresh endpoints refuse); to start a separate"
            f" publisher identity, pass --new-publisher"
        )
    skey, signer = generate_publisher_key(args.name, args.key_type)
    pub = write_key_files(args.key, skey, signer)
    create_chain(chain, signer.key)
    print(signer.key.vkey)
    print(
        f"new publisher identity: private key {args.key} (0600), public key {pub} (clients pin"
        f" it), chain {chain}"
    )
    return 0


def _log_keyset(
    args: argparse.Namespace,
    signer: PublisherSigner | Sequence[PublisherSigner],
    chain: Path,
    keys: Sequence[PublisherKey],
    revoke: Sequence[PublisherKey],
    threshold: int,
    require: Sequence[str] = (),
) -> tuple[int, int]:
    """Log the next key set of ``chain`` and append it; returns (sequence, log index)."""
    from overt.publish.chain import append_chain, read_chain
    from overt.publish.keyset import make_keyset_entry
    from overt.publish.publisher import open_log_writer

    state, entries = read_chain(chain)
    if not keys:
        raise FormatError("key set", "no key would remain valid")
    from overt.publish.keys import PublisherSigner

    signers = [signer] if isinstance(signer, PublisherSigner) else list(signer)
    entry = make_keyset_entry(state, signers, keys, revoke, threshold, require)
    with open_log_writer(args.log, args.token, args.timeout) as log:
        (index,) = log.add_many([entry])
    if args.keyset_log is not None:
        from overt.publish.publisher import keyset_checkpoint

        with open_log_writer(args.keyset_log, _keyset_token(), args.timeout) as keyset_log:
            keyset_checkpoint(keyset_log, [*entries, entry])
    append_chain(chain, entry)
    return state.sequence + 1, index


def _keyset(args: argparse.Namespace) -> int:
    from overt.publish.chain import read_chain
    from overt.publish.keys import load_publisher_key, load_publisher_signer

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
    signers = [signer, *(load_publisher_signer(p) for p in args.also_key)]
    require = [a for a in args.require if a != "none"] if args.require else state.require
    sequence, index = _log_keyset(args, signers, args.chain, keys, revoke, args.threshold, require)
    print(f"key set {sequence} logged as entry {index}: {len(keys)} key(s) valid")
    return 0


def _rotate_to(args: argparse.Namespace) -> int:
    from overt.publish.chain import read_chain
    from overt.publish.keys import (
        generate_publisher_key,
        load_publisher_signer,
        write_key_files,
    )

    old = load_publisher_signer(args.old)
    state, _ = read_chain(args.chain)
    if old.keyid not in state.trusted():
        raise ConfigError(f"{args.old} is not a key of key set {state.sequence} in {args.chain}")
    if args.new.exists():
        new = load_publisher_signer(args.new)
    else:
        skey, new = generate_publisher_key(
            args.name or old.key.name, args.key_type or old.key.algorithm
        )
        write_key_files(args.new, skey, new)
    if new.keyid in state.revoked:
        raise ConfigError(f"{args.new} was revoked in {args.chain}; make a new key")
    new_chain = _chain_path(args.new)
    _replace_fresh_chain(new_chain, new.key.vkey, args.chain)
    keys = [k for k in state.keys if k.keyid != new.keyid]
    if not args.keep_old:
        keys = [k for k in keys if k.keyid != old.keyid]
    keys.append(new.key)
    revoke = [old.key] if args.revoke_old else []
    threshold = min(state.threshold, len(keys))
    sequence, index = _log_keyset(args, old, args.chain, keys, revoke, threshold, state.require)
    if not new_chain.exists():
        new_chain.symlink_to(os.path.relpath(args.chain.resolve(), new_chain.parent.resolve()))
    print(
        f"key set {sequence} logged as entry {index}: {args.new} now signs"
        f"{'' if args.keep_old else f' instead of {args.old}'}"
        f"{' (revoked)' if args.revoke_old else ''}; chain {args.chain}"
        f" (also {new_chain})"
    )
    return 0


def _replace_fresh_chain(path: Path, vkey: str, chain: Path) -> None:
    """Remove ``path`` if it is the unused chain ``keygen`` started for the new key.

    Raises:
        ConfigError: ``path`` is a real chain (it has key sets) other than ``chain``.
    """
    if not path.exists() and not path.is_symlink():
        return
    if path.resolve() == chain.resolve():
        return
    try:
        content = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    if content != vkey.encode() + b"\n":
        raise ConfigError(f"{path} is another key-set chain; move it away first")
    path.unlink()
