"""`make smoke-local`: `make smoke`'s very code against a local world it starts and stops itself:
moto with the install in it (its stack included), the GitLab stand-in delivering the sandbox
project's webhook to the local edge, the local ALB, and the cloud that invokes the functions on
ECS events and on the reconciler's schedule (local/cloud.py).

    make smoke-local                  # exit code 0 when the smoke test passed
    python -m local.smoke_local --break no-membership    # see it fail, with the fix

`--break` sets the world up wrong one way, as an operator might find a real install:
no-membership (the bot is not a member of the sandbox project), refused-image (SMOKE_IMAGE is
not one the install allows), unreachable-webhook (GitLab can't reach the webhook URL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3

from local.cloud import Cloud
from local.world import INSTALL_ID, REGION, WEBHOOK_SECRET, World, running_world

SANDBOX_ID, SANDBOX = 200, "sandbox/review-apps-smoke"
LOCAL_IMAGE = "docker.io/library/nginx:stable-alpine"  # under the local install's SharedImagePrefixes
BREAKAGES = ("no-membership", "refused-image", "unreachable-webhook")


@contextlib.contextmanager
def local_install(breakage: str = "", world: World | None = None) -> Iterator[tuple[World, Any]]:
    """The local world (`world`, an installed address-mode one, or a new one) with a deployed
    stack and a sandbox project set up as `make onboard` would."""
    if world is None:
        with running_world(alb=True) as fresh, local_install(breakage, fresh) as made:
            yield made
        return
    import requests

    from tools.install import Clients, Install  # puts functions/ on the path

    from review_apps.auth import project_token  # isort: skip

    world.deploy_stack(INSTALL_ID)
    install = Install.read(INSTALL_ID, Clients(lambda service: boto3.client(service, region_name=REGION)))
    state = world.gitlab.state
    sandbox = state.add_project(SANDBOX_ID, SANDBOX)
    if breakage != "no-membership":
        sandbox.members[99] = 30  # the bot, as Developer
    sandbox.hooks.append(
        {
            "id": state.next_id(),
            "url": install.outputs["WebhookUrl"],
            "project_id": SANDBOX_ID,
            "token": project_token(WEBHOOK_SECRET, SANDBOX_ID, 1),
            "merge_requests_events": True,
            "pipeline_events": True,
            "note_events": True,
            "push_events": False,
            "tag_push_events": False,
            "enable_ssl_verification": True,
        }
    )
    # GitLab reaches the webhook through the edge; with the breakage, it can't resolve its host.
    state.hook_transport = requests.Session() if breakage == "unreachable-webhook" else world.edge().session()
    cloud = Cloud(world, reconcile_every=2.0).start()
    try:
        yield world, install
    finally:
        cloud.stop()
        state.hook_transport = None


def run(
    breakage: str = "", say: Callable[[str], None] = print, timeout: float = 60.0, world: World | None = None
) -> bool:
    from tools.smoke import Smoke

    with local_install(breakage, world) as (world, install):
        image = "docker.io/someone/webserver:1" if breakage == "refused-image" else LOCAL_IMAGE
        smoke = Smoke(install, world.edge().session(), project=SANDBOX, image=image, timeout=timeout, poll=0.3, say=say)
        return smoke.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smoke-local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--break", dest="breakage", choices=BREAKAGES, default="")
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")  # the functions' logs: only their errors here
    return 0 if run(args.breakage) else 1


if __name__ == "__main__":
    raise SystemExit(main())
