"""Task analytics views: cost per completed task, token efficiency, model switch frequency.

Revision ID: 0002_task_views
Revises: 0001_ledger
Create Date: 2026-12-02

Plain SQL views over ``requests`` and ``feedback`` (portable: SQLite >= 3.25 and PostgreSQL both
have the window functions used). The definitions are in docs/ledger.md, "Definitions".
"""

from __future__ import annotations

from alembic import op

revision = "0002_task_views"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None

#: Each task instance's latest outcome. A feedback row names a request (``request_id``) or a
#: client's own task (``task_id``); the instance is whichever it names. Later feedback wins.
TASK_OUTCOMES = """
CREATE VIEW ledger_task_outcomes AS
SELECT instance, kind, outcome, score, created_at FROM (
    SELECT COALESCE(task_id, request_id) AS instance,
           CASE WHEN task_id IS NULL THEN 'request' ELSE 'task' END AS kind,
           outcome, score, created_at,
           ROW_NUMBER() OVER (PARTITION BY COALESCE(task_id, request_id) ORDER BY id DESC) AS latest
    FROM feedback
) f
WHERE latest = 1
"""

#: Every request of every task instance that has an outcome: the request itself (``request_id``
#: feedback, or a ``task_id`` that is a request id), or every request of the session the
#: ``task_id`` names (``x-switchpoint-session``: the client sends its task id as the session).
TASK_REQUESTS = """
CREATE VIEW ledger_task_requests AS
SELECT o.instance, o.kind, o.outcome, o.score, r.request_id, r.started_at, r.task, r.alias,
       r.deployment, r.session, r.status, r.input_tokens, r.output_tokens, r.reasoning_tokens,
       r.cost_usd
FROM ledger_task_outcomes o JOIN requests r ON r.request_id = o.instance
UNION ALL
SELECT o.instance, o.kind, o.outcome, o.score, r.request_id, r.started_at, r.task, r.alias,
       r.deployment, r.session, r.status, r.input_tokens, r.output_tokens, r.reasoning_tokens,
       r.cost_usd
FROM ledger_task_outcomes o JOIN requests r ON r.session = o.instance AND r.request_id <> o.instance
WHERE o.kind = 'task'
"""

#: Cost per completed task, per task type, alias and deployment: every dollar spent on task
#: instances that got an outcome (completed, failed, abandoned) over the number that completed.
TASK_COSTS = """
CREATE VIEW ledger_task_costs AS
SELECT task, alias, deployment,
       COUNT(DISTINCT instance) AS tasks,
       COUNT(DISTINCT CASE WHEN outcome = 'completed' THEN instance END) AS completed,
       SUM(COALESCE(cost_usd, 0)) AS cost_usd,
       SUM(COALESCE(cost_usd, 0))
         / NULLIF(COUNT(DISTINCT CASE WHEN outcome = 'completed' THEN instance END), 0)
         AS cost_per_completed_task
FROM ledger_task_requests
GROUP BY task, alias, deployment
"""

#: Token efficiency, per task type, alias and deployment: visible output tokens of successful
#: requests (output minus reasoning, status < 400) over every token billed (input, which holds
#: cached reads and cache writes, plus output, which holds reasoning), failed requests included.
TOKEN_EFFICIENCY = """
CREATE VIEW ledger_token_efficiency AS
SELECT task, alias, deployment,
       COUNT(*) AS requests,
       SUM(CASE WHEN status < 400
                THEN COALESCE(output_tokens, 0) - COALESCE(reasoning_tokens, 0) ELSE 0 END)
         AS useful_output_tokens,
       SUM(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)) AS billed_tokens,
       CAST(SUM(CASE WHEN status < 400
                     THEN COALESCE(output_tokens, 0) - COALESCE(reasoning_tokens, 0) ELSE 0 END)
            AS DOUBLE PRECISION)
         / NULLIF(SUM(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)), 0)
         AS token_efficiency
FROM requests
GROUP BY task, alias, deployment
"""

#: A session's answered requests in order, each with the deployment that answered the one
#: before it (NULL for the session's first).
SESSION_TURNS = """
CREATE VIEW ledger_session_turns AS
SELECT session, request_id, started_at, task, alias, deployment,
       LAG(deployment) OVER (PARTITION BY session ORDER BY started_at, request_id) AS previous_deployment
FROM requests
WHERE session IS NOT NULL AND deployment IS NOT NULL
"""

#: Model switch frequency per session: turns whose deployment differs from the turn before,
#: over the turns that have one before them.
SESSION_SWITCHES = """
CREATE VIEW ledger_session_switches AS
SELECT session,
       COUNT(*) AS requests,
       COUNT(DISTINCT deployment) AS deployments,
       SUM(CASE WHEN previous_deployment IS NOT NULL AND previous_deployment <> deployment
                THEN 1 ELSE 0 END) AS switches,
       CAST(SUM(CASE WHEN previous_deployment IS NOT NULL AND previous_deployment <> deployment
                     THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
         / NULLIF(COUNT(*) - 1, 0) AS switch_rate
FROM ledger_session_turns
GROUP BY session
"""

#: The same, per task type and alias (of the turn that switched or stayed).
SWITCH_FREQUENCY = """
CREATE VIEW ledger_switch_frequency AS
SELECT task, alias,
       COUNT(DISTINCT session) AS sessions,
       COUNT(previous_deployment) AS turns,
       SUM(CASE WHEN previous_deployment IS NOT NULL AND previous_deployment <> deployment
                THEN 1 ELSE 0 END) AS switches,
       CAST(SUM(CASE WHEN previous_deployment IS NOT NULL AND previous_deployment <> deployment
                     THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
         / NULLIF(COUNT(previous_deployment), 0) AS switch_rate
FROM ledger_session_turns
GROUP BY task, alias
"""

#: In creation order (dropped in reverse: later views read earlier ones).
VIEWS = (
    ("ledger_task_outcomes", TASK_OUTCOMES),
    ("ledger_task_requests", TASK_REQUESTS),
    ("ledger_task_costs", TASK_COSTS),
    ("ledger_token_efficiency", TOKEN_EFFICIENCY),
    ("ledger_session_turns", SESSION_TURNS),
    ("ledger_session_switches", SESSION_SWITCHES),
    ("ledger_switch_frequency", SWITCH_FREQUENCY),
)


def upgrade() -> None:
    for _, sql in VIEWS:
        op.execute(sql)


def downgrade() -> None:
    for name, _ in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
