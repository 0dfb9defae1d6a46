"""One DynamoDB item per merge request, written only if nobody else wrote it since we read it."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from review_apps.models import Record

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class Conflict(Exception):
    """Another invocation changed the record between our read and our write."""


def _key(project_id: int, mr_iid: int) -> dict[str, Any]:
    return {"pk": {"S": f"mr#{project_id}/{mr_iid}"}}


class RecordStore:
    def __init__(self, table_name: str, dynamodb) -> None:
        self._table = table_name
        self._db = dynamodb

    def get(self, project_id: int, mr_iid: int) -> Record | None:
        answer = self._db.get_item(TableName=self._table, Key=_key(project_id, mr_iid), ConsistentRead=True)
        item = answer.get("Item")
        return self._record(item) if item else None

    def all(self) -> list[Record]:
        """Every MR record (the reconciler's view; a few hundred items at most in practice)."""
        records = []
        for page in self._db.get_paginator("scan").paginate(
            TableName=self._table,
            ConsistentRead=True,
            FilterExpression="begins_with(pk, :mr)",
            ExpressionAttributeValues={":mr": {"S": "mr#"}},
        ):
            records.extend(self._record(item) for item in page["Items"])
        return records

    @staticmethod
    def _record(item: dict[str, Any]) -> Record:
        plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
        plain = {k: int(v) if isinstance(v, Decimal) else v for k, v in plain.items()}
        return Record.from_item(plain)

    def save(self, record: Record) -> Record:
        """Write `record` if the stored rev is still `record.rev`; return it with the new rev."""
        saved = dataclasses.replace(record, rev=record.rev + 1)
        # A zero expires_at would read as "long expired" to DynamoDB's TTL: leave it out instead.
        item = {k: _serializer.serialize(v) for k, v in saved.to_item().items() if k != "expires_at" or v}
        item.update(_key(record.project_id, record.mr_iid))
        if record.rev == 0:
            condition, values = "attribute_not_exists(pk)", {}
        else:
            condition, values = "rev = :rev", {":rev": {"N": str(record.rev)}}
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": item, "ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._db.put_item(**kwargs)
        except self._db.exceptions.ConditionalCheckFailedException:
            raise Conflict(f"record {record.key} changed since rev {record.rev}") from None
        return saved
