"""`make local-services`: the local AWS emulator and the GitLab stand-in on fixed host ports, with
an install in them, for functions that `sam local invoke` runs in Docker.

    make local-services            # keeps running; Ctrl-C stops it
    make invoke FUNCTION=WebhookFunction EVENT=webhook_merge_request_open.json   # another shell

It writes events/local-env.json (this run's resource ids, which moto makes anew each time) for
`sam local invoke --env-vars`: every function's configuration, pointed at host.docker.internal,
where SAM's containers reach this machine. The install is in address mode with sign-in, as a
production install would be, and its webhook secret is the one the webhook samples carry.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Any

from local.gitlab_standin import GitLabStandIn
from local.lambda_runtime import ROOT, load_template
from local.world import GITLAB_TOKEN, INSTALL_ID, MotoServer, World

SAMPLE_WEBHOOK_SECRET = "sample-webhook-secret"  # what the events/ webhook samples carry
ENV_FILE = ROOT / "events" / "local-env.json"
CONTAINER_HOST = "host.docker.internal"
# The samples' MR: its commits, as the GitLab stand-in serves them (head and pushed commit).
SAMPLE_SPEC = "task_definition: shop-web\ntrigger: merge_request\nttl: 30m\nsleep_after: 15m\n"


def start(
    bind: str, aws_port: int, gitlab_port: int, host_for_functions: str = CONTAINER_HOST, edge_port: int = 0
) -> tuple[World, dict]:
    """Start both services, install into them, and return (world, the env-vars file's content)."""
    moto = MotoServer(bind, aws_port)
    gitlab = GitLabStandIn(GITLAB_TOKEN, bind, gitlab_port).start()
    world = World(moto, gitlab, alb=True).install()
    world.deploy_stack(INSTALL_ID)  # what make doctor LOCAL=1 reads
    world.edge(edge_port)  # the stack's WebhookUrl, for make doctor LOCAL=1
    world.ssm.put_parameter(
        Name="/review-apps/webhook-secret", Value=SAMPLE_WEBHOOK_SECRET, Type="SecureString", Overwrite=True
    )
    _seed_sample_mr(world)
    return world, env_vars(world, host_for_functions)


def point_at_local_services() -> Any:
    """For make doctor LOCAL=1 in another shell: AWS calls go to this machine's moto, https:// to
    the local edge (the stack's WebhookUrl). Returns the HTTP session to use."""
    from local.edge import _ToEdge

    edge_port = int(os.environ.get("LOCAL_EDGE_PORT", "8443"))
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{os.environ.get('LOCAL_AWS_PORT', '5000')}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    import requests
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    session = requests.Session()
    session.mount("https://", _ToEdge(edge_port))
    return session


def _seed_sample_mr(world: World) -> None:
    samples = ROOT / "events"
    heads = set()
    for name in ("webhook_merge_request_open.json", "webhook_merge_request_push.json", "webhook_pipeline_success.json"):
        body = json.loads(json.loads((samples / name).read_text())["body"])
        attributes = body["object_attributes"]
        heads.add((attributes.get("last_commit") or {}).get("id") or attributes.get("sha"))
    for sha in heads:
        world.commit(sha, spec=SAMPLE_SPEC)
    opened = json.loads(json.loads((samples / "webhook_merge_request_open.json").read_text())["body"])
    sha = opened["object_attributes"]["last_commit"]["id"]
    world.gitlab.state.open_merge_request(
        14, opened["object_attributes"]["iid"], sha=sha, source_branch=opened["object_attributes"]["source_branch"]
    )


def env_vars(world: World, host: str) -> dict[str, Any]:
    """The configuration every function gets (the template's variables), as an env-vars file."""
    declared = set(load_template()["Globals"]["Function"]["Environment"]["Variables"])
    values = {name: os.environ[name] for name in declared if name in os.environ}
    values["AWS_ENDPOINT_URL"] = world.moto.url
    values["GITLAB_URL"] = world.gitlab.url
    for name, value in values.items():
        values[name] = value.replace("127.0.0.1", host)
    # WakeFunction's and AuthFunction's own overrides in the template (see there), kept here too.
    return {"Parameters": values, "WakeFunction": {"WAKE_TARGET_GROUP_ARN": ""}, "AuthFunction": {"OIDC_ISSUER": ""}}


def main() -> None:
    bind = os.environ.get("LOCAL_BIND", "0.0.0.0")  # SAM's containers come in through the Docker bridge
    aws_port, gitlab_port = (
        int(os.environ.get("LOCAL_AWS_PORT", "5000")),
        int(os.environ.get("LOCAL_GITLAB_PORT", "8929")),
    )
    world, env = start(bind, aws_port, gitlab_port, edge_port=int(os.environ.get("LOCAL_EDGE_PORT", "8443")))
    ENV_FILE.write_text(json.dumps(env, indent=2) + "\n")
    print(
        f"AWS (moto) on {bind}:{aws_port}, GitLab stand-in on {bind}:{gitlab_port}; wrote {ENV_FILE.relative_to(ROOT)}"
    )
    print("In another shell (Docker needed), for example:")
    print("  make invoke FUNCTION=WebhookFunction EVENT=webhook_merge_request_open.json")
    print("  make invoke FUNCTION=AuthFunction EVENT=auth_discovery.json")
    print("  make doctor LOCAL=1     # the install's checks, against these services")
    print("Ctrl-C stops the services.")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    world.gitlab.stop()
    world.moto.stop()


if __name__ == "__main__":
    main()
