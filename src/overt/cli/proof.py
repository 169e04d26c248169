"""``overt proof verify``: check an offline c2sp.org/tlog-proof against an entry."""

from __future__ import annotations

import argparse
import time

from overt.cli._util import load_policy, load_vkey, read_input
from overt.errors import FormatError, PolicyError

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

    verifier = load_vkey(args.vkey)
    raw = read_input(args.proof)
    entry = read_input(args.entry)
    if not entry:
        raise FormatError("entry", "empty file")
    policy = load_policy(args.policy)
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
