"""One DynamoDB item per merge request, written only if nobody else wrote it since we read it.

Under running caps, one more item per cap scope (`slots#all`, `slots#project/<id>`) holds the
set of MRs whose app runs. A record write that starts or ends an app changes that set in
the same transaction, so the set and the records can never disagree, and the cap condition
is checked by DynamoDB itself: two launches racing for the last slot cannot both win."""

from __future__ import annotations

import dataclasses
import secrets
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from review_apps.lifecycle import Caps, Slot, slot_scopes
from review_apps.model.record import Record
from review_apps.model.values import Status

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# What a queued record's place and start need (store.waiting).
_QUEUE_FIELDS = (
    "project_id",
    "mr_iid",
    "rev",
    "status",
    "queued_at",
    "queue_place",
    "retry_at",
    "note_id",
    "commit_sha",
    "source_project_id",
    "source_branch",
    "project_path",
)


class Conflict(Exception):
    """Another invocation changed the record between our read and our write."""


class SlotsTaken(Exception):
    """Every slot of a cap scope is held by another MR's app."""

    def __init__(self, scope: str, cap: int) -> None:
        super().__init__(f"all {cap} running slots of '{scope}' are taken")
        self.scope, self.cap = scope, cap


TOKEN_VERSION = "project-token#"  # a project's webhook token version: not an MR record (scans skip it)


def _key(project_id: int, mr_iid: int) -> dict[str, Any]:
    return {"pk": {"S": f"mr#{project_id}/{mr_iid}"}}


class RecordStore:
    def __init__(self, table_name: str, dynamodb: Any, caps: Caps | None = None) -> None:
        self._table = table_name
        self._db = dynamodb
        self._caps = caps or Caps()

    def get(self, project_id: int, mr_iid: int) -> Record | None:
        answer = self._db.get_item(TableName=self._table, Key=_key(project_id, mr_iid), ConsistentRead=True)
        item = answer.get("Item")
        return self._record(item) if item else None

    def all(self) -> list[Record]:
        """Every MR record (the reconciler's view; a few hundred items at most in practice)."""
        records: list[Record] = []
        for page in self._db.get_paginator("scan").paginate(
            TableName=self._table,
            ConsistentRead=True,
            FilterExpression="begins_with(pk, :mr)",
            ExpressionAttributeValues={":mr": {"S": "mr#"}},
        ):
            records.extend(self._record(item) for item in page["Items"])
        return records

    def waiting(self) -> list[Record]:
        """The queued MRs' records, with only what ordering, numbering and starting them needs
        (never to be saved as they are): a small read however many MRs are open."""
        records: list[Record] = []
        names = {f"#{n}": n for n in _QUEUE_FIELDS}
        for page in self._db.get_paginator("scan").paginate(
            TableName=self._table,
            ConsistentRead=True,
            FilterExpression="begins_with(pk, :mr) AND #status = :queued",
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":mr": {"S": "mr#"}, ":queued": {"S": Status.QUEUED.value}},
        ):
            records.extend(self._record(item) for item in page["Items"])
        return records

    @staticmethod
    def _record(item: dict[str, Any]) -> Record:
        plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
        plain = {k: int(v) if isinstance(v, Decimal) else v for k, v in plain.items()}
        return Record.from_item(plain)

    def save(self, record: Record, slots: str = Slot.NONE) -> Record:
        """Write `record` if the stored rev is still `record.rev`; return it with the new rev.
        `slots` (lifecycle.slot_change) says whether the write takes, keeps or frees a slot."""
        saved = dataclasses.replace(record, rev=record.rev + 1)
        # A zero expires_at would read as "long expired" to DynamoDB's TTL: leave it out instead.
        item = {k: _serializer.serialize(v) for k, v in saved.to_item().items() if k != "expires_at" or v}
        item.update(_key(record.project_id, record.mr_iid))
        # This write's own mark: two writers putting the same record are still told apart (_stored_as).
        item["write_id"] = {"S": secrets.token_hex(8)}
        if record.rev == 0:
            condition, values = "attribute_not_exists(pk)", {}
        else:
            condition, values = "rev = :rev", {":rev": {"N": str(record.rev)}}
        put: dict[str, Any] = {"TableName": self._table, "Item": item, "ConditionExpression": condition}
        if values:
            put["ExpressionAttributeValues"] = values
        scopes = slot_scopes(self._caps, record.project_id) if slots else ()
        if not scopes:
            try:
                self._db.put_item(**put)
            except self._db.exceptions.ConditionalCheckFailedException:
                if self._stored_as(item):
                    return saved
                raise Conflict(f"record {record.key} changed since rev {record.rev}") from None
            return saved
        updates = [self._slot_update(scope, cap, record.key, slots) for scope, cap in scopes]
        try:
            self._db.transact_write_items(TransactItems=[{"Put": put}, *updates])
        except self._db.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in reasons and self._stored_as(item):
                return saved  # the transaction is all or nothing: its slot change was applied too
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise Conflict(f"record {record.key} changed since rev {record.rev}") from None
            for (scope, cap), code in zip(scopes, reasons[1:], strict=False):
                if code == "ConditionalCheckFailed":
                    raise SlotsTaken(scope, cap) from None
            raise
        return saved

    def _stored_as(self, item: dict[str, Any]) -> bool:
        """Whether the stored item is exactly `item`. A write whose answer was lost (a timeout, a
        5xx) and that botocore sent again fails its own condition the second time: if what is
        stored is what we wrote, the write succeeded, and no other writer won anything."""
        stored = self._db.get_item(TableName=self._table, Key={"pk": item["pk"]}, ConsistentRead=True).get("Item")
        return stored == item

    def keep(self, ask: str, at: int, mr: tuple[int, int]) -> bool:
        """Keep a delivery that could not be served (lifecycle.kept) on the MR's record, unless a
        newer one is kept already. The record's rev moves on, so a writer that read it before
        looks again and carries the ask along. Creates a bare record for an MR we never saw."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(*mr),
                UpdateExpression=(
                    "SET pending_ask = :ask, pending_at = :at, project_id = :project, mr_iid = :iid, "
                    "#status = if_not_exists(#status, :none), rev = if_not_exists(rev, :zero) + :one"
                ),
                ConditionExpression="attribute_not_exists(pending_at) OR pending_at <= :at",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":none": {"S": ""},
                    ":ask": {"S": ask},
                    ":at": {"N": str(at)},
                    ":project": {"N": str(mr[0])},
                    ":iid": {"N": str(mr[1])},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False  # a newer ask is kept already: it supersedes this one
        return True

    def drop_kept(self, record: Record) -> bool:
        """Forget the kept ask `record` carries, if it is still the one kept (not a newer one). A
        bare record that only carried it (an MR that turned out to need nothing) goes with it."""
        current = self.get(record.project_id, record.mr_iid)
        if current is not None and current.status == Status.NONE and not (current.note_id or current.last_command):
            try:
                self._db.delete_item(
                    TableName=self._table,
                    Key=_key(record.project_id, record.mr_iid),
                    ConditionExpression="pending_at = :at AND pending_ask = :ask AND rev = :rev",
                    ExpressionAttributeValues={
                        ":at": {"N": str(record.pending_at)},
                        ":ask": {"S": record.pending_ask},
                        ":rev": {"N": str(current.rev)},
                    },
                )
            except self._db.exceptions.ConditionalCheckFailedException:
                return False
            return True
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(record.project_id, record.mr_iid),
                UpdateExpression="REMOVE pending_ask, pending_at SET rev = rev + :one",
                ConditionExpression="pending_at = :at AND pending_ask = :ask",
                ExpressionAttributeValues={
                    ":at": {"N": str(record.pending_at)},
                    ":ask": {"S": record.pending_ask},
                    ":one": {"N": "1"},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _slot_update(self, scope: str, cap: int, mr: str, slots: str) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": f"slots#{scope}"}},
            # Set operations are idempotent: a retried release or take changes nothing.
            "UpdateExpression": "DELETE holders :me" if slots == Slot.RELEASE else "ADD holders :me",
            "ExpressionAttributeValues": {":me": {"SS": [mr]}},
        }
        if slots == Slot.TAKE:
            update["ConditionExpression"] = (
                "attribute_not_exists(holders) OR contains(holders, :mr) OR size(holders) < :cap"
            )
            update["ExpressionAttributeValues"].update({":mr": {"S": mr}, ":cap": {"N": str(cap)}})
        return {"Update": update}

    def correct_slot(self, scope: str, mr: str, hold: bool, record: Record | None) -> bool:
        """Add `mr` to (or take it out of) `scope`'s set, provided `record` is still what the
        correction was based on (or there is still no record). False if it moved on meanwhile."""
        project_id, mr_iid = (int(part) for part in mr.split("/"))
        check: dict[str, Any] = {"TableName": self._table, "Key": _key(project_id, mr_iid)}
        if record is None:
            check["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            check["ConditionExpression"] = "rev = :rev"
            check["ExpressionAttributeValues"] = {":rev": {"N": str(record.rev)}}
        update = self._slot_update(scope, 0, mr, Slot.KEEP if hold else Slot.RELEASE)
        try:
            self._db.transact_write_items(TransactItems=[{"ConditionCheck": check}, update])
        except self._db.exceptions.TransactionCanceledException:
            return False
        return True

    def token_version(self, project_id: int) -> int:
        """The project's webhook token version (1 until a rotation), read consistently: a rotated
        token stops working at once."""
        item = self._db.get_item(
            TableName=self._table, Key={"pk": {"S": f"{TOKEN_VERSION}{project_id}"}}, ConsistentRead=True
        ).get("Item")
        return int(item["version"]["N"]) if item else 1

    def rotate_token(self, project_id: int) -> int:
        """The project's next token version (the old token is refused from now on)."""
        answer = self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"{TOKEN_VERSION}{project_id}"}},
            UpdateExpression="SET version = if_not_exists(version, :one) + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["version"]["N"])

    def holders(self, scope: str) -> set[str]:
        """The MRs holding a slot of `scope` (for the queue's cheap "is there room?" look)."""
        answer = self._db.get_item(TableName=self._table, Key={"pk": {"S": f"slots#{scope}"}}, ConsistentRead=True)
        return set(answer.get("Item", {}).get("holders", {}).get("SS", []))
