-- 105: registering AI models (ccl model add, the admin form of the AI 모델 page). A model row
-- says what a box's model_id means; until now nothing created one. description: free text
-- (what it was trained on); registered_by: who added it ("cli:<os user>" or the UI user).
ALTER TABLE ai_models
    ADD COLUMN description   text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    ADD COLUMN registered_by text;
