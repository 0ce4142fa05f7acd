"""The web console at ``/ui``: server-rendered pages over the ledger, the live breakers and the
keys (docs/console.md). The api layer mounts it and hands it what it reads (:class:`ConsoleDeps`)."""

from switchpoint.console.app import routes
from switchpoint.console.deps import ConsoleDeps

__all__ = ["ConsoleDeps", "routes"]
