"""AI 모델: the models and their metrics history; admins mark the deployed one."""

from __future__ import annotations

from ccl.adapters.web.ui.pages._data import FORMAT
from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.ports import NoSuchModel


@route("models", "/models")
async def models(ctx):
    found = await ctx.uses.models.models_page()
    return ctx.render("models.html", found=found, fmt=FORMAT, can_deploy=ctx.user.role == "admin")


@route("models_data", "/api/models")
async def models_data(ctx):
    return await ctx.uses.models.models_page()


@route("model_deploy", "/api/models/<int:model_id>/deploy", methods=("POST",))
async def model_deploy(ctx, model_id):
    try:
        previous = await ctx.uses.deployment.deploy(model_id, ctx.actor)
    except NoSuchModel:
        raise HTTPError(404, "no such model", {"id": model_id}) from None
    return {"deployed": model_id, "previous": previous}
