"""template.yaml after SAM's own transform (what CloudFormation deploys), offline: the functions'
real roles, with the statements SAM adds (logs, the dead-letter queue, event sources). Runs with
aws-sam-cli's interpreter (.venv-sam), which bundles samtranslator:

    .venv-sam/bin/python local/sam_transform.py > transformed.json

AWS managed policies are named by ARN (SAM would otherwise ask IAM for their ARNs).
"""

from __future__ import annotations

import json
import os
import sys

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform


class _ManagedPolicies:
    """SAM's loader asks IAM; these names are all the template uses (by name, through SAM)."""

    def load(self) -> dict[str, str]:
        return {"AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


def transformed(path: str = "template.yaml") -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # SAM names ARNs with the Region
    with open(path) as handle:
        template = yaml_parse(handle.read())
    # `sam package` would have uploaded the code: an S3 location stands in for it.
    for part in [template.get("Globals", {}).get("Function", {}), *template["Resources"].values()]:
        properties = part.get("Properties", part) if part.get("Type", "").startswith("AWS::Serverless::") else part
        if "CodeUri" in properties:
            properties["CodeUri"] = "s3://review-apps-package/code.zip"
    return transform(template, {"AWS::Region": "us-east-1", "AWS::AccountId": "111122223333"}, _ManagedPolicies())


if __name__ == "__main__":
    json.dump(transformed(*sys.argv[1:]), sys.stdout, indent=1, default=str)
