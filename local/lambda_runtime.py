"""Call a function's handler the way Lambda would, found through template.yaml.

`load_handler("WebhookFunction")` reads the function's CodeUri and Handler from the template
and imports the module fresh, which is what a cold start does: settings are read again from
the environment, and no state leaks from an earlier "container".
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The function (template logical id) whose handler is running in this thread, for the suite's
# record of the AWS operations each function makes (tests/conftest.py).
RUNNING_FUNCTION: contextvars.ContextVar[str] = contextvars.ContextVar("running_function", default="")


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation's short-form tags (!Ref, !Sub…) as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _any_tag)


def load_template(path: Path | None = None) -> dict[str, Any]:
    return yaml.load((path or ROOT / "template.yaml").read_text(), Loader=_CfnLoader)


def function_properties(logical_id: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    template = template or load_template()
    props = dict((template.get("Globals") or {}).get("Function") or {})
    resource = template["Resources"][logical_id]
    if resource["Type"] != "AWS::Serverless::Function":
        raise ValueError(f"{logical_id} is not an AWS::Serverless::Function")
    props.update(resource["Properties"])
    return props


def load_handler(logical_id: str) -> Callable[[dict, Any], Any]:
    props = function_properties(logical_id)
    code_dir = str((ROOT / props["CodeUri"]).resolve())
    module_name, function_name = props["Handler"].rsplit(".", 1)
    module_name = module_name.replace("/", ".")
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    # A cold start: the handler and the shared package are imported anew (fresh settings,
    # fresh clients), as in a new Lambda container.
    fresh = (module_name.split(".")[0], "review_apps")
    for name in [n for n in sys.modules if n in fresh or n.startswith(tuple(p + "." for p in fresh))]:
        del sys.modules[name]
    module = importlib.import_module(module_name)
    handler = getattr(module, function_name)

    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        token = RUNNING_FUNCTION.set(logical_id)
        try:
            return handler(event, context)
        finally:
            RUNNING_FUNCTION.reset(token)

    return invoke


@dataclass
class LambdaContext:
    function_name: str = "review-apps-local"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:111122223333:function:review-apps-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/review-apps-local"
    log_stream_name: str = "local"

    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        """What Lambda says: the function's Timeout (template.yaml) less the time since the call began."""
        timeout = _timeouts().get(self.function_name, 10)
        return max(int((self.started + timeout - time.monotonic()) * 1000), 0)


@lru_cache(maxsize=1)
def _timeouts() -> dict[str, float]:
    template = load_template()
    default = ((template.get("Globals") or {}).get("Function") or {}).get("Timeout", 3)
    return {
        name: float(resource["Properties"].get("Timeout", default))
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
