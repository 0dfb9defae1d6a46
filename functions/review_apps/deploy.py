"""Carrying out launches, stops and the queue, once review_apps.lifecycle has decided.

WebhookFunction runs this for GitLab events. TaskEventsFunction and ReconcileFunction run
`start_queued` when a running slot may have freed, so a queued app starts without anyone
pressing anything. Every record write is conditional; a launch that loses a race cleans up
after itself.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from aws_lambda_powertools import Logger

from review_apps import compose, cost, lifecycle, taskdef
from review_apps.adapters.ecs import TaskDefinitionNotFound
from review_apps.adapters.gitlab import NoAccess
from review_apps.adapters.store import Conflict, SlotsTaken
from review_apps.models import MergeRequestRef, Record
from review_apps.services import Services
from review_apps.spec import SPEC_PATH, SpecProblems, parse_spec, placeholder_values
from review_apps.untrusted import UnreadableFile, code

CLAIM_ATTEMPTS = 3


def result(status: int, message: str, **extra: Any) -> dict:
    """What the webhook answers GitLab; the other functions log it."""
    return {"status": status, "message": message, "extra": extra}


class Deployer:
    def __init__(self, services: Services, logger: Logger) -> None:
        self.services = services
        self.logger = logger

    # ------------------------------------------------------------------ launching

    def consider(self, ask: lifecycle.ConsiderDeploy, mr_state: str | None) -> dict:
        settings, store = self.services.settings, self.services.store
        if mr_state is None:
            # Pipeline events, commands, the queue and project hooks don't say (or can't be
            # trusted to say) what the MR looks like now: GitLab does.
            current = self.services.gitlab.merge_request(ask.mr.project_id, ask.mr.iid)
            if current is None:
                return result(
                    200, f"ignored: GitLab has no merge request !{ask.mr.iid} in project {ask.mr.project_id}"
                )
            mr_state, head_sha = current.state, current.head_sha
            ask = dataclasses.replace(ask, mr=current.ref, labels=current.labels, draft=current.draft)
            if ask.cause in ("command", "queue"):  # people and the queue want the latest commit
                ask = dataclasses.replace(ask, sha=head_sha)
            refused = lifecycle.admitted(ask.mr, settings.project_allowlist)
            if refused is not None:
                return result(200, f"ignored: {refused.reason}")
        else:
            head_sha = ask.sha
        mr = ask.mr
        spec = self._spec(mr, ask.sha)

        for _ in range(CLAIM_ATTEMPTS):
            record = store.get(mr.project_id, mr.iid)
            plan = lifecycle.plan_deploy(
                ask, spec, record, mr_state=mr_state, mr_head_sha=head_sha, allow_forks=settings.allow_forks
            )
            if isinstance(plan, lifecycle.Ignore):
                self.logger.info("ignored", extra={"reason": plan.reason})
                return result(200, f"ignored: {plan.reason}")
            if isinstance(plan, lifecycle.Reject):
                return self._reject(record, ask, plan.problems)
            if isinstance(plan, lifecycle.StopApp):
                return self.stop(plan)

            base, notices = self._base_task_definition(plan, mr)
            if isinstance(base, tuple):
                return self._reject(record, ask, base)
            derived = taskdef.derive(
                base,
                plan.spec,
                project_id=mr.project_id,
                mr_iid=mr.iid,
                placeholders=placeholder_values(plan.sha, mr.source_branch, mr.iid, mr.project_path),
                limits=settings.limits,
                install=settings.install_id,
                max_ttl=settings.max_ttl,
            )
            if isinstance(derived, taskdef.TaskDefinitionProblems):
                return self._reject(record, ask, derived.problems)
            compute = lifecycle.Compute(
                cpu=derived.cpu,
                memory=derived.memory,
                architecture=derived.architecture,
                capacity=plan.spec.capacity,
                public_ip=settings.assign_public_ip,
                rate_per_hour=cost.hourly_rate(
                    derived.cpu, derived.memory, derived.architecture, plan.spec.capacity == "spot",
                    settings.assign_public_ip, settings.prices,
                ),
            )
            claim = lifecycle.claim_launch(record, mr, plan, int(time.time()), notices, compute)
            try:
                claimed = store.save(claim, lifecycle.slot_change(record, claim))
            except Conflict:
                continue  # another delivery for this MR wrote first: look again
            except SlotsTaken as full:
                waiting = lifecycle.queued(claim, record, lifecycle.cap_detail(full.scope, full.cap))
                try:
                    store.save(waiting)
                except Conflict:
                    continue
                place = self.renumber_queue(mr.key)
                self.logger.info("queued", extra={"scope": full.scope, "place": place})
                return result(202, f"queued: {waiting.queue_detail}", place=place)
            return self._launch(claimed, derived)
        self.logger.warning("gave up after repeated conflicts")
        raise Conflict("the merge request changed repeatedly while we handled it")

    def _spec(self, mr: MergeRequestRef, sha: str):
        settings = self.services.settings
        try:
            text = self.services.gitlab.read_spec(mr.source_project_id, sha)
        except NoAccess as exc:
            return SpecProblems(
                (f"{exc}, so `{SPEC_PATH}` could not be read. Add the bot to it as a Reporter or more.",)
            )
        except UnreadableFile as exc:
            return SpecProblems((str(exc),))
        if text is None:
            return None
        return parse_spec(text, settings.default_ttl, settings.max_ttl, settings.max_cpu, settings.max_memory)

    def _base_task_definition(
        self, plan: lifecycle.Launch, mr: MergeRequestRef
    ) -> tuple[dict | tuple[str, ...], tuple[str, ...]]:
        """(the task definition to derive from, notices), or (problems, ()) when there is none."""
        spec = plan.spec
        if not spec.compose:
            try:
                base, tags = self.services.ecs.describe_task_definition(spec.task_definition)
            except TaskDefinitionNotFound:
                return (taskdef.not_usable(spec.task_definition),), ()
            if not taskdef.owned_by(tags, mr.project_id, mr.project_path):
                self.logger.warning("base task definition not tagged for this project",
                                    extra={"task_definition": spec.task_definition[:255]})
                return (taskdef.not_usable(spec.task_definition),), ()
            return base, ()
        texts: dict[str, str] = {}
        for path in filter(None, (spec.compose, spec.ecs_params)):
            try:
                text = self.services.gitlab.read_file(mr.source_project_id, path, plan.sha)
            except UnreadableFile as exc:
                return (str(exc),), ()
            if text is None:
                return (f"{code(path)} (named in `{SPEC_PATH}`) does not exist at commit `{plan.sha[:8]}`.",), ()
            texts[path] = text
        assert spec.compose is not None
        translated = compose.translate(
            texts[spec.compose],
            texts.get(spec.ecs_params) if spec.ecs_params else None,
            compose_path=spec.compose,
            params_path=spec.ecs_params,
            placeholders=placeholder_values(plan.sha, mr.source_branch, mr.iid, mr.project_path),
            limits=self.services.settings.limits,
            family="compose",
        )
        if isinstance(translated, compose.ComposeProblems):
            return translated.problems + tuple(f"Also: {n}" for n in translated.notices), ()
        return translated.task_definition, tuple(translated.notices)

    def _reject(self, record: Record | None, ask: lifecycle.ConsiderDeploy, problems: tuple[str, ...]) -> dict:
        try:
            saved = self.services.store.save(lifecycle.rejected(record, ask.mr, ask.sha, problems, int(time.time())))
        except Conflict:
            return result(200, "ignored: the merge request changed meanwhile")
        self.publish(saved)
        self.logger.info("rejected", extra={"problems": list(problems)})
        return result(200, "not deployed: the problems are on the merge request", problems=list(problems))

    def _launch(self, record: Record, derived: taskdef.DerivedTaskDefinition) -> dict:
        ecs, store = self.services.ecs, self.services.store
        td_arn = ecs.register(derived.register_kwargs)
        run = ecs.run(record, td_arn)
        if run.task_arn is None:
            ecs.retire(td_arn)
            # The old app is stopped too: the MR has moved on, and a task no record tracks would leak.
            self._stop_replaced(record)
            problems = run.failures or ("RunTask started no task and gave no reason",)
            failed = lifecycle.launch_failed(record, problems, int(time.time()))
            try:
                record = store.save(failed, lifecycle.slot_change(record, failed))
            except Conflict:
                return result(200, "could not start the task; the merge request changed meanwhile")
            self.publish(record)
            self.logger.warning("run_task failed", extra={"failures": list(problems)})
            return result(200, "could not start the review app; the reason is on the merge request")

        launched = lifecycle.launched(
            record, task_arn=run.task_arn, task_definition_arn=td_arn, container=derived.container,
            port=derived.port, wrapped=derived.wrapped, unwrapped_because=derived.unwrapped_because,
        )
        try:
            launched = store.save(launched)
        except Conflict:
            # A newer delivery (new commit, merge, close) took over while we launched: ours must go.
            ecs.stop(run.task_arn, "Review app superseded by a newer event for this merge request")
            ecs.retire(td_arn)
            return result(200, "superseded by a newer event for this merge request")
        self._stop_replaced(launched)
        self.set_deadline(launched)
        self.publish(launched)
        self.logger.info("launched", extra={"task_arn": run.task_arn, "commit": launched.commit_sha})
        return result(202, "deploying", task=run.task_arn)

    def _stop_replaced(self, record: Record) -> None:
        if not record.replaced_task_arn:
            return
        self.services.ecs.stop(record.replaced_task_arn, f"Review app replaced by commit {record.commit_sha[:8]}")
        if record.replaced_task_definition_arn:
            self.services.ecs.retire(record.replaced_task_definition_arn)

    # ------------------------------------------------------------------ stopping

    def stop(self, ask: lifecycle.StopApp) -> dict:
        store = self.services.store
        for _ in range(CLAIM_ATTEMPTS):
            record = store.get(ask.mr.project_id, ask.mr.iid)
            target = lifecycle.plan_stop(record, ask.updated_at)
            if isinstance(target, lifecycle.Ignore):
                return result(200, f"ignored: {target.reason}")
            who = f"@{ask.by}" if ask.by else ""
            if target.queued:
                try:
                    left = store.save(
                        lifecycle.left_queue(target, ask.reason, who, int(time.time()), ask.updated_at)
                    )
                except Conflict:
                    continue
                self.publish(left)
                self.renumber_queue()
                return result(200, "taken out of the queue")
            try:
                stopping = store.save(
                    lifecycle.stop_requested(target, ask.reason, detail=who, updated_at=ask.updated_at)
                )
            except Conflict:
                continue
            # A launch may be in flight (no task recorded yet): it will find the record changed and
            # stop its own task; the task it was replacing is stopped here.
            for task in filter(None, (stopping.task_arn, stopping.replaced_task_arn)):
                self.services.ecs.stop(task, f"Review app stopped: merge request {ask.reason}")
            self.clear_deadline(stopping)
            self.publish(stopping)
            return result(202, "stopping", task=stopping.task_arn)
        raise Conflict("the merge request changed repeatedly while we handled it")

    # ------------------------------------------------------------------ the queue

    def start_queued(self, records: list[Record] | None = None) -> int:
        """Start waiting apps, first come first served, while slots are free. Returns how many
        started. Safe to run anywhere at any time: the slot transaction is the real guard, the
        look at the holders only saves a GitLab round trip when nothing can start."""
        queue = lifecycle.queue_order(self.services.store.all() if records is None else records)
        if not queue:
            return 0
        started = 0
        caps = lifecycle.Caps(self.services.settings.max_running, self.services.settings.max_running_per_project)
        holders: dict[str, set[str]] = {}  # each scope read once per pass, kept up to date as apps start
        for record in queue:
            scopes = lifecycle.slot_scopes(caps, record.project_id)
            for scope, _ in scopes:
                if scope not in holders:
                    holders[scope] = self.services.store.holders(scope)
            if any(record.key not in holders[scope] and len(holders[scope]) >= cap for scope, cap in scopes):
                continue
            ask = lifecycle.ConsiderDeploy(record.mr, record.commit_sha, "queue")
            try:
                outcome = self.consider(ask, None)
            except Exception:  # one MR's GitLab or ECS trouble must not hold up the rest
                self.logger.exception("could not start a queued app; the next run tries again",
                                      extra={"mr": record.key})
                continue
            self.logger.info("queued app considered", extra={"mr": record.key, "outcome": outcome["message"]})
            if outcome["message"] == "deploying":
                started += 1
                for scope, _ in scopes:
                    holders[scope].add(record.key)
        self.renumber_queue()
        return started

    def renumber_queue(self, key: str = "") -> int:
        """Give every waiting MR its current place and tell it; returns `key`'s place.

        A pass that loses a write to another function read a queue that has changed since:
        it looks again, so the last pass to finish works from the queue as it is."""
        mine = 0
        for _ in range(CLAIM_ATTEMPTS):
            moved_on = False
            for place, record in enumerate(lifecycle.queue_order(self.services.store.all()), start=1):
                if record.key == key:
                    mine = place
                if record.queue_place == place and record.note_id:
                    continue
                try:
                    saved = self.services.store.save(dataclasses.replace(record, queue_place=place))
                except Conflict:
                    moved_on = True
                    continue
                self.publish(saved)
            if not moved_on:
                break
        return mine

    # ------------------------------------------------------------------ the deadline's schedule

    def set_deadline(self, record: Record) -> None:
        """Schedule StopTask at the record's deadline. A failure here loses no deadline: the
        reconciler stops the app at the recorded one, and tries the schedule again then."""
        if not (record.task_arn and record.deadline):
            return
        try:
            self.services.scheduler.set_deadline(
                record.project_id, record.mr_iid, record.task_arn, record.deadline, int(time.time())
            )
        except Exception:
            self.logger.exception("could not schedule the deadline; the reconciler enforces it meanwhile")

    def clear_deadline(self, record: Record) -> None:
        try:
            self.services.scheduler.clear(record.project_id, record.mr_iid)
        except Exception:
            self.logger.exception("could not delete the deadline's schedule; it stops nothing that still runs")

    # ------------------------------------------------------------------ telling the MR

    def publish(self, record: Record) -> None:
        """Tell the MR. A GitLab failure must not undo what ECS already did: the next event for
        this MR, or the reconciler, publishes the same view again (publish is idempotent)."""
        try:
            published = self.services.gitlab.publish(record)
        except Exception:
            self.logger.exception("could not update the merge request; the next event will retry")
            return
        try:
            self.services.store.save(published)
        except Conflict:
            self.logger.info("record changed while publishing; the newer writer publishes its own view")
