"""Print the webhook secret token for one project's own hook, or revoke it and print its successor.

    python -m tools.project_token 42 --table <RecordsTableName>            # the current token
    python -m tools.project_token 42 --table <RecordsTableName> --rotate   # revoke it: a new one
    echo "$SECRET" | python -m tools.project_token 42 --secret-stdin --version 1

The token is the lowercase hex HMAC-SHA256 of the project's numeric id (and, after a rotation, its
version), keyed with the install's webhook secret. It lets that project's hook speak for that
project only: give it to the project's maintainers, and keep the install secret for system and
group hooks. The version lives in the records table (the stack output RecordsTableName); a
rotation takes effect at once, so paste the new token into the project's hook right away.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from review_apps.auth import project_token

NEEDS_AWS = (
    "this needs AWS credentials and a Region for the install's account (AWS_PROFILE or AWS_ACCESS_KEY_ID…, "
    "and AWS_REGION): {error}"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="project-token", description=__doc__.split("\n\n")[0])
    parser.add_argument("project_id", type=int, help="the project's numeric id (Settings > General)")
    parser.add_argument(
        "--secret-parameter",
        default="/review-apps/webhook-secret",
        help="SSM SecureString with the install's webhook secret",
    )
    parser.add_argument("--secret-stdin", action="store_true", help="read the install secret from standard input")
    parser.add_argument(
        "--table",
        default=os.environ.get("TABLE_NAME", ""),
        help="the install's records table (stack output RecordsTableName; default $TABLE_NAME)",
    )
    parser.add_argument("--rotate", action="store_true", help="revoke the project's token and print the new one")
    parser.add_argument("--version", type=int, default=0, help="print this version's token (no table needed)")
    args = parser.parse_args(argv)
    if args.project_id <= 0:
        parser.error("project_id must be a positive number")
    if args.rotate and not args.table:
        parser.error("--rotate needs --table (or TABLE_NAME): the version lives in the records table")
    try:
        return _print(args, parser)
    except Exception as exc:  # botocore's credential, Region and access errors: say what is needed
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, (BotoCoreError, ClientError)):
            print(f"project-token: {NEEDS_AWS.format(error=exc)}", file=sys.stderr)
            return 2
        raise


def _print(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.secret_stdin:
        secret = sys.stdin.readline().strip()
    else:
        import boto3

        secret = boto3.client("ssm").get_parameter(Name=args.secret_parameter, WithDecryption=True)["Parameter"][
            "Value"
        ]
    if not secret:
        parser.error("the install secret is empty")
    version = args.version
    if not version and args.table:
        import boto3

        from review_apps.adapters.store import RecordStore

        store = RecordStore(args.table, boto3.client("dynamodb"))
        version = store.rotate_token(args.project_id) if args.rotate else store.token_version(args.project_id)
        if args.rotate:
            print(
                f"project {args.project_id}: token version {version}; the old token is refused from now on",
                file=sys.stderr,
            )
    elif not version:
        print(
            "project-token: no --table (or TABLE_NAME): printing the version-1 token, which is the project's "
            "unless it was rotated",
            file=sys.stderr,
        )
        version = 1
    print(project_token(secret, args.project_id, version))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
