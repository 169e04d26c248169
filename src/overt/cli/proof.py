"""``overt proof verify``: check an offline c2sp.org/tlog-proof (or an overt subtree proof,
:mod:`overt.formats.subtree_proof`) against an entry."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from overt.cli._util import load_policy, load_vkey, read_input
from overt.errors import FormatError, PolicyError

if TYPE_CHECKING:
    from overt.formats.policy import Policy

#: Top-level commands this module registers, with their one-line help.
COMMANDS = {
    "proof": "verify offline inclusion proofs",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("proof", help=COMMANDS["proof"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True
    p = cmds.add_parser("verify", help="verify a tlog-proof for an entry")
    p.add_argument("proof", metavar="PROOF", help="tlog-proof file (or - for stdin)")
    p.add_argument("--entry", required=True, metavar="FILE", help="the logged entry")
    p.add_argument("--vkey", required=True, help="log verifier key, inline or a file")
    p.add_argument("--origin", help="require this checkpoint origin")
    p.add_argument("--policy", help="tlog-policy: require the witness quorum it names")
    p.add_argument(
        "--max-age", type=float, metavar="SECONDS", help="require cosignatures this recent"
    )
    p.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from overt.formats.merkle import leaf_hash
    from overt.formats.proof import parse_proof, verify_proof
    from overt.formats.subtree_proof import HEADER as SUBTREE_HEADER

    verifier = load_vkey(args.vkey)
    raw = read_input(args.proof)
    entry = read_input(args.entry)
    if not entry:
        raise FormatError("entry", "empty file")
    policy = load_policy(args.policy)
    if raw.startswith(SUBTREE_HEADER + b"\n"):
        return _verify_subtree(args, raw, leaf_hash(entry), verifier.name, policy)
    if args.max_age is not None and policy is None:
        raise PolicyError("--max-age needs --policy (freshness comes from witness cosignatures)")
    verified = verify_proof(
        parse_proof(raw),
        leaf_hash(entry),
        verifier,
        args.origin,
        policy=policy,
        now=time.time(),
        max_age=args.max_age,
    )
    cp = verified.checkpoint.checkpoint
    print(f"ok: entry {verified.proof.index} is in {cp.origin} at size {cp.size}")
    return 0


def _verify_subtree(
    args: argparse.Namespace, raw: bytes, leaf: bytes, origin: str, policy: Policy | None
) -> int:
    from overt.formats.subtree_proof import verify_subtree_proof

    # The witnesses vouch for the subtree (the log key names the origin): a policy is needed.
    if policy is None:
        raise PolicyError("a subtree proof is vouched for by witnesses: give --policy")
    if args.max_age is not None:
        raise PolicyError("--max-age: subtree cosignatures carry no time (they never go stale)")
    if args.origin is not None and args.origin != origin:
        raise PolicyError(f"--origin {args.origin} is not the log key's origin {origin}")
    verified = verify_subtree_proof(raw, leaf, policy, origin=origin)
    st = verified.proof.subtree
    print(
        f"ok: entry {verified.proof.index} is in {st.origin} subtree [{st.start}, {st.end}),"
        f" cosigned by {', '.join(verified.cosigned_by)}"
    )
    return 0
