"""AI 모델: the models and their metrics history; admins mark the deployed one."""

from __future__ import annotations

from ccl.adapters.storage.ui_queries import models as queries
from ccl.adapters.web.ui.pages._data import FORMAT
from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route


@route("models", "/models")
async def models(ctx):
    found = await queries.models_page(ctx.db)
    return ctx.render("models.html", found=found, fmt=FORMAT, can_deploy=ctx.user.role == "admin")


@route("models_data", "/api/models")
async def models_data(ctx):
    return await queries.models_page(ctx.db)


@route("model_deploy", "/api/models/<int:model_id>/deploy", methods=("POST",))
async def model_deploy(ctx, model_id):
    try:
        previous = await queries.mark_deployed(ctx.db, model_id)
    except queries.UnknownModel:
        await ctx.audit("model.deploy", str(model_id), "unknown model")
        raise HTTPError(404, "no such model", {"id": model_id}) from None
    await ctx.audit("model.deploy", str(model_id), "ok", {"previous": previous})
    return {"deployed": model_id, "previous": previous}
