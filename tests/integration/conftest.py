"""One moto server and one GitLab stand-in per test session; each test gets a fresh install."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from local.fault_proxy import FaultProxy
from local.gitlab_standin import GitLabStandIn
from local.world import GITLAB_TOKEN, MotoServer, World
from tests.conftest import TALLY


@pytest.fixture(scope="session")
def moto_server():
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gitlab_server():
    server = GitLabStandIn(GITLAB_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def make_world(moto_server, gitlab_server):
    """`make_world(ASSIGN_PUBLIC_IP="ENABLED")` installs with other settings."""
    saved = dict(os.environ)
    made: list[World] = []

    def make(alb: bool = False, **settings: str) -> World:
        made.append(World(moto_server, gitlab_server, alb=alb, **settings))
        return made[-1].install()

    yield make
    for world in made:
        world.close()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def world(make_world) -> World:
    return make_world()


@pytest.fixture
def alb_world(make_world) -> World:
    """Address mode: each MR's app behind https://<host>.review.example.test on a shared ALB."""
    return make_world(alb=True)


@pytest.fixture
def make_fault_world(moto_server, gitlab_server):
    """`make_fault_world(MAX_RUNNING_APPS="3")`: a world whose AWS calls pass through a FaultProxy
    (moto behind it), installed with those settings."""
    saved = dict(os.environ)
    proxies: list[FaultProxy] = []

    def make(**settings: str) -> World:
        proxies.append(FaultProxy(moto_server.url))
        world = World(moto_server, gitlab_server, aws_endpoint=proxies[-1].url, **settings).install()
        world.proxy = proxies[-1]
        return world

    yield make
    for proxy in proxies:
        proxy.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def fault_world(make_fault_world) -> World:
    """A world whose AWS calls pass through a FaultProxy (moto behind it)."""
    return make_fault_world()


@pytest.fixture
def tally() -> Counter[str]:
    return TALLY
