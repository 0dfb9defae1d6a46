"""Print the webhook secret token for one project's own hook.

    python -m tools.project_token 42                 # reads the install secret from SSM
    python -m tools.project_token 42 --secret-parameter /review-apps/webhook-secret
    echo "$SECRET" | python -m tools.project_token 42 --secret-stdin

The token is the lowercase hex HMAC-SHA256 of the project's numeric id, keyed with the install's
webhook secret. It lets that project's hook speak for that project only: give it to the
project's maintainers, and keep the install secret for system and group hooks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from review_apps.auth import project_token  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="project-token", description=__doc__.split("\n\n")[0])
    parser.add_argument("project_id", type=int, help="the project's numeric id (Settings > General)")
    parser.add_argument("--secret-parameter", default="/review-apps/webhook-secret",
                        help="SSM SecureString with the install's webhook secret")
    parser.add_argument("--secret-stdin", action="store_true", help="read the install secret from standard input")
    args = parser.parse_args(argv)
    if args.project_id <= 0:
        parser.error("project_id must be a positive number")
    if args.secret_stdin:
        secret = sys.stdin.readline().strip()
    else:
        import boto3

        secret = boto3.client("ssm").get_parameter(Name=args.secret_parameter, WithDecryption=True)["Parameter"][
            "Value"]
    if not secret:
        parser.error("the install secret is empty")
    print(project_token(secret, args.project_id))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
