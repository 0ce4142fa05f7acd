"""Evals: prove a model or routing change before it ships.

A suite (YAML) holds cases and checks; candidates (aliases, deployments, whole routing policies)
run it through the gateway (in process over ASGI, or over HTTP); the metrics, the gate and the
reports come from the results. See docs/evals.md.
"""
