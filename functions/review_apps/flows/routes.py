"""An MR's route on the load balancer, carried out: the one place that creates and deletes a
review host's target group and rule. What the record wants is lifecycle.addresses.route_wanted;
every flow (launch, RUNNING, health found, sleep, stop, the sweep) ends its load balancer work
by calling `settle` with the record it is about to save."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from review_apps.adapters.elb import Elb, NoRoute
from review_apps.lifecycle import addresses
from review_apps.model.record import Record


def settle(elb: Elb, record: Record, *, check_group: bool = False) -> Record:
    """Make the load balancer hold what `record` wants, and return the record naming what it now
    holds. Deletions come first and never fail on what is already gone; a rule is made only for a
    target group that exists. `check_group`: find the target group by name and check its health
    check even when the record names one (a launch: the spec may have changed it).

    A target group that can't be made raises NoRoute (a launch fails with its problem). A rule
    that can't be made leaves the app running behind the waker, with the reason as the address's
    note; the reconciler tries again every minute."""
    wanted = addresses.route_wanted(record)
    if record.rule_arn and not wanted.rule:
        elb.delete_rule(record.rule_arn)
        record = dataclasses.replace(record, rule_arn="")
    if record.target_group_arn and not wanted.target_group:
        elb.delete_target_group(record.target_group_arn)
        record = dataclasses.replace(record, target_group_arn="", routed_target="")
    if wanted.target_group and (check_group or not record.target_group_arn):
        made = elb.ensure_target_group(
            record.project_id, record.mr_iid, record.port or 80, record.health_check_path or "/"
        )
        if made != record.target_group_arn and record.routed_target:  # made again: its app goes back in
            ip, _, port = record.routed_target.rpartition(":")
            elb.route_to(made, ip, int(port))
        record = dataclasses.replace(record, target_group_arn=made)
    if wanted.rule and not record.rule_arn:
        try:
            rule = elb.ensure_rule(record.project_id, record.mr_iid, record.host, record.target_group_arn)
        except NoRoute as refused:
            note = refused.problem("so the app runs but its address shows the waiting page; this is tried every minute")
            return dataclasses.replace(record, url_note=note)
        record = dataclasses.replace(record, rule_arn=rule, url_note="")
    return record


def look_at_health(elb: Elb, record: Record, health: list[dict[str, Any]] | None = None) -> Record:
    """A live app's target as the load balancer sees it (`health`, if just read, else one
    DescribeTargetHealth), and its route settled accordingly: healthy for the first time, the
    host gets its rule."""
    if not (record.target_group_arn and record.routed_target):
        return record
    if health is None:
        health = elb.target_health(record.target_group_arn)
    return settle(elb, addresses.after_health_look(record, health, int(time.time())))
