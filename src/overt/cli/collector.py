"""``overt collector``: run a region's telemetry collector and query it (every read logged).

A thin shell over :mod:`overt.telemetry.collector` and :mod:`overt.telemetry.server`:
``init`` makes a collector directory (region key, receipt and access logs, token),
``add-policy`` accepts a customer's logged policy, ``serve`` runs the HTTP API, ``read``
queries it (actor and reason required; the read is in the access log before any data is
answered), ``expire`` deletes what is past each customer's retention (logged too).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

from overt._asgi import add_limit_arguments, limits_from_args
from overt.cli._util import check_listen, listen_address, read_input

COMMANDS = {"collector": "telemetry collector: receipts, access transparency, retention"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("collector", help=COMMANDS["collector"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True
    dir_help = "the collector directory (overt collector init)"

    p = cmds.add_parser("init", help="create a collector directory: region key, logs, token")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument("--region", required=True, help="the region it serves, e.g. eu")
    p.add_argument("--name", required=True, help="log origin prefix, e.g. eu.telemetry.example")
    p.add_argument("--store", metavar="URL", help="a PostgreSQL URL instead of DIR/store.db")
    p.set_defaults(func=_init)

    p = cmds.add_parser("add-policy", help="accept payloads of a customer under its policy")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument("policy", help="the customer's (logged) policy file")
    p.set_defaults(func=_add_policy)

    p = cmds.add_parser("serve", help="serve the collector's HTTP API")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument(
        "--listen",
        type=listen_address,
        default="127.0.0.1:8090",
        metavar="HOST:PORT",
        help="address to listen on",
    )
    add_limit_arguments(p)
    p.set_defaults(func=_serve, long_running=True)

    p = cmds.add_parser("read", help="read stored payloads through the query API (logged)")
    p.add_argument("url", help="the collector's URL")
    p.add_argument("digests", nargs="+", help="the payloads' SHA-256 (hex)")
    p.add_argument("--customer", required=True, help="whose payloads")
    p.add_argument("--actor", required=True, help="who reads (recorded)")
    p.add_argument("--reason", required=True, help="why: a ticket or case (recorded)")
    p.add_argument("--token-file", required=True, help="the collector's DIR/token")
    p.set_defaults(func=_read)

    p = cmds.add_parser("expire", help="delete what is past each customer's retention (logged)")
    p.add_argument("dir", type=Path, help=dir_help)
    p.set_defaults(func=_expire)


def _init(args: argparse.Namespace) -> int:
    from overt.telemetry.collector import Collector

    collector = Collector.init(args.dir, args.region, args.name, args.store)
    collector.close()
    print(f"collector for region {args.region} in {args.dir}; key: {args.dir}/collector.key.pub")
    return 0


def _add_policy(args: argparse.Namespace) -> int:
    from overt.telemetry.collector import Collector

    collector = Collector(args.dir)
    try:
        policy = collector.add_policy(read_input(args.policy))
    finally:
        collector.close()
    print(f"accepting {policy.customer} under policy revision {policy.version}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from overt._asgi import run
    from overt.telemetry.collector import Collector
    from overt.telemetry.server import CollectorApp

    host, port = args.listen
    check_listen(host, port)
    collector = Collector(args.dir)
    try:
        print(f"collector {collector.name} on http://{host}:{port}", file=sys.stderr, flush=True)
        run(CollectorApp(collector), host, port, limits=limits_from_args(args))
    finally:
        collector.close()
    return 0


def _read(args: argparse.Namespace) -> int:
    import httpx

    from overt.errors import OvertError

    token = read_input(args.token_file).decode().strip()
    body = {
        "actor": args.actor,
        "customer": args.customer,
        "digests": args.digests,
        "reason": args.reason,
    }
    try:
        r = httpx.post(
            args.url.rstrip("/") + "/v1/read",
            json=body,
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as err:
        raise OvertError(f"cannot reach {args.url}: {err}") from err
    if r.status_code != 200:
        raise OvertError(f"read refused ({r.status_code}): {r.text.strip()[:300]}")
    for item in r.json()["payloads"]:
        plain = base64.b64decode(item["plaintext"])
        print(item["digest"], json.dumps(json.loads(plain)))
    return 0


def _expire(args: argparse.Namespace) -> int:
    from overt.telemetry.collector import Collector

    collector = Collector(args.dir)
    try:
        for record in collector.expire():
            print(f"deleted {len(record.digests)} payload(s) of {record.customer}: {record.reason}")
    finally:
        collector.close()
    return 0
