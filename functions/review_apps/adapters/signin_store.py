"""Sign-in state in a table of its own (never beside the MR records that the reconciler, the queue
and the wake path scan): sign-ins waiting on GitLab, provider sessions, codes, access tokens,
remembered membership answers and per-session request counts. Each item is keyed by a SHA-256 of
its secret (a leaked table holds nothing a browser or the load balancer could present), expires by
DynamoDB's TTL, and is checked against the clock on read because TTL deletion lags. A code and a
pending sign-in are taken once: a conditional delete, so a replay finds nothing even when two
arrive at the same moment.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from botocore.exceptions import ClientError

PENDING, SESSION, CODE, TOKEN = "signin-pending#", "signin-session#", "signin-code#", "signin-token#"
MEMBER, RATE = "signin-member#", "signin-rate#"
MAX_ITEM_BYTES = 2048  # what a stranger can make us store: every item stays this small


def _key(kind: str, secret: str) -> dict[str, Any]:
    return {"pk": {"S": kind + hashlib.sha256(secret.encode()).hexdigest()}}


class SignInStore:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._db = dynamodb

    def put(self, kind: str, secret: str, data: dict[str, Any], lifetime: int, *, replace: bool = False) -> None:
        """Store `data` for `lifetime` seconds (a new item, unless `replace`: a cached answer)."""
        expires = int(time.time()) + lifetime
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > MAX_ITEM_BYTES:
            raise ValueError(f"a {kind} item would hold {len(text)} bytes")
        item = {**_key(kind, secret), "data": {"S": text}, "expires_at": {"N": str(expires)}}
        condition = {} if replace else {"ConditionExpression": "attribute_not_exists(pk)"}
        self._db.put_item(TableName=self._table, Item=item, **condition)

    def within_rate(self, secret: str, per_minute: int) -> bool:
        """Count one request for the session `secret` in this minute; False past `per_minute`."""
        now = int(time.time())
        minute = now // 60
        answer = self._db.update_item(
            TableName=self._table,
            Key=_key(RATE, f"{secret}#{minute}"),
            UpdateExpression="ADD hits :one SET expires_at = :expires",
            ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": str((minute + 2) * 60)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["hits"]["N"]) <= per_minute

    def get(self, kind: str, secret: str) -> dict[str, Any] | None:
        item = self._db.get_item(TableName=self._table, Key=_key(kind, secret), ConsistentRead=True).get("Item")
        return _live(item)

    def take(self, kind: str, secret: str) -> dict[str, Any] | None:
        """The item, deleted in the same request; None if it was never there, is taken or expired."""
        try:
            answer = self._db.delete_item(
                TableName=self._table,
                Key=_key(kind, secret),
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return _live(answer.get("Attributes"))


def _live(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if not item or int(item.get("expires_at", {}).get("N", "0")) <= int(time.time()):
        return None
    data = json.loads(item["data"]["S"])
    return data if isinstance(data, dict) else None
