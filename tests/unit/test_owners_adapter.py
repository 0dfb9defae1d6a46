"""The owners adapter: a tag is read once a minute per role or repository, a missing one reads
like an untagged one, and an access problem is the operator's, so it is raised."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from review_apps.adapters import owners as owners_module
from review_apps.adapters.owners import Owners
from review_apps.ownership import ImageRules

RULES = ImageRules("111122223333", "eu-west-1")


def error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "op")


class Iam:
    def __init__(self, tags: dict[str, list[dict]]) -> None:
        self.tags, self.calls = tags, []

    def get_paginator(self, name: str):
        assert name == "list_role_tags"
        return self

    def paginate(self, RoleName: str):
        self.calls.append(RoleName)
        if RoleName not in self.tags:
            raise error("NoSuchEntity")
        return [{"Tags": self.tags[RoleName]}]


class Ecr:
    def __init__(self, answer) -> None:
        self.answer, self.calls = answer, []

    def list_tags_for_resource(self, resourceArn: str):
        self.calls.append(resourceArn)
        if isinstance(self.answer, Exception):
            raise self.answer
        return {"tags": self.answer}


def test_role_tags_are_read_once_a_minute(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(owners_module.time, "monotonic", lambda: clock[0])
    iam = Iam({"shop": [{"Key": "other", "Value": "x"}, {"Key": "review-apps:projects", "Value": "acme/"}]})
    owners = Owners(lambda: iam, lambda: None, RULES)
    arn = "arn:aws:iam::111122223333:role/team/shop"
    assert owners.role_tags([arn]) == {arn: "acme/"}
    clock[0] += 59
    assert owners.role_tags([arn]) == {arn: "acme/"} and iam.calls == ["shop"]
    clock[0] += 2
    owners.role_tags([arn])
    assert iam.calls == ["shop", "shop"]


def test_a_missing_role_or_repository_reads_like_an_untagged_one():
    owners = Owners(lambda: Iam({"untagged": []}), lambda: Ecr(error("RepositoryNotFoundException")), RULES)
    roles = owners.role_tags(["arn:aws:iam::1:role/gone", "arn:aws:iam::1:role/untagged"])
    assert set(roles.values()) == {None}
    assert owners.repository_tags(["nope"]) == {"nope": None}


def test_repository_tags_are_read_by_this_accounts_arn():
    ecr = Ecr([{"Key": "review-apps:projects", "Value": "42"}])
    assert Owners(lambda: None, lambda: ecr, RULES).repository_tags(["team/web"]) == {"team/web": "42"}
    assert ecr.calls == ["arn:aws:ecr:eu-west-1:111122223333:repository/team/web"]


def test_an_access_problem_is_raised_not_read_as_untagged():
    owners = Owners(lambda: None, lambda: Ecr(error("AccessDeniedException")), RULES)
    with pytest.raises(ClientError):
        owners.repository_tags(["web"])
