"""Launching, stopping and the queue, once review_apps.lifecycle has decided.

WebhookFunction runs this for GitLab events; ReconcileFunction runs `start_queued` every minute,
so a queued app starts without anyone pressing anything. Every record write is conditional
(one retry loop: flows.retry), and a launch that loses a race cleans up after itself.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from review_apps import app_env, compose, cost, lifecycle, ownership, taskdef
from review_apps.adapters.ecs import DefinitionRefused, TaskDefinitionNotFound
from review_apps.adapters.elb import NoRoute
from review_apps.adapters.gitlab import NoAccess
from review_apps.adapters.store import Conflict, SlotsTaken
from review_apps.flows import routes
from review_apps.flows.outcome import Outcome, Result
from review_apps.flows.retry import ATTEMPTS, until_written
from review_apps.lifecycle import addresses, crash_log, sleep
from review_apps.model.record import MergeRequestRef, Record
from review_apps.model.values import Cause, Status
from review_apps.problems import Problems
from review_apps.services import Services
from review_apps.spec import SPEC_PATH, Spec, parse_spec
from review_apps.untrusted import UnreadableFile, code


class Deployer:
    def __init__(self, services: Services, logger: Any) -> None:
        self.services = services
        self.logger = logger

    # ------------------------------------------------------------------ launching

    def consider(self, ask: lifecycle.ConsiderDeploy, mr_state: str | None) -> Outcome:
        """`mr_state` is the MR's state as the event told it; None makes GitLab tell it."""
        settings = self.services.settings
        if mr_state is None:
            # Pipeline events, commands, the queue and project hooks don't say (or can't be
            # trusted to say) what the MR looks like now: GitLab does.
            current = self.services.gitlab.merge_request(ask.mr.project_id, ask.mr.iid)
            if current is None:
                return Outcome.ignored(f"GitLab has no merge request !{ask.mr.iid} in project {ask.mr.project_id}")
            mr_state, head_sha = current.state, current.head_sha
            ask = dataclasses.replace(ask, mr=current.ref, labels=current.labels, draft=current.draft)
            if ask.cause in (Cause.COMMAND, Cause.QUEUE, Cause.WAKE):  # people and the queue want the latest commit
                ask = dataclasses.replace(ask, sha=head_sha)
            refused = lifecycle.admitted(ask.mr, settings.project_allowlist)
            if refused is not None:
                return Outcome.ignored(refused.reason)
        else:
            head_sha = ask.sha
        spec = self._spec(ask.mr, ask.sha)
        state: str = mr_state
        return until_written(lambda: self._claim(ask, spec, state, head_sha))

    def _claim(
        self, ask: lifecycle.ConsiderDeploy, spec: Spec | Problems | None, mr_state: str, head_sha: str
    ) -> Outcome:
        """One read → plan → conditional claim. Raises Conflict when another writer got there first."""
        mr, settings, store = ask.mr, self.services.settings, self.services.store
        record = store.get(mr.project_id, mr.iid)
        plan = lifecycle.plan_deploy(
            ask, spec, record, mr_state=mr_state, mr_head_sha=head_sha, allow_forks=settings.allow_forks
        )
        if isinstance(plan, lifecycle.Ignore):
            self.logger.info("ignored", extra={"reason": plan.reason})
            return Outcome.ignored(plan.reason)
        # A brand-new MR can have no review-app note: publishing needn't look for one.
        fresh = record is None and ask.cause == Cause.OPENED
        if isinstance(plan, lifecycle.Reject):
            return self._reject(record, ask, plan.problems, fresh)
        if isinstance(plan, lifecycle.StopApp):
            return self.stop(plan)

        host = ""
        if settings.address_mode:  # known before the task starts: the app is told where it lives
            host = addresses.hostname(mr.project_path, mr.project_id, mr.iid, settings.review_domain)
        placeholders = app_env.placeholder_values(mr, plan.sha, host)
        base = self._base_task_definition(plan, mr, placeholders)
        if isinstance(base, Problems):
            return self._reject(record, ask, base.problems, fresh)
        definition, notices = base
        derived = taskdef.derive(
            definition,
            plan.spec,
            project_id=mr.project_id,
            mr_iid=mr.iid,
            placeholders=placeholders,
            limits=settings.limits,
            install=settings.install_id,
            max_ttl=settings.max_ttl,
            told=app_env.variables(mr, plan.sha, host),
        )
        if isinstance(derived, Problems):
            return self._reject(record, ask, derived.problems, fresh)
        not_owned = self._not_owned(derived, mr, plan.spec)
        if not_owned:
            return self._reject(record, ask, not_owned, fresh)
        notices += tuple(f"Its logs go to CloudWatch log group {code(group)}." for group in derived.log_groups)
        compute = lifecycle.Compute(
            cpu=derived.cpu,
            memory=derived.memory,
            architecture=derived.architecture,
            capacity=plan.spec.capacity,
            public_ip=settings.assign_public_ip,
            rate_per_hour=cost.hourly_rate(
                derived.cpu,
                derived.memory,
                derived.architecture,
                plan.spec.capacity == "spot",
                settings.assign_public_ip,
                settings.prices,
            ),
        )
        sleep_after, viewers = 0, ""
        if settings.address_mode:
            viewers = f"members:{settings.min_access_level}" if settings.sign_in else "public"
        if settings.sleep_enabled:
            sleep_after = sleep.sleep_after(plan.spec.sleep_after, settings.default_sleep_after)
        now = int(time.time())
        claim = lifecycle.claim_launch(
            record, mr, plan, now, notices, compute, host=host, sleep_after=sleep_after, viewers=viewers
        )
        if ask.cause == Cause.WAKE:
            claim = sleep.woke(claim, now, ask.review_requested)
            if lifecycle.wake_waits(lifecycle.queue_order(store.waiting()), mr.key):
                return self._wait(store.save(lifecycle.queued(claim, record, lifecycle.WAITS_ITS_TURN)), "turn")
        try:
            claimed = store.save(claim, lifecycle.slot_change(record, claim))
        except SlotsTaken as full:
            detail = lifecycle.cap_detail(full.scope, full.cap)
            return self._wait(store.save(lifecycle.queued(claim, record, detail)), full.scope)
        waiting_since = record.queued_at if record is not None and record.queued else 0
        return self._launch(claimed, derived, fresh, waiting_since)

    def _wait(self, waiting: Record, why: str) -> Outcome:
        waiting = self.publish(waiting)  # a new commit while it waits: the MR says so at once
        place = self.renumber_queue(waiting.key)
        if why == "turn":  # a slot may be free: the queue starts in its order, this visit last
            self.start_queued()
            place = self.renumber_queue(waiting.key)
        self.logger.info("queued", extra={"scope": why, "place": place})
        return Outcome(Result.QUEUED, f"queued: {waiting.queue_detail}", {"place": place})

    def _not_owned(self, derived: taskdef.DerivedTaskDefinition, mr: MergeRequestRef, spec: Spec) -> tuple[str, ...]:
        """What the task definition uses that the project does not own: roles and images by tag, and
        the secrets its own files name (a tagged base definition's are the platform team's)."""
        settings, owners = self.services.settings, self.services.owners
        rules = settings.image_rules
        needs = ownership.needs(derived.register_kwargs, rules)
        named = list(spec.secrets)
        if spec.compose:  # every secret of a compose app comes from the project's files
            containers = derived.register_kwargs.get("containerDefinitions") or []
            named = [(s["name"], s["valueFrom"]) for c in containers for s in c.get("secrets") or []]
        secret_tags = owners.secret_tags(ownership.secrets_to_read((reference for _, reference in named), rules))
        found = ownership.problems(
            derived.register_kwargs,
            mr.project_id,
            mr.project_path,
            rules,
            owners.role_tags(needs.roles),
            owners.repository_tags(needs.repositories),
        )
        for variable, reference in dict.fromkeys(named):
            refused = ownership.secret_problem(
                variable,
                reference,
                mr.project_id,
                mr.project_path,
                settings.secret_parameter_prefix,
                rules,
                secret_tags,
            )
            if refused:
                found.append(refused)
        return tuple(found)

    def _spec(self, mr: MergeRequestRef, sha: str) -> Spec | Problems | None:
        settings = self.services.settings
        try:
            text = self.services.gitlab.read_spec(mr.source_project_id, sha)
        except NoAccess as exc:
            return Problems((f"{exc}, so `{SPEC_PATH}` could not be read. Add the bot to it as a Reporter or more.",))
        except UnreadableFile as exc:
            return Problems((str(exc),))
        if text is None:
            return None
        return parse_spec(text, settings.default_ttl, settings.max_ttl, settings.max_cpu, settings.max_memory)

    def _base_task_definition(
        self, plan: lifecycle.Launch, mr: MergeRequestRef, placeholders: dict[str, str]
    ) -> tuple[dict[str, Any], tuple[str, ...]] | Problems:
        """(the task definition to derive from, notices for the MR), or why there is none."""
        spec = plan.spec
        if not spec.compose:
            try:
                base, tags = self.services.ecs.describe_task_definition(spec.task_definition)
            except TaskDefinitionNotFound:
                return Problems((taskdef.not_usable(spec.task_definition),))
            if not taskdef.owned_by(tags, mr.project_id, mr.project_path):
                self.logger.warning(
                    "base task definition not tagged for this project",
                    extra={"task_definition": spec.task_definition[:255]},
                )
                return Problems((taskdef.not_usable(spec.task_definition),))
            return base, ()
        texts: dict[str, str] = {}
        for path in filter(None, (spec.compose, spec.ecs_params)):
            try:
                text = self.services.gitlab.read_file(mr.source_project_id, path, plan.sha)
            except UnreadableFile as exc:
                return Problems((str(exc),))
            if text is None:
                return Problems((f"{code(path)} (named in `{SPEC_PATH}`) does not exist at commit `{plan.sha[:8]}`.",))
            texts[path] = text
        translated = compose.translate(
            texts[spec.compose],
            texts.get(spec.ecs_params) if spec.ecs_params else None,
            compose_path=spec.compose,
            params_path=spec.ecs_params,
            placeholders=placeholders,
            limits=self.services.settings.limits,
            family="compose",
        )
        if isinstance(translated, Problems):
            return Problems(translated.problems + tuple(f"Also: {n}" for n in translated.notices))
        return translated.task_definition, tuple(translated.notices)

    def _reject(
        self, record: Record | None, ask: lifecycle.ConsiderDeploy, problems: tuple[str, ...], fresh: bool
    ) -> Outcome:
        saved = self.services.store.save(lifecycle.rejected(record, ask.mr, ask.sha, problems, int(time.time())))
        self.publish(saved, fresh=fresh)
        self.logger.info("rejected", extra={"problems": list(problems)})
        return Outcome(
            Result.REJECTED, "not deployed: the problems are on the merge request", {"problems": list(problems)}
        )

    def _launch(
        self, record: Record, derived: taskdef.DerivedTaskDefinition, fresh: bool, waiting_since: int = 0
    ) -> Outcome:
        ecs = self.services.ecs
        try:
            td_arn = ecs.register(derived.register_kwargs)
        except DefinitionRefused as refused:
            return self._launch_failed(record, (taskdef.refused_by_ecs(str(refused)),), fresh)
        if record.host:
            # The target group now; the host's own rule once the app is healthy (flows.routes).
            try:
                self.services.elb.check_host_free(record.host)
                record = routes.settle(
                    self.services.elb, dataclasses.replace(record, port=derived.port), check_group=True
                )
            except NoRoute as refused:
                ecs.retire(td_arn)
                return self._launch_failed(record, (refused.problem(),), fresh)
        run = ecs.run(record, td_arn)
        if run.task_arn is None:
            ecs.retire(td_arn)
            if run.passing:
                return self._postpone(record, run.failures, fresh, waiting_since)
            return self._launch_failed(record, run.failures or ("RunTask started no task and gave no reason",), fresh)

        streams = tuple(s.encode() for s in crash_log.streams(derived.register_kwargs, self.services.settings.region))

        def with_task(claim: Record) -> Record:
            return lifecycle.launched(
                claim,
                task_arn=str(run.task_arn),
                task_definition_arn=td_arn,
                container=derived.container,
                port=derived.port,
                wrapped=derived.wrapped,
                unwrapped_because=derived.unwrapped_because,
                target_group_arn=record.target_group_arn,
                rule_arn=record.rule_arn,
                log_streams=streams,
            )

        saved = self._record_launch(record, with_task)
        if saved is None:
            # A newer delivery (new commit, merge, close) took over while we launched: ours must go.
            ecs.stop(run.task_arn, "Review app superseded by a newer event for this merge request")
            ecs.retire(td_arn)
            return Outcome(Result.SUPERSEDED, "superseded by a newer event for this merge request")
        launched = saved
        self._stop_replaced(launched)
        if not self.set_deadline(launched, new=not launched.replaced_task_arn):
            launched = self._unscheduled(launched)
        self.publish(launched, fresh=fresh)
        # How it ends on time is the operator's business (README), not the reviewer's: logged, not noted.
        self.logger.info(
            "launched",
            extra={
                "task_arn": run.task_arn,
                "commit": launched.commit_sha,
                "ends_by": "deadline schedule and timeout" if launched.timeout_wrapped else "deadline schedule",
                "not_wrapped_because": launched.unwrapped_because,
            },
        )
        return Outcome(Result.DEPLOYING, "deploying", {"task": run.task_arn})

    def _record_launch(self, claim: Record, with_task: Any) -> Record | None:
        """The claim with its task, saved; None if the MR moved on (another launch or a stop took
        the record). A write beside the claim that leaves it ours (a kept delivery, a note's
        creation claimed) is no reason to give the task up: the task is put on the record as it is now."""
        store = self.services.store
        current: Record | None = claim
        for _ in range(ATTEMPTS):
            if current is None or (current.launch_id, current.status, current.task_arn) != (
                claim.launch_id,
                Status.DEPLOYING,
                "",
            ):
                return None
            try:
                return store.save(with_task(current))
            except Conflict:
                current = store.get(claim.project_id, claim.mr_iid)
        return None

    def _unscheduled(self, record: Record) -> Record:
        """The record flagged as running without its deadline's schedule (the note says so, and
        the reconciler makes the schedule); as it was if it moved on meanwhile."""
        try:
            return self.services.store.save(dataclasses.replace(record, deadline_unscheduled=True))
        except Conflict:
            return record

    def _postpone(self, record: Record, failures: tuple[str, ...], fresh: bool, waiting_since: int) -> Outcome:
        """No capacity, or throttled: the MR waits in the queue (in its place, if it was waiting)
        and the reconciler tries again after a backoff, for as long as the MR wants an app."""
        waiting = lifecycle.start_postponed(record, failures, int(time.time()), waiting_since)
        saved = self._launch_ends(record, waiting, fresh)
        if saved is None:
            return Outcome(Result.SUPERSEDED, "could not start the task; the merge request changed meanwhile")
        self.renumber_queue(saved.key)
        self.logger.warning("launch postponed", extra={"failures": list(failures), "retry_at": saved.retry_at})
        return Outcome(Result.POSTPONED, f"postponed: {saved.queue_detail}", {"retry_at": saved.retry_at})

    def _launch_failed(self, record: Record, problems: tuple[str, ...], fresh: bool) -> Outcome:
        if self._launch_ends(record, lifecycle.launch_failed(record, problems, int(time.time())), fresh) is None:
            return Outcome(Result.SUPERSEDED, "could not start the task; the merge request changed meanwhile")
        self.logger.warning("launch failed", extra={"failures": list(problems)})
        return Outcome(Result.FAILED, "could not start the review app; the reason is on the merge request")

    def _launch_ends(self, record: Record, after: Record, fresh: bool) -> Record | None:
        """The claimed launch ends as `after` (failed, or back in the queue) without a task: the
        app it replaced is stopped too (the MR has moved on, and a task no record tracks would
        leak), the route settled, the record saved and the MR told. None if the MR changed meanwhile."""
        self._stop_replaced(record)
        if after.target_group_arn or after.rule_arn:
            after = self._settled(after)
        try:
            saved = self.services.store.save(after, lifecycle.slot_change(record, after))
        except Conflict:
            return None
        return self.publish(saved, fresh=fresh)

    def _stop_replaced(self, record: Record) -> None:
        if not record.replaced_task_arn:
            return
        if record.target_group_arn and record.routed_target:
            # Its address leaves now rather than sending visitors to a task that is stopping.
            self._quietly(
                "take the replaced app out of its target group",
                self.services.elb.deregister,
                record.target_group_arn,
                record.routed_target,
            )
        self.services.ecs.stop(record.replaced_task_arn, f"Review app replaced by commit {record.commit_sha[:8]}")
        if record.replaced_task_definition_arn:
            self.services.ecs.retire(record.replaced_task_definition_arn)

    def _settled(self, record: Record) -> Record:
        """`record` with its route settled; as it was if the load balancer fails, for the sweep."""
        try:
            return routes.settle(self.services.elb, record)
        except Exception:
            self.logger.exception("could not settle the app's route; the reconciler repairs it")
            return record

    def _quietly(self, what: str, call: Any, *args: Any) -> None:
        """A load balancer call whose failure the reconciler's sweep or the next event repairs."""
        try:
            call(*args)
        except Exception:
            self.logger.exception(f"could not {what}; the reconciler repairs it")

    # ------------------------------------------------------------------ stopping

    def stop(self, ask: lifecycle.StopApp) -> Outcome:
        return until_written(lambda: self._stop_once(ask))

    def _stop_once(self, ask: lifecycle.StopApp) -> Outcome:
        store = self.services.store
        record = store.get(ask.mr.project_id, ask.mr.iid)
        target = lifecycle.plan_stop(record, ask.updated_at)
        if isinstance(target, lifecycle.Ignore):
            return Outcome.ignored(target.reason)
        who = f"@{ask.by}" if ask.by else ask.detail
        if target.status == Status.ASLEEP:
            ended = store.save(sleep.ended_asleep(target, ask.reason, who, int(time.time()), ask.updated_at))
            if ended.target_group_arn or ended.rule_arn:  # a sleeping app's should be gone already
                ended = store.save(self._settled(ended))
            self.publish(ended)
            return Outcome(Result.ENDED, "the sleeping app will not wake again; its address is gone")
        if target.queued:
            left = store.save(lifecycle.left_queue(target, ask.reason, who, int(time.time()), ask.updated_at))
            self.publish(left)
            self.renumber_queue()
            return Outcome(Result.LEFT_QUEUE, "taken out of the queue")
        stopping = store.save(
            lifecycle.stop_requested(target, ask.reason, int(time.time()), detail=who, updated_at=ask.updated_at)
        )
        # Its host goes to the waker (which says the app is stopping) before the task stops.
        # A launch may be in flight (no task recorded yet): it will find the record changed and
        # stop its own task; the task it was replacing is stopped here.
        if stopping.target_group_arn or stopping.rule_arn:
            stopping = store.save(self._settled(stopping))
        if self.stop_tasks(stopping, f"Review app stopped: merge request {ask.reason}"):
            self.clear_deadline(stopping)
        self.publish(stopping)
        return Outcome(Result.STOPPING, "stopping", {"task": stopping.task_arn})

    def stop_tasks(self, record: Record, reason: str) -> bool:
        """StopTask for the record's task (and the one it replaces). A failure (throttled past
        botocore's retries, say) leaves the record stopping: its deadline's schedule stays, and the
        reconciler asks again after lifecycle.reconcile.STOP_AGAIN_SECONDS."""
        try:
            for task in filter(None, (record.task_arn, record.replaced_task_arn)):
                self.services.ecs.stop(task, reason)
        except Exception:
            self.logger.exception("could not stop the task; the reconciler asks again", extra={"mr": record.key})
            return False
        return True

    # ------------------------------------------------------------------ the queue

    def start_queued(self, records: list[Record] | None = None) -> int:
        """Start waiting apps, first come first served, while slots are free. Returns how many
        started. Safe to run anywhere at any time: the slot transaction is the real guard, the
        look at the holders only saves a GitLab round trip when nothing can start."""
        waiting = self.services.store.waiting() if records is None else records
        queue = lifecycle.startable(lifecycle.queue_order(waiting), int(time.time()))
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
            ask = lifecycle.ConsiderDeploy(record.mr, record.commit_sha, Cause.QUEUE)
            try:
                outcome = self.consider(ask, None)
            except Exception:  # one MR's GitLab or ECS trouble must not hold up the rest
                self.logger.exception(
                    "could not start a queued app; the next run tries again", extra={"mr": record.key}
                )
                continue
            self.logger.info("queued app considered", extra={"mr": record.key, "outcome": outcome.message})
            if outcome.result == Result.POSTPONED:
                break  # AWS has no capacity (or throttles) now: the rest keep their places for the next run
            if outcome.result == Result.DEPLOYING:
                started += 1
                for scope, _ in scopes:
                    holders[scope].add(record.key)
        self.renumber_queue()
        return started

    def renumber_queue(self, key: str = "") -> int:
        """Give every waiting MR its current place and tell it; returns `key`'s place.

        A pass that loses a write to another function read a queue that has changed since:
        it looks again, so the last pass to finish works from the queue as it is."""
        places: dict[str, int] = {}

        def one_pass() -> None:
            lost = False
            for place, waiting in enumerate(lifecycle.queue_order(self.services.store.waiting()), start=1):
                places[waiting.key] = place
                shown = lifecycle.shown_place(place)
                if waiting.queue_place == shown and waiting.note_id:
                    continue
                record = self.services.store.get(waiting.project_id, waiting.mr_iid)  # the whole record
                if record is None or record.rev != waiting.rev:
                    lost = True
                    continue
                try:
                    saved = self.services.store.save(dataclasses.replace(record, queue_place=shown))
                except Conflict:
                    lost = True
                    continue
                self.publish(saved)
            if lost:
                raise Conflict("the queue changed during renumbering")

        try:
            until_written(one_pass, "the queue")
        except Conflict:
            self.logger.info("the queue kept changing; the last writer numbers it")
        return lifecycle.shown_place(places.get(key, 0))

    # ------------------------------------------------------------------ the deadline's schedule

    def set_deadline(self, record: Record, *, new: bool = False) -> bool:
        """Schedule StopTask at the record's deadline; False if that failed. A failure loses no
        deadline: the reconciler stops every app at its recorded deadline, and makes the missing
        schedule again."""
        if not (record.task_arn and record.deadline):
            return True
        try:
            self.services.scheduler.set_deadline(
                record.project_id, record.mr_iid, record.task_arn, record.deadline, int(time.time()), new=new
            )
        except Exception:
            self.logger.exception("could not schedule the deadline; the reconciler enforces it meanwhile")
            return False
        return True

    def clear_deadline(self, record: Record) -> None:
        try:
            self.services.scheduler.clear(record.project_id, record.mr_iid)
        except Exception:
            self.logger.exception("could not delete the deadline's schedule; it stops nothing that still runs")

    # ------------------------------------------------------------------ telling the MR

    def publish(self, record: Record, *, strict: bool = False, fresh: bool = False, attempt: int = 0) -> Record:
        """Tell the MR, then remember what it shows. The one publish-and-save.

        A GitLab failure must not undo what ECS already did: the next event for this MR, or the
        reconciler, publishes the same view again (publish is idempotent). `strict` raises it
        instead, for callers whose trigger retries (task events). `fresh`: a brand-new MR, which
        can have no note to look for.

        Only one writer creates an MR's note: one that finds none recorded claims the creation in
        the record first (a conditional write), and one that loses leaves the MR to the winner."""
        claimed = False
        if not record.note_id:
            claim = self._claim_note(record)
            if claim is None:
                self.logger.info("another function is creating the merge request's note", extra={"mr": record.key})
                return record
            record, claimed = claim, not claim.note_id  # a note made meanwhile is published through
        try:
            published = self.services.gitlab.publish(record, fresh=fresh)
        except Exception:
            if claimed:  # no note was made: the next writer (or this event's retry) may make it at once
                record = self._release_note_claim(record)
            if strict:
                raise
            self.logger.exception("could not update the merge request; the next event will retry")
            return record
        if published == record and not attempt:  # a retry's record is not stored yet, even unchanged
            return record
        try:
            return self.services.store.save(published)
        except Conflict:
            pass
        current = self.services.store.get(record.project_id, record.mr_iid)
        if current is None or current.note_id or not published.note_id or attempt >= NOTE_RECORD_ATTEMPTS:
            self.logger.info("record changed while publishing; the newer writer publishes its own view")
            return published
        # The record does not know the note yet (we made it, or found it, while other writers moved
        # the record on and held back for our claim): the newest view is published through that
        # note and its id recorded, however many writes pass meanwhile.
        return self.publish(_with_published(current, published), strict=strict, attempt=attempt + 1)

    def _release_note_claim(self, record: Record) -> Record:
        try:
            return self.services.store.save(dataclasses.replace(record, note_claimed_at=0))
        except Exception:
            return record

    def _claim_note(self, record: Record) -> Record | None:
        """The record with this writer's claim on creating the note (or, if a note was made
        meanwhile, the record as it is now); None while another writer holds a fresh claim. A claim
        that loses to an unrelated write looks again: giving up there would leave the MR behind."""
        current: Record | None = record
        for _ in range(ATTEMPTS):
            if current is None:
                return None
            now = int(time.time())
            if current.note_id:
                return current
            if current.note_claimed_at and now - current.note_claimed_at < NOTE_CLAIM_SECONDS:
                return None
            try:
                return self.services.store.save(dataclasses.replace(current, note_claimed_at=now))
            except Conflict:
                current = self.services.store.get(record.project_id, record.mr_iid)
        return None


# A writer that claimed the note's creation and died leaves it to the next one after this long.
NOTE_CLAIM_SECONDS = 60
# How many times a writer that made the note tries to record its id while others write the record
# (each try is one note edit and one conditional write; the others hold back for its claim).
NOTE_RECORD_ATTEMPTS = 8
_PUBLISHED = (
    "note_id",
    "note_digest",
    "environment_id",
    "environment_state",
    "deployment_id",
    "deployment_status",
    "commit_status",
)


def _with_published(current: Record, published: Record) -> Record:
    """`current` with what `published` says GitLab shows (ids and digests)."""
    return dataclasses.replace(current, **{name: getattr(published, name) for name in _PUBLISHED})
