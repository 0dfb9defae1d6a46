"""What `sam local invoke` would give each function as its environment, asked of SAM CLI's own code.

Runs with aws-sam-cli's interpreter (.venv-sam), which the functions' packages can't share:

    .venv-sam/bin/python local/sam_env.py events/local-env.json WebhookFunction AuthFunction

prints {function: {variable: value}} as JSON, from template.yaml, the env-vars file and the
parameter overrides the README gives (--parameter-overrides), resolved exactly as SAM resolves
them for the container (the shell's AWS credentials and Region included).
"""

from __future__ import annotations

import json
import sys

from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

# The README's `make invoke` passes these: an address-mode install with sign-in, as in production.
PARAMETER_OVERRIDES = {"GitLabUrl": "http://host.docker.internal:8929", "ReviewAppAccess": "members"}


def environments(env_vars_file: str, functions: list[str], region: str = "us-east-1") -> dict[str, dict[str, str]]:
    with open(env_vars_file) as handle:
        env_vars = json.load(handle)
    stacks, _ = SamLocalStackProvider.get_stacks("template.yaml", parameter_overrides=PARAMETER_OVERRIDES)
    provider = SamFunctionProvider(stacks)
    runner = LocalLambdaRunner(
        local_runtime=None,  # type: ignore[arg-type]  # nothing is run: only the configuration is asked for
        function_provider=provider,
        cwd=".",
        real_path=".",
        env_vars_values=env_vars,
        aws_region=region,
    )
    found = {}
    for name in functions:
        function = provider.get(name)
        if function is None:
            raise SystemExit(f"{name} is not a function of template.yaml")
        found[name] = runner.get_invoke_config(function).env_vars.resolve()
    return found


if __name__ == "__main__":
    print(json.dumps(environments(sys.argv[1], sys.argv[2:])))
