"""What the UI's pages work with: use cases for every change, read ports for what they show.

The composition root (ccl/services/ui.py) builds one :class:`UseCases` over the storage
adapters and hands it to ``UI``; a handler reaches it as ``ctx.uses`` (``ctx.uses.alerts``,
``ctx.uses.coils`` ...). No page talks to the database itself.
"""

from __future__ import annotations

import attrs

from ccl.application.accounts import Accounts
from ccl.application.ai_models import ModelDeployment, ModelRegistration
from ccl.application.alerts import Alerts
from ccl.application.inspection import DefectReviews, InspectionRules
from ccl.application.quality import Grading, QualityAdmin
from ccl.application.refusals import DeadLetters, RejectedTelegrams
from ccl.ports.tracking import ITrackingReads
from ccl.application.reports import CoilReports, ReviewAccuracy, TrainingExport
from ccl.ports import (ICoilHistory, ICoilReads, IDashboardReads, IDatabaseProbe, IEventFeed, IModelRegistry,
                       IPeerImages, IStatistics, IAuditLog)


@attrs.frozen
class UseCases:
    accounts: Accounts
    alerts: Alerts
    rules: InspectionRules
    reviews: DefectReviews
    deployment: ModelDeployment
    registration: ModelRegistration
    audit: IAuditLog
    probe: IDatabaseProbe
    events: IEventFeed
    dashboard: IDashboardReads
    coils: ICoilReads
    history: ICoilHistory
    statistics: IStatistics
    models: IModelRegistry
    rejected_telegrams: RejectedTelegrams
    dead_letters: DeadLetters
    tracking: ITrackingReads
    grading: Grading
    quality: QualityAdmin
    reports: CoilReports
    accuracy: ReviewAccuracy
    training: TrainingExport
    #: The other plant server's image files (docs/operations.md, "Two plant servers: images").
    peer_images: IPeerImages
