"""Use case of the AI 모델 page: an admin marks the deployed model (audited)."""

from __future__ import annotations

from ccl.ports import Actor, IAuditLog, IModelRegistry, NoSuchModel


class ModelDeployment:
    def __init__(self, registry: IModelRegistry, audit: IAuditLog):
        self._registry = registry
        self._audit = audit

    async def deploy(self, model_id: int, actor: Actor) -> int | None:
        """The previous deployed model's id; raises NoSuchModel (audited as such)."""
        try:
            previous = await self._registry.mark_deployed(model_id)
        except NoSuchModel:
            await self._audit.append(actor, "model.deploy", str(model_id), "unknown model")
            raise
        await self._audit.append(actor, "model.deploy", str(model_id), "ok", {"previous": previous})
        return previous
