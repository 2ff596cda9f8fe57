"""AI 모델: the models, their metrics history, and marking the deployed one."""

from __future__ import annotations

from twisted.internet import defer

from ccl import ports
from ccl.adapters.storage.ui_queries._sql import gather, rows

HISTORY_POINTS = 200


def models(db) -> defer.Deferred:
    return rows(db, """
        SELECT m.id, m.name, m.version, m.description, m.deployed, m.accuracy_score, m.precision_score,
               m.recall_score, m.f1_score, m.created_at, m.updated_at, m.registered_by
        FROM ai_models m ORDER BY m.deployed DESC, m.created_at DESC, m.id DESC""")


def metrics_history(db) -> defer.Deferred:
    """The latest HISTORY_POINTS metric rows of each model, oldest first."""
    return rows(db, """
        SELECT h.model_id, h.recorded_at, h.accuracy_score, h.precision_score, h.recall_score, h.f1_score
        FROM ai_models m CROSS JOIN LATERAL (
            SELECT * FROM ai_model_metrics x WHERE x.model_id = m.id
            ORDER BY x.recorded_at DESC LIMIT %s) h
        ORDER BY h.model_id, h.recorded_at""", (HISTORY_POINTS,))


def models_page(db) -> defer.Deferred:
    return gather(models=models(db), history=metrics_history(db))


UnknownModel = ports.NoSuchModel


def register(db, registration, registered_by: str) -> defer.Deferred:
    """Insert the model (not deployed); fires with its id. ModelExists (with the existing id)
    when the name and version are taken: the unique key decides, so two at once cannot both win."""

    @defer.inlineCallbacks
    def interaction(cursor):
        yield cursor.execute(
            "INSERT INTO ai_models (name, version, description, registered_by) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (name, version) DO NOTHING RETURNING id",
            (registration.name, registration.version, registration.description, registered_by))
        inserted = cursor.fetchall()
        if inserted:
            return inserted[0][0]
        yield cursor.execute("SELECT id FROM ai_models WHERE name = %s AND version = %s",
                             (registration.name, registration.version))
        raise ports.ModelExists(cursor.fetchall()[0][0])

    return db.runInteraction(interaction)


def mark_deployed(db, model_id: int) -> defer.Deferred:
    """Make ``model_id`` the one deployed model (in one transaction); fires with the previous
    deployed model's id (or None). Raises UnknownModel for an id that does not exist."""

    @defer.inlineCallbacks
    def interaction(cursor):
        yield cursor.execute("SELECT id FROM ai_models WHERE id = %s FOR UPDATE", (model_id,))
        if not cursor.fetchall():
            raise UnknownModel(model_id)
        yield cursor.execute("SELECT id FROM ai_models WHERE deployed FOR UPDATE")
        previous = [row[0] for row in cursor.fetchall()]
        yield cursor.execute("UPDATE ai_models SET deployed = false, updated_at = now() WHERE deployed AND id <> %s",
                             (model_id,))
        yield cursor.execute("UPDATE ai_models SET deployed = true, updated_at = now() WHERE id = %s AND NOT deployed",
                             (model_id,))
        return previous[0] if previous else None

    return db.runInteraction(interaction)
