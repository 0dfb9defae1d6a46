"""`make onboard PROJECT=group/name`: set a GitLab project up for review apps, or say exactly
what is missing; `make doctor PROJECT=group/name` checks the same without changing anything.

    make onboard PROJECT=shop/web                          # with the bot's token (the stack's)
    MAINTAINER_TOKEN=glpat-… make onboard PROJECT=shop/web  # a maintainer's, for this run only
    make onboard PROJECT=shop/web DRY_RUN=1                # print what it would do

It makes sure of, in order: the project exists and the bot is a member with Developer access
(adding it, with a maintainer's token); the project's webhook points at the stack's WebhookUrl
with the project's own token, merge request, pipeline and comment events, and SSL verification
(creating or correcting it); the roles, base task definition and ECR repository the spec needs
carry the project in their `review-apps:projects` tag (it prints the command for each that does
not: tags are the platform team's to set); and the project has a spec, or an open merge request
that adds a skeleton of it and the CI job that builds the image. A second run changes nothing.
The maintainer's token is used for the calls the bot may not make, and is never stored.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from tools.install import Check, Clients, Install, InstallError, error_code, report, stack_name

DEVELOPER = 30
PROJECTS_TAG = "review-apps:projects"
SPEC_PATH = ".gitlab/review-app.yml"
CI_PATH = ".gitlab/review-app-image.gitlab-ci.yml"
ONBOARDING_BRANCH = "review-apps/onboarding"
# The project hook the install needs: these events, and GitLab checking the install's certificate.
HOOK = {
    "merge_requests_events": True,
    "pipeline_events": True,
    "note_events": True,
    "push_events": False,
    "enable_ssl_verification": True,
}

SPEC_SKELETON = """\
# Review apps: one short-lived copy of the app per merge request, on AWS Fargate.
# Fill in the two values below (the platform team knows them), then merge.
task_definition: {family}   # an ECS task definition family tagged review-apps:projects for this project
image: {image}
trigger: pipeline           # start once the MR's pipeline (which builds the image) succeeds
ttl: 30m                    # each app stops by itself after this long; `/review-app extend 1h` on the MR
"""

CI_JOB = """\
# Builds the image a review app runs, tagged with the commit, for the spec's ${{CI_COMMIT_SHA}}.
# Include it from .gitlab-ci.yml:   include: {{local: {ci_path}}}
review-app-image:
  stage: build
  image: docker:27
  services: [docker:27-dind]
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  variables:
    REVIEW_APP_IMAGE: {repository}
  script:
    - apk add --no-cache aws-cli
    - aws ecr get-login-password | docker login --username AWS --password-stdin "${{REVIEW_APP_IMAGE%%/*}}"
    - docker build -t "$REVIEW_APP_IMAGE:$CI_COMMIT_SHA" .
    - docker push "$REVIEW_APP_IMAGE:$CI_COMMIT_SHA"
"""


class Onboarding:
    """One project's setup, checked (and with `change`, made right) step by step."""

    def __init__(
        self,
        install: Install,
        path: str,
        *,
        maintainer_token: str = "",
        change: bool = True,
        dry_run: bool = False,
        family: str = "",
        say: Callable[[str], None] = print,
    ) -> None:
        self.install, self.path = install, path
        self.change, self.dry_run, self.family, self.say = change, dry_run, family, say
        self.bot = install.gitlab()
        self.maintainer = install.gitlab(maintainer_token) if maintainer_token else None
        self.checks: list[Check] = []
        self.onboard = f"make onboard PROJECT={path}"

    # ------------------------------------------------------------------ the steps

    def run(self) -> list[Check]:
        if not self._signed_in():
            return self.checks
        project = self._project()
        if project is None:
            return self.checks
        self._membership(project)
        self._hook(project)
        spec = self._spec(project)
        self._needs(project, spec)
        self._spec_or_onboarding_mr(project, spec)
        return self.checks

    def for_smoke(self) -> list[Check]:
        """What a smoke test's merge request needs of its project: it exists, the bot is a
        member, the webhook is there (its own branch brings the spec)."""
        project = self._project() if self._signed_in() else None
        if project is not None:
            self._membership(project)
            self._hook(project)
        return self.checks

    def _signed_in(self) -> bool:
        import gitlab

        try:
            self.bot.auth()
        except gitlab.GitlabError as exc:
            self._fail(
                f"GitLab at {self.install.gitlab_url} refused the bot's token ({exc.response_code})",
                "put the bot's token (scope api) in " + self.install.params.get("GitLabTokenParameterName", ""),
            )
            return False
        return True

    def _project(self) -> Any:
        import gitlab

        for client in (self.bot, self.maintainer):
            if client is None:
                continue
            try:
                return client.projects.get(self.path)
            except gitlab.GitlabGetError:
                continue
        self._fail(
            f"project {self.path} is not found (or neither the bot nor the maintainer's token can see it)",
            "check the path (group/name as in its URL); the bot must be a member: add @"
            + self.bot.user.username
            + " as Developer in the project's Manage > Members",
        )
        return None

    def _membership(self, project: Any) -> None:
        import gitlab

        bot = self.bot.user
        try:
            level = project.members_all.get(bot.id).access_level
        except gitlab.GitlabGetError:
            level = 0
        if level >= DEVELOPER:
            self.checks.append(Check(True, f"@{bot.username} is a member of {self.path} (access level {level})"))
            return
        what = f"@{bot.username} is not a member of {self.path} with Developer access"
        fix = (
            f"add @{bot.username} as Developer in the project's Manage > Members, "
            f"or MAINTAINER_TOKEN=glpat-… {self.onboard}"
        )
        if not self.change or self.maintainer is None:
            self._fail(what, fix)
            return
        if self.dry_run:
            self.checks.append(Check(True, f"{what}: would add it as Developer", changed=True))
            return
        try:
            self.maintainer.projects.get(project.id, lazy=True).members.create(
                {"user_id": bot.id, "access_level": DEVELOPER}
            )
        except gitlab.GitlabCreateError as exc:
            self._fail(f"{what}, and adding it failed ({exc.response_code}: {exc.error_message})", fix)
            return
        self.checks.append(Check(True, f"added @{bot.username} to {self.path} as Developer", changed=True))

    def _hook(self, project: Any) -> None:
        import gitlab

        url = self.install.outputs.get("WebhookUrl", "")
        admin = self.maintainer or self.bot
        handle = admin.projects.get(project.id, lazy=True)
        try:
            hooks = [h for h in handle.hooks.list(get_all=True) if h.url == url]
        except gitlab.GitlabListError as exc:
            if not self.change:  # a Developer bot can't see hooks: say so, without failing the check
                self.checks.append(
                    Check(
                        True,
                        f"the project's webhooks: not checked, the bot's token can't read them ({exc.response_code}); "
                        f"MAINTAINER_TOKEN=… make doctor PROJECT={self.path} checks them",
                    )
                )
                return
            self._fail(
                f"the project's webhooks can't be read with {'the maintainer' if self.maintainer else 'the bot'}'s"
                f" token ({exc.response_code}): hooks are for Maintainers",
                f"MAINTAINER_TOKEN=<a project maintainer's token, scope api> {self.onboard} (used for this run only)",
            )
            return
        wrong = {k: v for k, v in HOOK.items() if hooks and getattr(hooks[0], k, None) != v}
        if hooks and not wrong:
            self.checks.append(
                Check(True, f"the project's webhook sends merge request, pipeline and comment events to {url}")
            )
            return
        fix = self.onboard + ("" if self.maintainer else " with MAINTAINER_TOKEN=…")
        what = (
            f"the project's webhook to {url} has {', '.join(f'{k}={getattr(hooks[0], k, None)}' for k in wrong)}"
            if hooks
            else f"the project has no webhook to {url}"
        )
        if not self.change:
            self._fail(what, fix)
            return
        if self.dry_run:
            self.checks.append(Check(True, f"{what}: would {'correct' if hooks else 'create'} it", changed=True))
            return
        try:
            if hooks:
                handle.hooks.update(hooks[0].id, dict(wrong))
            else:
                handle.hooks.create({"url": url, "token": self._project_token(project.id), **HOOK})
        except (gitlab.GitlabCreateError, gitlab.GitlabUpdateError) as exc:
            self._fail(f"{what}, and {'correcting' if hooks else 'creating'} it failed ({exc.response_code})", fix)
            return
        self.checks.append(
            Check(True, f"{'corrected' if hooks else 'created'} the project's webhook to {url}", changed=True)
        )

    def _project_token(self, project_id: int) -> str:
        from review_apps.auth import project_token

        secret = self.install.secret("WebhookSecretParameterName")
        return project_token(secret, project_id, self.install.records().token_version(project_id))

    def _spec(self, project: Any) -> dict[str, Any] | None:
        import gitlab
        import yaml

        try:
            text = project.files.raw(file_path=SPEC_PATH, ref=project.default_branch)
        except gitlab.GitlabGetError:
            return None
        try:
            data = yaml.safe_load(text[:65536])
        except yaml.YAMLError:
            data = None
        return data if isinstance(data, dict) else {}

    def _needs(self, project: Any, spec: dict[str, Any] | None) -> None:
        """What the spec will use carries the project in its `review-apps:projects` tag."""
        from review_apps.ownership import names_project

        def mine(value: str | None) -> bool:
            return names_project(value, project.id, self.path)

        def grown(value: str | None) -> str:
            return f"{value} {self.path}" if value else self.path

        aws = self.install.aws
        for key, kind in (("ReviewAppTaskRoleArns", "task role"), ("ReviewAppExecutionRoleArns", "execution role")):
            arns = [a.strip() for a in self.install.params.get(key, "").split(",") if a.strip()]
            if not arns:
                continue
            tags: dict[str, str | None] = {}
            for arn in arns:
                name = arn.rsplit("/", 1)[-1]
                try:
                    found = aws.iam.list_role_tags(RoleName=name)["Tags"]
                except Exception as exc:
                    tags[name] = None
                    self.say(f"  (role {name}: {error_code(exc)})")
                    continue
                tags[name] = next((t["Value"] for t in found if t["Key"] == PROJECTS_TAG), None)
            usable = [name for name, value in tags.items() if mine(value)]
            first = next(iter(tags))
            self.checks.append(
                Check(
                    bool(usable),
                    f"{kind}s the project may use: {', '.join(usable)}"
                    if usable
                    else f"no {kind} in {key} is tagged for {self.path}",
                    f"aws iam tag-role --role-name {first} --tags Key={PROJECTS_TAG},Value='{grown(tags[first])}'",
                )
            )
        family = str((spec or {}).get("task_definition") or self.family or "")
        if family:
            try:
                described = aws.ecs.describe_task_definition(taskDefinition=family, include=["TAGS"])
                arn = described["taskDefinition"]["taskDefinitionArn"]
                value = next((t["value"] for t in described.get("tags", []) if t["key"] == PROJECTS_TAG), None)
                command = f"aws ecs tag-resource --resource-arn {arn} --tags key={PROJECTS_TAG},value='{grown(value)}'"
                self._tagged(f"task definition {family}", mine(value), command)
            except Exception as exc:
                self._fail(
                    f"task definition {family}: {error_code(exc)}",
                    "register the app's task definition in this account and Region (the spec's task_definition)",
                )
        repository = _ecr_repository(str((spec or {}).get("image") or ""))
        if repository:
            try:
                arn = aws.ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryArn"]
                repository_tags = aws.ecr.list_tags_for_resource(resourceArn=arn)["tags"]
                value = next((t["Value"] for t in repository_tags if t["Key"] == PROJECTS_TAG), None)
                command = f"aws ecr tag-resource --resource-arn {arn} --tags Key={PROJECTS_TAG},Value='{grown(value)}'"
                self._tagged(f"ECR repository {repository}", mine(value), command)
            except Exception as exc:
                self._fail(
                    f"ECR repository {repository}: {error_code(exc)}",
                    f"aws ecr create-repository --repository-name {repository} "
                    f"--tags Key={PROJECTS_TAG},Value={self.path}",
                )

    def _tagged(self, what: str, tagged: bool, command: str) -> None:
        said = "is tagged for the project" if tagged else f"is not tagged for {self.path}"
        self.checks.append(Check(tagged, f"{what} {said}", command))

    def _spec_or_onboarding_mr(self, project: Any, spec: dict[str, Any] | None) -> None:
        if spec is not None:
            self.checks.append(Check(True, f"the project has a spec ({SPEC_PATH} on {project.default_branch})"))
            return
        opened = project.mergerequests.list(state="opened", source_branch=ONBOARDING_BRANCH, get_all=True)
        if opened:
            self.checks.append(
                Check(True, f"the onboarding merge request !{opened[0].iid} is open: review and merge it")
            )
            return
        files = self._skeleton()
        if not self.change:
            self._fail(f"the project has no {SPEC_PATH}", self.onboard + " (opens a merge request with a skeleton)")
            return
        if self.dry_run:
            for path, content in files.items():
                self.say(f"--- {path} (would be added in a merge request)\n{content}")
            self.checks.append(Check(True, f"no {SPEC_PATH}: would open a merge request adding it", changed=True))
            return
        project.commits.create(
            {
                "branch": ONBOARDING_BRANCH,
                "start_branch": project.default_branch,
                "commit_message": "Review apps: a spec skeleton and the job that builds the image",
                "actions": [{"action": "create", "file_path": p, "content": c} for p, c in files.items()],
            }
        )
        mr = project.mergerequests.create(
            {
                "source_branch": ONBOARDING_BRANCH,
                "target_branch": project.default_branch,
                "title": "Draft: review apps for this project",
                "description": f"Fill in `{SPEC_PATH}`, include `{CI_PATH}` from `.gitlab-ci.yml`, and merge.",
            }
        )
        self.checks.append(
            Check(True, f"opened merge request !{mr.iid} with a spec skeleton and the CI job", changed=True)
        )

    def _skeleton(self) -> dict[str, str]:
        aws = self.install.aws
        account, region = aws.sts.get_caller_identity()["Account"], aws.ecs.meta.region_name
        repository = f"{account}.dkr.ecr.{region}.amazonaws.com/{self.path.rsplit('/', 1)[-1]}"
        return {
            SPEC_PATH: SPEC_SKELETON.format(family=self.family or "<family>", image=repository + ":${CI_COMMIT_SHA}"),
            CI_PATH: CI_JOB.format(ci_path=CI_PATH, repository=repository),
        }

    def _fail(self, what: str, fix: str) -> None:
        self.checks.append(Check(False, what, fix))


def _ecr_repository(image: str) -> str:
    """The repository of an image in this account's ECR ("" for any other registry)."""
    host, _, rest = image.partition("/")
    if ".dkr.ecr." not in host or not rest:
        return ""
    return rest.split("@", 1)[0].rsplit(":", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("project", help="the project's path, group/name as in its URL")
    parser.add_argument("--stack", default="", help="the stack name (default: samconfig.toml's)")
    parser.add_argument("--check", action="store_true", help="change nothing: report (make doctor PROJECT=)")
    parser.add_argument("--dry-run", action="store_true", help="print what would change")
    parser.add_argument("--family", default="", help="the base task definition family, for the spec skeleton")
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError

    stack = stack_name(args.stack)
    try:
        install = Install.read(stack, Clients(boto3.client))
        onboarding = Onboarding(
            install,
            args.project.strip("/"),
            maintainer_token=os.environ.pop("MAINTAINER_TOKEN", ""),
            change=not args.check,
            dry_run=args.dry_run,
            family=args.family,
        )
        checks = onboarding.run()
    except InstallError as exc:
        print(report(f"{'doctor' if args.check else 'onboard'}: {args.project}", [Check(False, exc.what, exc.fix)]))
        return 1
    except BotoCoreError as exc:
        print(f"onboard: this needs AWS credentials and a Region for the install's account: {exc}", file=sys.stderr)
        return 2
    title = f"make {'doctor' if args.check else 'onboard'}: project {args.project} (stack {stack})"
    print(report(title, checks))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
