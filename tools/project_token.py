"""Print the webhook secret token for one project's own hook, or revoke it and print its successor.

    make project-token PROJECT=42                 # the current token (stack from samconfig.toml)
    make project-token PROJECT=42 ROTATE=1        # revoke it: a new one
    python -m tools.project_token 42 --table <RecordsTableName> --secret-parameter <name>

The token is the lowercase hex HMAC-SHA256 of the project's numeric id (and, after a rotation, its
version), keyed with the install's webhook secret. It lets that project's hook speak for that
project only: give it to the project's maintainers, and keep the install secret for system and
group hooks. The version lives in the records table (the stack output RecordsTableName), so the
table is required: without it a revoked token could be handed out. A rotation takes effect at
once; paste the new token into the project's hook right away (make onboard does it).
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


class Refused(Exception):
    """What the operator asked for can't be printed: the message says why and what to do."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="project-token", description=__doc__.split("\n\n")[0])
    parser.add_argument("project_id", type=int, help="the project's numeric id (Settings > General)")
    parser.add_argument("--stack", default="", help="find the table and the secret's parameter in this stack")
    parser.add_argument("--secret-parameter", default="", help="SSM SecureString with the install's webhook secret")
    parser.add_argument("--secret-stdin", action="store_true", help="read the install secret from standard input")
    parser.add_argument(
        "--table",
        default=os.environ.get("TABLE_NAME", ""),
        help="the install's records table (stack output RecordsTableName; default $TABLE_NAME, else the stack's)",
    )
    parser.add_argument("--rotate", action="store_true", help="revoke the project's token and print the new one")
    parser.add_argument("--version", type=int, default=0, help="print this version's token (only the current one)")
    args = parser.parse_args(argv)
    if args.project_id <= 0:
        parser.error("project_id must be a positive number")
    try:
        print(_token(args))
        return 0
    except Refused as exc:
        print(f"project-token: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore's credential, Region and access errors: say what is needed
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError) and exc.response["Error"]["Code"] == "ResourceNotFoundException":
            print(
                f"project-token: no such table {args.table!r} in this account and Region: give the "
                "stack output RecordsTableName (TABLE_NAME=…) or the stack (STACK=…)",
                file=sys.stderr,
            )
            return 1
        if isinstance(exc, (BotoCoreError, ClientError)):
            print(f"project-token: {NEEDS_AWS.format(error=exc)}", file=sys.stderr)
            return 2
        raise


def _token(args: argparse.Namespace) -> str:
    import boto3

    if not args.table or not (args.secret_parameter or args.secret_stdin):
        from tools.install import Clients, Install, InstallError, stack_name

        try:
            install = Install.read(stack_name(args.stack), Clients(boto3.client))
        except InstallError as exc:
            raise Refused(
                f"the project's token version lives in the records table: give TABLE_NAME=<RecordsTableName> "
                f"(and SECRET_PARAMETER=…), or a stack to read them from ({exc.what}; {exc.fix})"
            ) from None
        args.table = args.table or install.outputs.get("RecordsTableName", "")
        args.secret_parameter = args.secret_parameter or install.params.get("WebhookSecretParameterName", "")
    from review_apps.adapters.store import RecordStore

    store = RecordStore(args.table, boto3.client("dynamodb"))
    if args.rotate:
        version = store.rotate_token(args.project_id)
        print(
            f"project {args.project_id}: token version {version}; the old token is refused from now on",
            file=sys.stderr,
        )
    else:
        version = store.token_version(args.project_id)
        if args.version and args.version != version:
            raise Refused(
                f"version {args.version} is not project {args.project_id}'s current token (version {version})"
                + (": it was revoked by a rotation" if args.version < version else ": it does not exist yet")
            )
    if args.secret_stdin:
        secret = sys.stdin.readline().strip()
    else:
        secret = boto3.client("ssm").get_parameter(Name=args.secret_parameter, WithDecryption=True)["Parameter"][
            "Value"
        ]
    if not secret:
        raise Refused("the install secret is empty")
    return project_token(secret, args.project_id, version)


if __name__ == "__main__":
    raise SystemExit(main())
