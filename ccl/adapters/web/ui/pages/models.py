"""AI 모델: the models and their metrics history; admins register a model and mark the deployed one."""

from __future__ import annotations

from ccl.adapters.web.ui.pages._data import FORMAT
from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.adapters.web.ui.pages.reports import review_filter
from ccl.application.ai_models import ModelError, ModelExists
from ccl.domain.review_accuracy import ALL_TYPES
from ccl.ports.reports import ReviewFilter
from ccl.ports import NoSuchModel


async def _models_page(ctx, *, code: int = 200, error: str | None = None, form: dict | None = None):
    query = review_filter(ctx) if code == 200 else ReviewFilter()
    found = await ctx.uses.models.models_page()
    figures = await ctx.uses.accuracy.figures(query)
    ctx.request.setResponseCode(code)
    registered = ctx.arg("registered")
    return ctx.render("models.html", found=found, fmt=FORMAT, can_deploy=ctx.user.role == "admin",
                      can_export=ctx.user.role in ("admin", "operator"), error=error, form=form or {},
                      registered=registered if (registered or "").isdigit() else None, figures=figures,
                      all_types=ALL_TYPES, min_reviews=ctx.settings.report.accuracy_min_reviews,
                      review_args={k: ctx.arg(k) or "" for k in ("from", "to", "model", "type")},
                      defect_types=await ctx.uses.coils.defect_types())


@route("models", "/models")
async def models(ctx):
    return await _models_page(ctx)


@route("models_data", "/api/models")
async def models_data(ctx):
    return await ctx.uses.models.models_page()


@route("model_register", "/models", methods=("POST",))
async def model_register(ctx):
    """The admin's form: a new model (name, version, description), audited as model.register."""
    form = {key: ctx.arg(key) or "" for key in ("name", "version", "description")}
    try:
        model_id = await ctx.uses.registration.register(form["name"], form["version"], form["description"], ctx.actor)
    except ModelError as error:
        return await _models_page(ctx, code=400, error=str(error), form=form)
    except ModelExists as exists:
        return await _models_page(ctx, code=409, form=form,
                                  error=ctx._("이미 등록된 모델입니다") + f" (id {exists.args[0]})")
    return ctx.redirect(f"/models?registered={model_id}")


@route("model_deploy", "/api/models/<int:model_id>/deploy", methods=("POST",))
async def model_deploy(ctx, model_id):
    try:
        previous = await ctx.uses.deployment.deploy(model_id, ctx.actor)
    except NoSuchModel:
        raise HTTPError(404, "no such model", {"id": model_id}) from None
    return {"deployed": model_id, "previous": previous}
