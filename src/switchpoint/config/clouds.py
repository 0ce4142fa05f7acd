"""Cloud-hosted families (``bedrock``, ``vertex``): where a deployment's requests go and how."""

from __future__ import annotations

from typing import Any

#: The APIs a deployment of each cloud family may use (the first is the default, except that a
#: Vertex model named ``claude…`` defaults to ``anthropic``).
CLOUD_APIS: dict[str, tuple[str, ...]] = {
    "bedrock": ("converse", "invoke"),
    "vertex": ("gemini", "anthropic"),
}


def deployment_cloud_fields(
    family: str,
    model: str,
    api: str | None,
    region: str | None,
    location: str | None,
    provider: Any,
    path: str,
    problems: list[str],
    *,
    project: str | None = None,
) -> dict[str, Any]:
    """The resolved ``api``, ``region``, ``project`` and ``location`` of one deployment
    (problems added)."""
    apis = CLOUD_APIS.get(family)
    if apis is None:
        for key, value in (("api", api), ("region", region), ("project", project), ("location", location)):
            if value is not None:
                problems.append(f"{path}.{key}: only bedrock and vertex deployments take it")
        return {}
    if api is not None and api not in apis:
        problems.append(f"{path}.api: must be one of {', '.join(apis)} for the {family} family")
    if family == "bedrock":
        if location is not None or project is not None:
            key = "location" if location is not None else "project"
            problems.append(f"{path}.{key}: bedrock deployments take a region, not a {key}")
        chosen = region or provider.region
        if not chosen:
            problems.append(f"{path}.region: a bedrock deployment needs a region (here or on its provider)")
        return {"api": api or "converse", "region": chosen}
    if region is not None:
        problems.append(f"{path}.region: vertex deployments take a location, not a region")
    where = location or provider.location
    if not where:
        problems.append(f"{path}.location: a vertex deployment needs a location (here or on its provider)")
    chosen_project = project or provider.project
    if not chosen_project:
        problems.append(f"{path}.project: a vertex deployment needs a project (here or on its provider)")
    default = "anthropic" if model.startswith("claude") else "gemini"
    return {"api": api or default, "location": where, "project": chosen_project}


def provider_cloud_problems(family: str, spec: Any, path: str, problems: list[str]) -> None:
    """Keys of a provider that only some families take, and ``base_url`` where it is required."""
    if family not in CLOUD_APIS and not spec.base_url:
        problems.append(f"{path}.base_url: required for the {family} family")
    aws = {"region": spec.region, "aws_profile": spec.aws_profile}
    gcp = {"project": spec.project, "location": spec.location, "credentials_file": spec.credentials_file}
    for key, value in {**aws, **gcp}.items():
        if value is None:
            continue
        if (key in aws and family != "bedrock") or (key in gcp and family != "vertex"):
            owner = "bedrock" if key in aws else "vertex"
            problems.append(f"{path}.{key}: only {owner} providers take it")
