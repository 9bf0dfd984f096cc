"""`duebook-tally-agent pair --server URL --code CODE`, `run`, `status`, `forget`."""

from __future__ import annotations

import argparse
import logging
import sys

from duebook_tally_agent import __version__
from duebook_tally_agent.relay import Agent, PairingRefused, Revoked, pair
from duebook_tally_agent.store import Store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="duebook-tally-agent",
        description="Relays between Duebook and TallyPrime on this computer.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    paired = commands.add_parser("pair", help="pair with a workspace using a one-time code")
    paired.add_argument("--server", required=True, help="Duebook's address, e.g. https://...")
    paired.add_argument("--code", required=True, help="the code shown on Duebook's Tally page")
    ran = commands.add_parser("run", help="relay until stopped (Ctrl-C)")
    ran.add_argument("--tally", default="http://localhost:9000", help="Tally's address")
    commands.add_parser("status", help="say which Duebook this agent is paired with")
    commands.add_parser("forget", help="delete the agent's token from this computer")
    return parser


def main(argv: list[str] | None = None, store: Store | None = None) -> int:
    args = _parser().parse_args(argv)
    store = store or Store()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "pair":
        try:
            token = pair(args.server.rstrip("/"), args.code)
        except PairingRefused as refusal:
            print(f"Not paired: {refusal}", file=sys.stderr)
            return 2
        where = store.save(args.server.rstrip("/"), token)
        print(f"Paired with {args.server}. The agent's token is kept in {where}.")
        return 0
    found = store.load()
    if args.command == "status":
        print(f"Paired with {found[0]}." if found else "Not paired.")
        return 0 if found else 1
    if args.command == "forget":
        store.forget()
        print("The agent's token is deleted from this computer.")
        return 0
    if not found:
        print("Not paired: run `duebook-tally-agent pair` first.", file=sys.stderr)
        return 2
    agent = Agent(found[0], found[1], tally_url=args.tally)
    try:
        agent.run()
    except Revoked as revoked:
        print(f"Stopped: {revoked}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 0
    finally:
        agent.close()
    return 0
