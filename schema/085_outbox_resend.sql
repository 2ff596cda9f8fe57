-- 085: dead letters sent again from the UI. A refused forward_outbox row (a dead letter) that an
-- admin sends again goes back to 'pending' (the running forwarder's poll picks it up, see
-- docs/forwarding.md); these columns keep that it was re-sent, how often and when (who: audit_logs).
-- Constant defaults: adding them rewrites nothing, and the writer's inserts do not name them.
ALTER TABLE forward_outbox
    ADD COLUMN resent_count integer NOT NULL DEFAULT 0,
    ADD COLUMN resent_at    timestamptz;
CREATE INDEX forward_outbox_resent ON forward_outbox (resent_at) WHERE resent_at IS NOT NULL;
