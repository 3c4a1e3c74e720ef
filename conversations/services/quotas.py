"""Token quotas per day and per month (UTC), per user and per group, and the usage they count.

Usage is one `UsageDay` row per user, day and model, added to once per answer at its final
write (streaming/usage.py). A send learns whether a quota applies with the sender's row it locks
anyway (`applies`), and only then reads the quotas with their usage, in one query (at most a
month of rows per model).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import BooleanField, F, IntegerField, Q, QuerySet, Subquery, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations.models import Quota, UsageDay


@dataclass
class OverQuota(Exception):
    message: str
    retry_after: int  # seconds until the exceeded limit resets
    resets_at: dt.datetime


@dataclass(frozen=True)
class Limits:
    daily: int | None
    monthly: int | None
    day_used: int
    month_used: int


def applies() -> RawSQL:
    """Whether a quota applies to the user of the row (an annotation on a User queryset):
    their own, or one of their groups'. Every send pays it, inside the query that locks the
    sender: written out, since the ORM took about a millisecond of CPU to compile the same
    two EXISTS each time (indexed lookups: quotas by user and by group, groups by user)."""
    user = get_user_model()._meta.db_table
    quota = Quota._meta.db_table
    memberships = get_user_model().groups.through._meta.db_table
    return RawSQL(
        f"EXISTS (SELECT 1 FROM {quota} q WHERE q.user_id = {user}.id)"
        f" OR EXISTS (SELECT 1 FROM {quota} q JOIN {memberships} m ON m.group_id = q.group_id"
        f" WHERE m.user_id = {user}.id)",
        (),
        output_field=BooleanField(),
    )


def limits_for(*, user_id: int, now: dt.datetime | None = None) -> Limits | None:
    """The tightest daily and monthly limits applying to the user, with the usage they count;
    None when no quota applies. One query: the quotas, each annotated with the usage."""
    today = (now or timezone.now()).astimezone(dt.UTC).date()
    month = UsageDay.objects.filter(user_id=user_id, day__gte=today.replace(day=1))

    def used(rows: QuerySet[UsageDay]) -> Coalesce:
        total = (
            rows.values("user")  # one user: one group, the sum
            .annotate(t=Sum(F("prompt_tokens") + F("completion_tokens")))
            .values("t")
        )
        return Coalesce(Subquery(total, output_field=IntegerField()), 0)

    rows = list(
        Quota.objects.filter(Q(user_id=user_id) | Q(group__user=user_id))
        .annotate(day_used=used(month.filter(day=today)), month_used=used(month))
        .values_list("daily_tokens", "monthly_tokens", "day_used", "month_used")
    )
    if not rows:
        return None
    daily = [row[0] for row in rows if row[0] is not None]
    monthly = [row[1] for row in rows if row[1] is not None]
    return Limits(
        daily=min(daily, default=None),
        monthly=min(monthly, default=None),
        day_used=rows[0][2],
        month_used=rows[0][3],
    )


def check_quota(*, user_id: int, now: dt.datetime | None = None) -> None:
    """Raise OverQuota when a limit applying to the user is used up. Called under the
    sender's lock (sending.py), so the usage read is the one the send is judged by, and only
    when `applies` said a quota does."""
    now = now or timezone.now()
    limits = limits_for(user_id=user_id, now=now)
    if limits is None:
        return
    today = now.astimezone(dt.UTC).date()
    tomorrow = today + dt.timedelta(days=1)
    next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    exceeded: list[tuple[str, int, dt.date]] = []
    if limits.monthly is not None and limits.month_used >= limits.monthly:
        exceeded.append(("monthly", limits.monthly, next_month))
    if limits.daily is not None and limits.day_used >= limits.daily:
        exceeded.append(("daily", limits.daily, tomorrow))
    if not exceeded:
        return
    what, limit, resets = exceeded[0]  # the monthly one, when both: it resets later
    resets_at = dt.datetime.combine(resets, dt.time(), tzinfo=dt.UTC)
    wait = max(1, int((resets_at - now).total_seconds()))
    raise OverQuota(
        f"You have used your {what} quota of {limit:,} tokens. It resets at "
        f"{resets_at:%H:%M} UTC on {resets_at:%-d %B %Y} (in {_duration(wait)}).",
        retry_after=wait,
        resets_at=resets_at,
    )


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = max(1, rest // 60) if not (days or hours) else rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def usage_since(*, user_id: int, days: int = 30) -> list[UsageDay]:
    """The user's usage rows of the last `days` days (today included), newest first."""
    today = timezone.now().astimezone(dt.UTC).date()
    since = today - dt.timedelta(days=days - 1)
    return list(UsageDay.objects.filter(user_id=user_id, day__gte=since).order_by("-day", "model"))
