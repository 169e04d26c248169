"""``overt disclosure``: run a vulnerability disclosure programme from the terminal.

A thin shell over :mod:`overt.disclosure`: ``init`` makes a programme directory
(:mod:`overt.disclosure.site`), ``account`` adds triagers and admins, ``serve`` runs the
HTTP service, ``triage`` lists, shows and moves reports, ``score`` checks a CVSS vector,
``advisory`` publishes CSAF and OSV advisories, ``verify`` proves a receipt against the
log, and ``stats`` counts reports and response times from the log alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from overt._asgi import add_limit_arguments, limits_from_args
from overt.cli._util import check_listen, listen_address, load_vkey, read_input

COMMANDS = {
    "disclosure": "vulnerability disclosure programme: intake, triage, bounty, advisories",
}

_STATES = ("received", "acknowledged", "triaged", "fix_in_progress", "fixed", "disclosed")
_VERDICTS = ("valid", "duplicate", "out_of_scope", "not_reproducible")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("disclosure", help=COMMANDS["disclosure"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True
    dir_help = "the programme directory (overt disclosure init)"

    p = cmds.add_parser("init", help="create a programme directory: keys, database, log")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument("--program", required=True, help="programme name, e.g. example.com/psirt")
    p.add_argument("--base-url", default="https://psirt.example.com", help="where it is served")
    p.add_argument("--publisher", default="Example PSIRT", help="advisory publisher name")
    p.add_argument("--log", dest="log_url", metavar="URL", help="a log server instead of DIR/log")
    p.add_argument("--log-token", metavar="FILE", help="the log server's bearer token file")
    p.add_argument("--store", metavar="URL", help="a PostgreSQL URL instead of DIR/disclosure.db")
    p.set_defaults(func=_init)

    p = cmds.add_parser("account", help="add a triager or admin (password on stdin)")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument("username", help="the account name (a-z, 0-9, . _ -)")
    p.add_argument("--role", choices=("triager", "admin"), default="triager", help="the role")
    p.set_defaults(func=_account)

    p = cmds.add_parser("serve", help="serve intake, tracking, triage and advisories over HTTP")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument(
        "--listen",
        type=listen_address,
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address to listen on",
    )
    p.add_argument(
        "--insecure-cookies",
        action="store_true",
        help="session cookies without Secure (plain HTTP on a test machine only)",
    )
    add_limit_arguments(p)
    p.set_defaults(func=_serve, long_running=True)

    p = cmds.add_parser("triage", help="list, show and move reports")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument("--as", dest="user", required=True, help="the account acting (recorded)")
    acts = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    acts.required = True
    a = acts.add_parser("list", help="the triage list, oldest first")
    a.add_argument("--state", choices=_STATES, help="only reports in this state")
    a = acts.add_parser("overdue", help="missed deadlines (exit 1 if there are any)")
    a = acts.add_parser("show", help="one report, decrypted (the read is recorded)")
    a.add_argument("report", help="the report id (R-...)")
    a = acts.add_parser("move", help="move a report to its next state")
    a.add_argument("report", help="the report id (R-...)")
    a.add_argument("state", choices=_STATES, help="the state to enter")
    a.add_argument("--verdict", choices=_VERDICTS, help="with triaged: the verdict")
    a = acts.add_parser("pay", help="record the bounty of a valid, scored report (admins)")
    a.add_argument("report", help="the report id (R-...)")
    a = acts.add_parser("ledger", help="payout totals per researcher and per year (admins)")
    p.set_defaults(func=_triage)

    p = cmds.add_parser("score", help="validate and score a CVSS v3.1 or v4.0 vector")
    p.add_argument("vector", help="CVSS:3.1/... or CVSS:4.0/...")
    p.set_defaults(func=_score)

    p = cmds.add_parser("advisory", help="publish CSAF 2.0 and OSV advisories of a fixed report")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument("report", help="the report id (R-...), fixed")
    p.add_argument("--as", dest="user", required=True, help="the account acting (recorded)")
    p.add_argument("--id", dest="advisory_id", required=True, help="e.g. OVT-2026-0001")
    p.add_argument("--vendor", required=True, help="the vendor's name")
    p.add_argument("--product", required=True, help="the product's name")
    p.add_argument("--fixed", required=True, help="first fixed version")
    p.add_argument("--ecosystem", required=True, help="OSV ecosystem, e.g. PyPI")
    p.add_argument("--package", required=True, help="the package's name in that ecosystem")
    p.add_argument("--summary", required=True, help="what the vulnerability is, in a sentence")
    p.add_argument("--cve", help="the CVE id, if one was assigned")
    p.set_defaults(func=_advisory)

    p = cmds.add_parser("verify", help="prove a receipt's intake (or a later step) from the log")
    p.add_argument("receipt", help="the receipt file (JSON)")
    p.add_argument("proof", help="the commitment's tlog-proof file")
    p.add_argument("--vkey", required=True, help="the log's verifier key, inline or a file")
    p.add_argument("--state", choices=_STATES, default="received", help="the step to prove")
    p.add_argument("--at", help="the step's time (YYYY-MM-DDTHH:MM:SSZ); not for received")
    p.set_defaults(func=_verify)

    p = cmds.add_parser("stats", help="report counts and response times from the log alone")
    p.add_argument("log", metavar="URL_OR_DIR", help="the log's URL or directory")
    p.add_argument("--vkey", required=True, help="the log's verifier key, inline or a file")
    p.add_argument("--program", help="only this programme's commitments")
    p.set_defaults(func=_stats)


def _init(args: argparse.Namespace) -> int:
    from overt.disclosure.site import init_site

    token = None
    if args.log_token is not None:
        token = read_input(args.log_token).decode().strip()
    site = init_site(
        args.dir, args.program, args.base_url, args.publisher, args.log_url, token, args.store
    )
    print(f"disclosure programme {site.program} in {args.dir}")
    return 0


def _account(args: argparse.Namespace) -> int:
    from overt.disclosure.service import Role
    from overt.disclosure.site import close_site, open_site

    password = sys.stdin.readline().rstrip("\n")
    _site, desk = open_site(args.dir)
    try:
        desk.add_account(args.username, password, Role(args.role))
    finally:
        close_site(desk)
    print(f"{args.role} {args.username} added")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from overt._asgi import run
    from overt.disclosure.server import DisclosureApp, ServiceConfig
    from overt.disclosure.site import close_site, open_site
    from overt.errors import ConfigError

    host, port = args.listen
    limits = limits_from_args(args)
    check_listen(host, port)
    site, desk = open_site(args.dir)
    config = ServiceConfig(
        base_url=site.base_url,
        contact=(f"{site.base_url}/",),
        policy=f"{site.base_url}/policy",
        secure_cookies=not args.insecure_cookies,
    )

    def ready() -> None:
        print(f"overt disclosure {site.program}: serving on http://{host}:{port}", flush=True)

    try:
        run(DisclosureApp(desk, config), host, port, ready, limits)
    except SystemExit as err:
        if err.code:
            raise ConfigError(f"cannot serve on {host}:{port} (exit {err.code})") from err
    finally:
        close_site(desk)
    return 0


def _actor(desk: Any, username: str) -> Any:
    from overt.disclosure.service import Account, Role
    from overt.errors import ConfigError

    found = desk.store.account(username)
    if found is None:
        raise ConfigError(f"no account {username!r} (overt disclosure account)")
    return Account(username, Role(found[0]))


def _triage(args: argparse.Namespace) -> int:
    from overt.disclosure.site import close_site, open_site
    from overt.disclosure.timeline import format_time
    from overt.disclosure.workflow import State, Verdict

    _site, desk = open_site(args.dir)
    try:
        account = _actor(desk, args.user)
        if args.action == "list":
            state = State(args.state) if args.state else None
            for r in desk.triage_list(account, state):
                print(
                    f"{r.id}\t{r.state}\t{r.verdict or '-'}\t{r.vuln_class}\t{r.severity or '-'}"
                    f"\t{r.researcher}"
                )
        elif args.action == "overdue":
            found = desk.overdue(account)
            for o in found:
                print(f"{o.report_id}\t{o.kind}\tdue {format_time(o.due)}\t{o.reason}")
            return 1 if found else 0
        elif args.action == "show":
            v = desk.view(account, args.report)
            print(f"{v.report_id}: {v.title}\nby {v.researcher} ({v.contact}), {v.vuln_class}")
            print(f"CVSS {v.cvss or '-'} {v.score if v.score is not None else ''}")
            for e in v.case.events:
                print(f"  {format_time(e.at)} {e.state} {e.verdict or ''} by {e.actor}")
            print(v.description)
        elif args.action == "move":
            verdict = Verdict(args.verdict) if args.verdict else None
            desk.transition(account, args.report, State(args.state), verdict)
            print(f"{args.report}: {args.state}")
        elif args.action == "pay":
            payout = desk.pay(account, args.report)
            print(f"{payout.report_id}: ${payout.amount:,} to {payout.researcher}")
        elif args.action == "ledger":
            totals = desk.ledger(account)
            print(json.dumps({"total": totals.total, "by_researcher": totals.by_researcher,
                              "by_year": totals.by_year}, indent=1))  # fmt: skip
    finally:
        close_site(desk)
    return 0


def _score(args: argparse.Namespace) -> int:
    from overt.disclosure.scoring import score

    s = score(args.vector)
    print(f"{s.base} {s.severity} {s.vector}")
    return 0


def _advisory(args: argparse.Namespace) -> int:
    from overt.disclosure.advisories import AdvisoryDetails
    from overt.disclosure.site import close_site, open_site

    details = AdvisoryDetails(
        args.advisory_id,
        args.vendor,
        args.product,
        args.fixed,
        args.ecosystem,
        args.package,
        args.summary,
        args.cve,
    )
    _site, desk = open_site(args.dir)
    try:
        path, _proof = desk.publish_advisory(_actor(desk, args.user), args.report, details)
    finally:
        close_site(desk)
    print(f"published .well-known/csaf/white/{path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from overt.disclosure.timeline import parse_receipt, parse_time, verify_commitment
    from overt.disclosure.workflow import State

    receipt = parse_receipt(read_input(args.receipt))
    at = parse_time(args.at) if args.at else None
    proven = verify_commitment(
        receipt, read_input(args.proof), load_vkey(args.vkey), State(args.state), at
    )
    cp = proven.proof.checkpoint.checkpoint
    print(
        f"ok: report {proven.report_id} {proven.state} at {proven.time:%Y-%m-%dT%H:%M:%SZ}"
        f" (entry {proven.index} of {cp.origin}, size {cp.size})"
    )
    return 0


def _stats(args: argparse.Namespace) -> int:
    from overt.disclosure.stats import log_stats

    s = log_stats(args.log, load_vkey(args.vkey), args.program)
    doc = {"program": s.program, "reports": s.reports, "by_state": s.by_state,
           "median_days": s.median_days}  # fmt: skip
    print(json.dumps(doc, indent=1))
    return 0
