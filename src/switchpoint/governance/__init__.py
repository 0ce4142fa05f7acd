"""Governance: virtual keys, teams, limits, budgets, alerts and priority, over one shared-state seam."""
