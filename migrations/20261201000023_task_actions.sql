-- What operators did through the console (issue 14): one row per action on a task (retry,
-- cancel, delete, each task of a bulk action) or on a queue/schedule (`task_id` NULL, the
-- target in `target`). Written by the api only, never by the engine's hot path; no foreign
-- key, so the record of a deletion outlives the task.
CREATE TABLE task_actions (
    id       bigserial PRIMARY KEY,
    task_id  uuid,
    target   text        NOT NULL,
    action   text        NOT NULL,
    actor    text        NOT NULL,
    outcome  text        NOT NULL,
    detail   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_actions_task_idx ON task_actions (task_id, at) WHERE task_id IS NOT NULL;
CREATE INDEX task_actions_at_idx ON task_actions (at);
