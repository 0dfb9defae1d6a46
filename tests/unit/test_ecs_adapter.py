"""ECS answers moto never gives (RunTask `failures`, a missing task definition), checked
against botocore's Stubber, which validates our requests against the real API model."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from review_apps.adapters import ecs as ecs_adapter
from review_apps.adapters.ecs import Ecs, TaskDefinitionNotFound
from review_apps.settings import load_settings
from tests.unit.factories import record
from tests.unit.test_messages_and_models import ENV

TD = "arn:aws:ecs:us-east-1:111122223333:task-definition/review-app_review-apps-test_14-3:1"


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch):
    monkeypatch.setattr(ecs_adapter, "CAPACITY_RETRY_PAUSES", (0, 0))


@pytest.fixture
def ecs():
    client = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield Ecs(load_settings({**ENV, "ASSIGN_PUBLIC_IP": "ENABLED"}), client, lambda: ec2), stub


NO_CAPACITY = {
    "tasks": [],
    "failures": [{"arn": TD, "reason": "Capacity is unavailable at this time.", "detail": "FARGATE"}],
}


def run_request(rec, token):
    return {
        "cluster": "review-apps",
        "taskDefinition": TD,
        "launchType": "FARGATE",
        "count": 1,
        "group": "review-app:14:3",
        "startedBy": rec.launch_id,
        "clientToken": token,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-1", "subnet-2"],
                "securityGroups": ["sg-1"],
                "assignPublicIp": "ENABLED",
            }
        },
        "enableECSManagedTags": True,
        "tags": ANY,
    }


def test_no_capacity_is_tried_three_times_then_returned_as_the_reason(ecs):
    adapter, stub = ecs
    rec = record()
    for token in (rec.launch_id, rec.launch_id + "-1", rec.launch_id + "-2"):
        stub.add_response("run_task", NO_CAPACITY, run_request(rec, token))
    result = adapter.run(rec, TD)
    assert result.task_arn is None
    assert result.failures == ("Capacity is unavailable at this time.: FARGATE",)
    stub.assert_no_pending_responses()


def test_capacity_coming_back_launches(ecs):
    adapter, stub = ecs
    rec = record()
    stub.add_response("run_task", NO_CAPACITY, run_request(rec, rec.launch_id))
    task = {"taskArn": "arn:aws:ecs:us-east-1:111122223333:task/review-apps/abc"}
    stub.add_response("run_task", {"tasks": [task], "failures": []}, run_request(rec, rec.launch_id + "-1"))
    assert adapter.run(rec, TD).task_arn == task["taskArn"]


def test_throttling_is_retried_then_reported_not_raised(ecs):
    adapter, stub = ecs
    for _ in range(3):
        stub.add_client_error("run_task", service_error_code="ThrottlingException", service_message="Rate exceeded")
    result = adapter.run(record(), TD)
    assert result.task_arn is None and result.failures == ("ThrottlingException: Rate exceeded",)


def test_other_failures_are_not_retried(ecs):
    adapter, stub = ecs
    stub.add_client_error("run_task", service_error_code="AccessDeniedException", service_message="no PassRole")
    assert adapter.run(record(), TD).failures == ("AccessDeniedException: no PassRole",)
    stub.assert_no_pending_responses()


def test_missing_task_definition_is_its_own_error(ecs):
    adapter, stub = ecs
    stub.add_client_error(
        "describe_task_definition",
        service_error_code="ClientException",
        service_message="Unable to describe task definition.",
    )
    with pytest.raises(TaskDefinitionNotFound, match="Unable to describe task definition"):
        adapter.describe_task_definition("nope")


def test_stopping_a_task_that_is_gone_is_fine(ecs):
    adapter, stub = ecs
    stub.add_client_error("stop_task", service_error_code="InvalidParameterException", service_message="gone")
    adapter.stop("arn:aws:ecs:us-east-1:111122223333:task/review-apps/x", "because")
    stub.assert_no_pending_responses()
