"""`/review-app …` comments: check who asked, decide (lifecycle.commands), carry it out, and
answer in the MR's one note rather than with a new comment."""

from __future__ import annotations

from collections.abc import Callable

from review_apps import lifecycle
from review_apps.flows.deploy import Deployer
from review_apps.flows.outcome import Outcome, Result
from review_apps.flows.retry import until_written
from review_apps.model.record import Record


def run_command(deployer: Deployer, command: lifecycle.Command) -> Outcome:
    services = deployer.services
    mr = command.mr
    access = services.gitlab.member_access(mr.project_id, command.author_id)
    answer = lifecycle.answer_command(command, access, services.store.get(mr.project_id, mr.iid))
    if isinstance(answer, lifecycle.StopApp):
        outcome = deployer.stop(answer)
        if outcome.result == Result.IGNORED:
            return answer_on_note(deployer, command, f"@{command.author}: there is no running review app to stop.")
        return outcome
    if isinstance(answer, lifecycle.ConsiderDeploy):
        outcome = deployer.consider(answer, None)
        if outcome.result == Result.IGNORED:
            reason = outcome.message.removeprefix("ignored: ")
            return answer_on_note(deployer, command, f"@{command.author}: nothing was deployed: {reason}.")
        return outcome
    if isinstance(answer, lifecycle.Extend):
        ask, max_ttl = answer, services.settings.max_ttl
        return _on_note(deployer, command, lambda record: lifecycle.extended(record, ask, max_ttl))
    text = answer
    return answer_on_note(deployer, command, text)


def answer_on_note(deployer: Deployer, command: lifecycle.Command, answer: str) -> Outcome:
    return _on_note(deployer, command, lambda record: answer)


def _on_note(
    deployer: Deployer, command: lifecycle.Command, change: Callable[[Record | None], Record | str]
) -> Outcome:
    """Apply `change` to the MR's record (it gives the changed record, with its answer, or just
    the answer) and publish it."""
    store = deployer.services.store

    def once() -> Outcome:
        record = store.get(command.mr.project_id, command.mr.iid)
        updated = change(record)
        if isinstance(updated, str):
            updated = lifecycle.with_answer(record, command.mr, updated)
        saved = store.save(updated)
        if record is not None and saved.deadline != record.deadline:
            deployer.set_deadline(saved)  # `/review-app extend` moves the schedule too
        deployer.publish(saved)
        return Outcome(Result.ANSWERED, saved.last_command)

    return until_written(once)
