"""Use cases of the AI 모델 page and ``ccl model``: register a model, mark the deployed one
(both audited)."""

from __future__ import annotations

from ccl.domain.ai_models import ModelError, check_registration
from ccl.ports import Actor, IAuditLog, IModelRegistry, ModelExists, NoSuchModel


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


class ModelRegistration:
    """Add an ``ai_models`` row, so that boxes can name it as ``model_id`` (not deployed yet)."""

    def __init__(self, registry: IModelRegistry, audit: IAuditLog):
        self._registry = registry
        self._audit = audit

    async def register(self, name: str | None, version: str | None, description: str | None,
                       actor: Actor) -> int:
        """The new model's id. Raises ModelError (bad input: nothing stored, nothing audited:
        nothing happened) or ModelExists (audited as ``exists``, with the existing id)."""
        registration = check_registration(name, version, description)
        target = f"{registration.name} {registration.version}"
        details = {"name": registration.name, "version": registration.version, "description": registration.description}
        try:
            model_id = await self._registry.register(registration, actor.username)
        except ModelExists as exists:
            await self._audit.append(actor, "model.register", target, "exists", {**details, "id": exists.args[0]})
            raise
        await self._audit.append(actor, "model.register", target, "ok", {**details, "id": model_id})
        return model_id

    async def models(self) -> list[dict]:
        return await self._registry.models()


__all__ = ["ModelDeployment", "ModelRegistration", "ModelError", "ModelExists", "NoSuchModel"]
