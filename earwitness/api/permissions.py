"""Who may do what: the one place that decides, for every route and page.

Modelled on Datasette's ``permissions.py`` + ``default_permissions``: views never
check roles themselves. The request pipeline (:mod:`earwitness.api.auth`) looks the
matched route up in :data:`MATRIX` and refuses before the view runs; a route that has
no entry is refused for everyone (deny by default), and the matrix test fails. Views
then ask the row-level questions here — which calls a user may see, whether numbers
are shown in full — and never look at ``principal.role`` directly.

The roles, from the seeds' call centre:

- ``agent`` answers calls: their own calls and scorecards, and registers a complaint
  (first-ask responsibility) from their own call.
- ``lead`` runs queues: calls in their queues, the live wallboard, SLA, deadlines, the
  Monday review, scorecards of their agents.
- ``qa`` audits conversations: recordings, transcripts, transcript search, audits and
  overrides, scorecards.
- ``investigator`` works complaint cases: cases, evidence, tracks, search, caller
  history, bundles — and sees phone numbers in full (they call complainants back).
- ``admin``: everything, including users and API keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from earwitness.accounts.principal import Principal
from earwitness.models import ROLES

PUBLIC: frozenset[str] = frozenset()  # no login needed
EVERYONE = frozenset(ROLES)


def roles(*names: str) -> frozenset[str]:
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles in the permission matrix: {sorted(unknown)}")
    return frozenset((*names, "admin"))


ADMIN = roles()
LEADS = roles("lead")
QA_WORK = roles("qa", "investigator")  # recordings and transcripts
CASE_WORK = roles("investigator")
SCORECARDS = roles("agent", "lead", "qa", "investigator")


@dataclass(frozen=True)
class Rule:
    """Who may call one route: ``public`` needs no login, else one of ``allowed``."""

    allowed: frozenset[str]
    public: bool = False

    def permits(self, role: str | None) -> bool:
        return self.public or (role is not None and role in self.allowed)


def _public() -> Rule:
    return Rule(PUBLIC, public=True)


def _only(allowed: frozenset[str]) -> Rule:
    return Rule(allowed)


# (method, route path as declared) → rule. Every route of the app has exactly one entry.
MATRIX: dict[tuple[str, str], Rule] = {
    # service and documentation
    ("GET", "/api/health"): _public(),
    ("GET", "/openapi.json"): _public(),
    ("GET", "/docs"): _public(),
    ("GET", "/docs/oauth2-redirect"): _public(),
    ("GET", "/redoc"): _public(),
    # sessions and the caller's own account
    ("GET", "/login"): _public(),
    ("POST", "/login"): _public(),
    ("POST", "/logout"): _only(EVERYONE),
    # web UI pages (earwitness/web): each as open as the API it shows ("/" redirects
    # a role without the wallboard to its first page)
    ("GET", "/"): _only(EVERYONE),
    ("GET", "/reports/sla"): _only(LEADS),
    ("GET", "/calls"): _only(EVERYONE),
    ("GET", "/calls/{call_id}"): _only(EVERYONE),
    ("GET", "/cases"): _only(CASE_WORK),
    ("GET", "/cases/{case_id}"): _only(CASE_WORK),
    ("GET", "/search"): _only(QA_WORK),
    ("GET", "/qa"): _only(SCORECARDS),
    ("GET", "/reports/weekly"): _only(roles("lead", "qa", "investigator")),
    ("GET", "/admin"): _only(ADMIN),
    ("POST", "/admin/queues"): _only(ADMIN),
    ("POST", "/admin/map"): _only(ADMIN),
    ("POST", "/admin/rules"): _only(ADMIN),
    ("GET", "/api/me"): _only(EVERYONE),
    ("POST", "/api/me/password"): _only(EVERYONE),
    # accounts (admin)
    ("GET", "/api/users"): _only(ADMIN),
    ("POST", "/api/users"): _only(ADMIN),
    ("PATCH", "/api/users/{user_id}"): _only(ADMIN),
    ("POST", "/api/users/{user_id}/password"): _only(ADMIN),
    ("POST", "/api/users/{user_id}/login-link"): _only(ADMIN),
    ("GET", "/api/keys"): _only(ADMIN),
    ("POST", "/api/keys"): _only(ADMIN),
    ("DELETE", "/api/keys/{key_id}"): _only(ADMIN),
    # jobs
    ("GET", "/api/jobs"): _only(roles("lead", "qa", "investigator")),
    ("GET", "/api/jobs/{job_id}"): _only(roles("lead", "qa", "investigator")),
    # calls (scoped per row: see call_scope) and the wallboard
    ("GET", "/api/calls"): _only(EVERYONE),
    ("GET", "/api/calls/{call_id}"): _only(EVERYONE),
    ("GET", "/api/calls/by-linkedid/{linkedid}"): _only(EVERYONE),
    ("GET", "/api/sla"): _only(LEADS),
    ("GET", "/api/live"): _only(LEADS),
    ("GET", "/api/live/stream"): _only(LEADS),
    # recordings and transcripts
    ("POST", "/api/recordings"): _only(QA_WORK),
    ("GET", "/api/recordings"): _only(QA_WORK),
    ("GET", "/api/recordings/{recording_id}"): _only(QA_WORK),
    ("GET", "/api/recordings/{recording_id}/audio"): _only(QA_WORK),
    ("GET", "/api/recordings/{recording_id}/transcript"): _only(QA_WORK),
    # QA
    ("GET", "/api/qa/calls/{recording_id}"): _only(SCORECARDS),
    ("POST", "/api/qa/calls/{recording_id}/audit"): _only(roles("qa")),
    ("PUT", "/api/qa/calls/{recording_id}/overrides/{rule_id}"): _only(roles("qa")),
    ("DELETE", "/api/qa/calls/{recording_id}/overrides/{rule_id}"): _only(roles("qa")),
    ("GET", "/api/agents/identities"): _only(roles("lead", "qa", "investigator")),
    ("PUT", "/api/agents/identities"): _only(roles("lead")),
    ("GET", "/api/qa/calls/{recording_id}/overrides"): _only(roles("qa", "investigator")),
    ("GET", "/api/qa/agents"): _only(SCORECARDS),
    ("GET", "/api/search"): _only(QA_WORK),
    ("GET", "/api/search/callers/{number}"): _only(CASE_WORK),
    # cases
    ("GET", "/api/cases"): _only(CASE_WORK),
    ("POST", "/api/cases"): _only(roles("agent", "investigator")),
    ("POST", "/api/calls/{call_id}/case"): _only(roles("agent", "investigator")),
    ("GET", "/api/cases/deadlines"): _only(roles("lead", "investigator")),
    ("GET", "/api/review/weekly"): _only(roles("lead", "qa", "investigator")),
    ("GET", "/api/cases/{case_id}"): _only(CASE_WORK),
    ("PATCH", "/api/cases/{case_id}"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/status"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/handover"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/actions"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/promises"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/promises/{promise_id}/kept"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/facts/refresh"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/facts/{fact_id}"): _only(CASE_WORK),
    ("GET", "/api/cases/{case_id}/timeline"): _only(CASE_WORK),
    ("GET", "/api/cases/{case_id}/bundle"): _only(CASE_WORK),
    ("GET", "/api/cases/{case_id}/calls"): _only(CASE_WORK),
    # follow-ups (the gateway's reply webhook proves itself with a shared secret)
    ("GET", "/api/cases/{case_id}/follow-ups"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/follow-ups"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/call-back"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/follow-ups/{follow_up_id}/outcome"): _only(CASE_WORK),
    ("POST", "/api/follow-ups/sms-reply"): _public(),
    # evidence and tracks
    ("POST", "/api/cases/{case_id}/evidence"): _only(CASE_WORK),
    ("GET", "/api/cases/{case_id}/evidence"): _only(CASE_WORK),
    ("GET", "/api/evidence/{evidence_id}"): _only(CASE_WORK),
    ("GET", "/api/evidence/{evidence_id}/content"): _only(CASE_WORK),
    ("POST", "/api/evidence/{evidence_id}/supersede"): _only(CASE_WORK),
    ("POST", "/api/evidence/{evidence_id}/verify"): _only(CASE_WORK),
    ("POST", "/api/evidence/verify"): _only(CASE_WORK),
    ("GET", "/api/evidence/verify"): _only(CASE_WORK),
    ("GET", "/api/evidence/{evidence_id}/custody"): _only(CASE_WORK),
    ("POST", "/api/tracks/analyze"): _only(CASE_WORK),
    ("POST", "/api/cases/{case_id}/tracks"): _only(CASE_WORK),
    ("GET", "/api/tracks/{track_id}"): _only(CASE_WORK),
    ("POST", "/api/tracks/{track_id}/analyze"): _only(CASE_WORK),
}


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a declared route; HEAD is answered as GET."""
    method = "GET" if method == "HEAD" else method
    return MATRIX.get((method, path))


# -- row-level questions the views ask -------------------------------------------------


def sees_full_numbers(principal: Principal) -> bool:
    """Investigators call complainants back; everyone else sees the last four digits."""
    return principal.role in ("investigator", "admin")


@dataclass(frozen=True)
class CallScope:
    """Which calls a user may see: all, one PBX agent's, or some queues'."""

    agent: str | None = None  # only calls answered by this agent (interface or name)
    queues: tuple[str, ...] = ()  # only calls in these queues; empty: all queues
    nothing: bool = False  # an agent not linked to a PBX agent has no "own" calls

    @property
    def everything(self) -> bool:
        return not self.nothing and self.agent is None and not self.queues


def call_scope(principal: Principal) -> CallScope:
    if principal.role == "agent":
        if not principal.pbx_agent:
            return CallScope(nothing=True)
        return CallScope(agent=principal.pbx_agent)
    if principal.role == "lead" and principal.queues:
        return CallScope(queues=principal.queues)
    return CallScope()


def call_in_scope(scope: CallScope, agent_names: tuple[str | None, ...], queue: str | None) -> bool:
    """``agent_names``: the call's agent as interface and display name."""
    if scope.nothing:
        return False
    if scope.agent is not None and scope.agent not in agent_names:
        return False
    return not scope.queues or queue in scope.queues
