"""``overt telemetry``: the endpoint's telemetry controls and the customer's audit of them.

A thin shell over :mod:`overt.telemetry`: ``policy check|schema`` validates a policy,
``filter`` applies one to events (JSON Lines), ``screen`` decides whether a file may leave as
a sample, ``ledger show|verify|export`` reads and verifies an endpoint's egress ledger.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overt.cli._util import read_input, vkey_text

COMMANDS = {"telemetry": "telemetry policy, endpoint filter, sample screen, egress ledger"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("telemetry", help=COMMANDS["telemetry"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True

    p = cmds.add_parser("policy", help="validate a telemetry policy, or print its JSON Schema")
    acts = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    acts.required = True
    a = acts.add_parser("check", help="validate a policy and summarise it")
    a.add_argument("policy", help="the policy file (- for stdin)")
    a.set_defaults(func=_policy_check)
    a = acts.add_parser("schema", help="print the policy's JSON Schema")
    a.set_defaults(func=_policy_schema)

    p = cmds.add_parser("filter", help="apply a policy to events (JSON Lines in, JSON Lines out)")
    p.add_argument("policy", help="the policy file")
    p.add_argument("events", nargs="?", default="-", help="JSON Lines of events (- for stdin)")
    p.add_argument("--salt-file", help="the customer's secret salt for hashed fields")
    p.set_defaults(func=_filter)

    p = cmds.add_parser("screen", help="may this file leave as a sample? (exit 1 if not)")
    p.add_argument("file", help="the file (its name is never consulted)")
    p.add_argument("--policy", required=True, help="the policy file")
    p.add_argument("--consent", action="store_true", help="the user agreed (mode ask)")
    p.set_defaults(func=_screen)

    p = cmds.add_parser("send", help="filter, seal, record in the ledger, send to the collector")
    p.add_argument("policy", help="the policy file (its region's collector is the destination)")
    p.add_argument("events", nargs="?", default="-", help="JSON Lines of events (- for stdin)")
    p.add_argument("--ledger", type=Path, required=True, help="the ledger directory (created)")
    p.add_argument("--key", required=True, help="the region collector's key text file (logged)")
    p.add_argument("--salt-file", help="the customer's secret salt for hashed fields")
    p.add_argument("--sample", help="send this file as a sample instead of events")
    p.add_argument("--consent", action="store_true", help="the user agreed (samples, mode ask)")
    p.add_argument("--batch", type=int, default=500, help="events per payload")
    p.add_argument("--receipts", type=Path, help="append the receipts (JSON Lines) here")
    p.add_argument("--receipts-vkey", help="verify each receipt against the receipt log's key")
    p.add_argument(
        "--client-policy",
        help="admit the policy and the key only through the update gate under this client"
        " policy (then --policy-bundle and --key-bundle are needed)",
    )
    p.add_argument("--policy-bundle", help="the policy's .overt bundle")
    p.add_argument("--key-bundle", help="the collector key's .overt bundle")
    p.add_argument("--gate-state", type=Path, help="the gate's state directory (rollback)")
    p.set_defaults(func=_send)

    p = cmds.add_parser("reconcile", help="what left vs what the collector received (exit 1)")
    p.add_argument("ledger", type=Path, help="the ledger directory")
    p.add_argument("receipt_log", help="the receipt log (directory, or URL .../receipts)")
    p.add_argument("--receipts-vkey", required=True, help="the receipt log's key")
    p.add_argument("--vkey", help="the ledger's key (default: LEDGER/log.vkey)")
    p.add_argument("--region", help="only payloads sent to this region")
    p.set_defaults(func=_reconcile)

    p = cmds.add_parser("ledger", help="read and verify an endpoint's egress ledger")
    acts = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    acts.required = True
    vkey_help = "the ledger key the auditor trusts (default: DIR/log.vkey)"
    for name, help_text, func in (
        ("show", "verify, then list what left (one line per payload)", _ledger_show),
        ("verify", "verify every entry, tile and signature", _ledger_verify),
        ("export", "verify, then write the records and checkpoint as JSON", _ledger_export),
    ):
        a = acts.add_parser(name, help=help_text)
        a.add_argument("dir", type=Path, help="the ledger directory")
        a.add_argument("--vkey", help=vkey_help)
        a.add_argument(
            "--previous", metavar="CHECKPOINT", help="an earlier checkpoint it must extend"
        )
        if name == "verify":
            a.add_argument("--save-checkpoint", metavar="FILE", help="keep the checkpoint")
        if name == "export":
            a.add_argument("-o", "--output", default="-", help="where to write (- for stdout)")
        a.set_defaults(func=func)


def _policy(path: str) -> Any:
    from overt.telemetry.policy import parse_policy

    return parse_policy(read_input(path))


def _policy_check(args: argparse.Namespace) -> int:
    policy = _policy(args.policy)
    s = policy.samples
    print(
        f"policy {policy.customer} revision {policy.version}: region {policy.region}"
        f" -> {policy.collector}; {len(policy.events)} event type(s);"
        f" samples {s.mode} up to {s.max_bytes} bytes; retention {policy.retention_days} days;"
        f" sha256 {policy.sha256}"
    )
    return 0


def _policy_schema(args: argparse.Namespace) -> int:
    from overt.telemetry.policy import SCHEMA

    print(json.dumps(SCHEMA, indent=2))
    return 0


def _filter(args: argparse.Namespace) -> int:
    from overt.errors import FormatError
    from overt.formats.strict import load_json
    from overt.telemetry.filter import EventFilter

    salt = read_input(args.salt_file) if args.salt_file else b""
    event_filter = EventFilter(_policy(args.policy), salt)
    for n, line in enumerate(read_input(args.events).splitlines(), 1):
        if not line.strip():
            continue
        event = load_json(line, f"event on line {n}", 1 << 20)
        if not isinstance(event, dict):
            raise FormatError(f"event on line {n}", "not a JSON object", line[:60])
        print(json.dumps(event_filter.apply(event), ensure_ascii=False))
    return 0


def _screen(args: argparse.Namespace) -> int:
    from overt.telemetry.samples import screen_sample

    findings = screen_sample(read_input(args.file), _policy(args.policy).samples, args.consent)
    for f in findings:
        print(f"{f.path or '(sample)'}\t{f.kind}\t{f.detail}")
    return 0


def _verified(args: argparse.Namespace) -> Any:
    from overt.telemetry.ledger import verify_ledger

    vkey = vkey_text(args.vkey) if args.vkey else None
    previous = read_input(args.previous) if args.previous else None
    return verify_ledger(args.dir, vkey, previous)


def _ledger_show(args: argparse.Namespace) -> int:
    ledger = _verified(args)
    for i, r in enumerate(ledger.records):
        when = datetime.fromtimestamp(r.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(
            f"{i}\t{when}\t{r.kind}\t{r.events} event(s)\t{r.size} bytes\t{r.destination}"
            f"\tpolicy {r.policy}\t{r.digest}\t{','.join(r.fields)}"
        )
    return 0


def _ledger_verify(args: argparse.Namespace) -> int:
    ledger = _verified(args)
    cp = ledger.checkpoint.checkpoint
    if args.save_checkpoint:
        Path(args.save_checkpoint).write_bytes(ledger.checkpoint.raw)
    print(f"ledger {cp.origin}: {cp.size} record(s) verified")
    return 0


def _ledger_export(args: argparse.Namespace) -> int:
    ledger = _verified(args)
    doc = {
        "checkpoint": ledger.checkpoint.raw.decode(),
        "records": [{"index": i, **r.to_json()} for i, r in enumerate(ledger.records)],
    }
    text = json.dumps(doc, indent=1) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


def _send(args: argparse.Namespace) -> int:
    import httpx

    from overt.errors import FormatError, LogError, OvertError
    from overt.formats.note import parse_vkey
    from overt.formats.strict import load_json
    from overt.telemetry.collector import verify_receipt
    from overt.telemetry.endpoint import Endpoint
    from overt.telemetry.ledger import EgressLedger
    from overt.telemetry.sealing import parse_collector_key

    if args.client_policy:
        policy, key = _admitted(args)
    else:
        policy = _policy(args.policy)
        key = parse_collector_key(read_input(args.key))[1]
    region = parse_collector_key(read_input(args.key))[0]
    if region != policy.region:
        raise FormatError("collector key", f"is for region {region}, not {policy.region}")
    salt = read_input(args.salt_file) if args.salt_file else b""
    if (args.ledger / "log.json").exists():
        ledger = EgressLedger.open(args.ledger)
    else:
        ledger = EgressLedger.create(args.ledger, f"{policy.customer}/ledger")
    try:
        endpoint = Endpoint(policy, salt, key, ledger)
        if args.sample:
            outgoing = [endpoint.sample(read_input(args.sample), args.consent)]
        else:
            events = []
            for n, line in enumerate(read_input(args.events).splitlines(), 1):
                if line.strip():
                    event = load_json(line, f"event on line {n}", 1 << 20)
                    if not isinstance(event, dict):
                        raise FormatError(f"event on line {n}", "not a JSON object", line[:60])
                    events.append(event)
            step = max(1, args.batch)
            outgoing = [endpoint.events(events[i : i + step]) for i in range(0, len(events), step)]
    finally:
        ledger.close()
    url = policy.collector.rstrip("/") + "/v1/payloads"
    with httpx.Client(timeout=30) as http:
        for out in outgoing:
            try:
                r = http.post(
                    url, content=out.sealed, headers={"x-overt-customer": policy.customer}
                )
            except httpx.HTTPError as err:
                raise LogError(f"recorded but not delivered: {out.record.digest}: {err}") from err
            if r.status_code != 200:
                raise OvertError(f"collector refused {out.record.digest}: {r.text.strip()[:300]}")
            if args.receipts_vkey:
                verify_receipt(r.content, out.sealed, parse_vkey(vkey_text(args.receipts_vkey)))
            if args.receipts:
                with args.receipts.open("a") as f:
                    f.write(r.text.strip() + "\n")
            print(
                f"sent {out.record.digest} ({out.record.events} event(s)), receipt {r.json()['index']}"
            )
    return 0


def _admitted(args: argparse.Namespace) -> tuple[Any, Any]:
    from overt.cli._util import UsageError
    from overt.gate.policy import load_client_policy
    from overt.gate.updater import UpdateGate
    from overt.telemetry.policy import admit_policy
    from overt.telemetry.sealing import admit_collector_key

    if not (args.policy_bundle and args.key_bundle):
        raise UsageError("--client-policy needs --policy-bundle and --key-bundle")
    with UpdateGate(load_client_policy(args.client_policy), args.gate_state) as gate:
        policy = admit_policy(gate, read_input(args.policy), read_input(args.policy_bundle))
        key = admit_collector_key(gate, read_input(args.key), read_input(args.key_bundle))
    return policy, key


def _reconcile(args: argparse.Namespace) -> int:
    from overt.formats.note import parse_vkey
    from overt.telemetry.ledger import read_log_entries, verify_ledger
    from overt.telemetry.reconcile import receipt_entries, reconcile

    ledger = verify_ledger(args.ledger, vkey_text(args.vkey) if args.vkey else None)
    _, entries = read_log_entries(args.receipt_log, parse_vkey(vkey_text(args.receipts_vkey)))
    report = reconcile(ledger.records, receipt_entries(entries), args.region)
    for r in report.missing:
        print(f"missing\t{r.digest}\tsent {r.events} event(s) to {r.destination}, no receipt")
    for e in report.extra:
        print(f"extra\t{e.digest}\treceipt {e.index} for {e.customer}, never sent by this endpoint")
    for r, e in report.altered:
        print(
            f"altered\t{r.digest}\tsent {r.size} bytes for {r.customer}, receipt says {e.size} for {e.customer}"
        )
    print(
        f"{len(report.matched)} matched, {len(report.missing)} missing,"
        f" {len(report.extra)} extra, {len(report.altered)} altered"
    )
    return 0 if report.clean else 1
