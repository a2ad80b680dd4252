"""webapp_operator: a small real operator (WebApp -> ConfigMap, Deployment, Service) for opreplay's demo.

See `webapp_operator.operator`; run it with `python -m webapp_operator --namespace default`.
"""

from webapp_operator.operator import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ReconcileResult,
    ReconcileWrapper,
    RunSummary,
    reconcile,
    run,
)

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ReconcileResult",
    "ReconcileWrapper",
    "RunSummary",
    "reconcile",
    "run",
]
