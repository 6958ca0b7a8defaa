# -*- test-case-name: tests.admin.test_storage -*-
"""
``fjmcp admin migrate`` and ``fjmcp admin copy-store``: the store offline.

``migrate`` applies the pending migrations of the configured store and
exits, so that an operator upgrading several nodes on one PostgreSQL can
move the schema first, on purpose, rather than with whichever node starts
first (the nodes would do it too, one at a time under the advisory lock).

``copy-store --from URL --to URL`` moves a whole store between engines
(SQLite to PostgreSQL when a second node comes, and back), with the daemons
stopped: one transaction on the target, a non-empty target refused, sealed
Forgejo tokens copied sealed and one of them opened with the key file before
the copy commits (every node must share that key file).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fjmcp.admin.commands import AdminCommand, AdminContext
from fjmcp.oauth.keys import KeyFileError, KeyRing, SealError, load_keyring
from fjmcp.store.copy import COPY_SCHEMA_VERSION, copy_rows_txn, read_rows_txn
from fjmcp.store.errors import StoreError
from fjmcp.store.store import SyncStore, open_store_sync_at
from fjmcp.store.target import StoreUrlError, parse_store_url
from fjmcp.store.upstream_tokens import SealedUpstream, upstream_aad

__all__ = ["COMMANDS", "copy_store", "seal_opener"]


def _migrate(ctx: AdminContext, args: argparse.Namespace) -> int:
    if ctx.config is None:
        print("migrate needs --config naming the store", file=sys.stderr)
        return 2
    try:
        target = ctx.config.store_target()
        with open_store_sync_at(target) as store:
            result = store.migration
    except (StoreError, StoreUrlError, OSError) as e:
        print(f"cannot migrate: {e}", file=sys.stderr)
        return 1
    ctx.emit(
        {
            "store": target.described,
            "schema_version": result.version,
            "applied": list(result.applied),
            "backup": result.backup,
        }
    )
    return 0


def seal_opener(keys: KeyRing) -> Any:
    """A ``verify`` for `copy_rows_txn`: open the row's access token, or raise."""

    def verify(row: SealedUpstream) -> None:
        keys.open(row.key_id, row.access_sealed, upstream_aad(row.user_id, "access"))

    return verify


def copy_store(source: SyncStore, target: SyncStore, keys: KeyRing) -> dict[str, Any]:
    """
    Copy every row of ``source`` into the empty ``target`` (see
    `fjmcp.store.copy`); what was copied, by table.
    """
    for store in (source, target):
        if store.migration.version != COPY_SCHEMA_VERSION:
            raise StoreError(
                f"store {store.path} is at schema {store.migration.version}; "
                f"this fjmcp copies schema {COPY_SCHEMA_VERSION}"
            )
    rows = source.run(read_rows_txn)
    report = target.run(copy_rows_txn, rows, seal_opener(keys))
    return {
        "from": source.path,
        "to": target.path,
        "rows": dict(report.counts),
        "sealed_row_opened": report.verified_seal,
    }


def _copy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from", dest="source", required=True, help="Source store URL."
    )
    parser.add_argument("--to", dest="target", required=True, help="Target store URL.")
    parser.add_argument(
        "--keys",
        help="The token key file (default: the config's token_keys_file).",
    )


def _copy(ctx: AdminContext, args: argparse.Namespace) -> int:
    keys_path = args.keys or (ctx.config and ctx.config.token_keys_path)
    if not keys_path:
        print(
            "copy-store needs --keys or --config (the token key file)", file=sys.stderr
        )
        return 2
    try:
        keys = load_keyring(keys_path)
        source_target = parse_store_url(args.source)
        target_target = parse_store_url(args.target)
        with (
            open_store_sync_at(source_target) as source,
            open_store_sync_at(target_target) as target,
        ):
            result = copy_store(source, target, keys)
    except SealError as e:
        print(
            f"copy-store: a sealed Forgejo token does not open with {keys_path} "
            f"({e}); nothing was copied",
            file=sys.stderr,
        )
        return 1
    except (StoreError, StoreUrlError, KeyFileError, OSError) as e:
        print(f"copy-store: {e}; nothing was copied", file=sys.stderr)
        return 1
    ctx.emit(result)
    return 0


COMMANDS = [
    AdminCommand(
        "migrate",
        "Apply the store's pending migrations and exit.",
        _migrate,
    ),
    AdminCommand(
        "copy-store",
        "Copy every row from one store URL into an empty other (daemons stopped).",
        _copy,
        _copy_arguments,
    ),
]
