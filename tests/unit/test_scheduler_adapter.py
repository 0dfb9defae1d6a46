"""The deadline's schedule: one call in the usual case, the other call when the guess was wrong."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from review_apps.adapters.scheduler import Scheduler, at_expression, schedule_name
from review_apps.settings import load_settings
from tests.unit.test_messages_and_models import ENV


class FakeScheduler:
    """Records calls; answers like EventBridge Scheduler for a schedule that does or doesn't exist."""

    def __init__(self, exists: bool) -> None:
        self.exists, self.calls = exists, []

    def _error(self, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code}}, "op")

    def create_schedule(self, **request):
        self.calls.append(("create", request))
        if self.exists:
            raise self._error("ConflictException")
        self.exists = True

    def update_schedule(self, **request):
        self.calls.append(("update", request))
        if not self.exists:
            raise self._error("ResourceNotFoundException")

    def delete_schedule(self, **request):
        self.calls.append(("delete", request))
        if not self.exists:
            raise self._error("ResourceNotFoundException")
        self.exists = False


SETTINGS = load_settings(ENV)


@pytest.mark.parametrize(
    ("new", "exists", "calls"),
    [
        (True, False, ["create"]),
        (True, True, ["create", "update"]),
        (False, True, ["update"]),
        (False, False, ["update", "create"]),
    ],
)
def test_a_deadline_takes_one_call_when_the_guess_is_right(new, exists, calls):
    client = FakeScheduler(exists)
    Scheduler(SETTINGS, client).set_deadline(14, 3, "arn:task", 1_800_000_000, 1_700_000_000, new=new)
    assert [name for name, _ in client.calls] == calls
    request = client.calls[-1][1]
    assert request["Name"] == schedule_name(14, 3) == "mr-14-3" and request["GroupName"] == "review-apps"
    assert request["ScheduleExpression"] == at_expression(1_800_000_000) == "at(2027-01-15T08:00:00)"
    assert request["ActionAfterCompletion"] == "DELETE" and request["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = request["Target"]
    assert (
        target["Arn"] == "arn:aws:scheduler:::aws-sdk:ecs:stopTask" and target["RoleArn"] == SETTINGS.scheduler_role_arn
    )
    assert json.loads(target["Input"]) == {
        "Cluster": "review-apps",
        "Task": "arn:task",
        "Reason": "Review app reached its deadline (time to live ended)",
    }


def test_a_deadline_in_the_past_fires_a_minute_from_now():
    client = FakeScheduler(False)
    Scheduler(SETTINGS, client).set_deadline(14, 3, "arn:task", 1_000, 1_800_000_000)
    assert client.calls[0][1]["ScheduleExpression"] == at_expression(1_800_000_060)


def test_clearing_a_deadline_that_already_fired_is_fine_and_other_errors_are_not():
    client = FakeScheduler(False)
    Scheduler(SETTINGS, client).clear(14, 3)
    assert client.calls == [("delete", {"Name": "mr-14-3", "GroupName": "review-apps"})]

    class Broken(FakeScheduler):
        def delete_schedule(self, **request):
            raise self._error("AccessDeniedException")

    with pytest.raises(ClientError):
        Scheduler(SETTINGS, Broken(True)).clear(14, 3)
