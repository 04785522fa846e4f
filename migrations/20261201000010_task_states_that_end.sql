-- Task states that always end (issue 10, §3).
--
-- 1. Lost leases are counted apart from handler failures. `lease_losses` counts the losses
--    that were forgiven (the task only shared a worker with whatever killed it): the attempt
--    budget is `attempts - lease_losses < max_attempts`, while `attempts` keeps growing and
--    stays the fencing token of every write. After a few forgiven losses the task is marked
--    `isolate`: a worker runs it alone, and a loss while running alone counts as an attempt,
--    so a task that kills its worker still ends `dead`.
ALTER TABLE tasks
    ADD COLUMN lease_losses integer NOT NULL DEFAULT 0 CHECK (lease_losses >= 0),
    ADD COLUMN isolate      boolean NOT NULL DEFAULT false;

-- 2. A delivery follows its task, whatever ended it (handler, relay, cancel on request, a
--    cancelled bulk parent): a task that ends without sending leaves no delivery `queued`,
--    and re-driving a failed/dead delivery task queues its delivery again, so the re-drive
--    sends. Only deliveries the provider never accepted go back (no message id): a message
--    that was handed over is never sent twice by a re-drive.
CREATE FUNCTION delivery_follows_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('failed', 'dead', 'cancelled') THEN
        UPDATE deliveries SET status = 'failed', failed_at = now(), updated_at = now(),
            error = CASE WHEN NEW.status = 'cancelled'
                         THEN jsonb_build_object('code', 'cancelled', 'message', 'the delivery task was cancelled')
                         ELSE COALESCE(NEW.error, jsonb_build_object('code', NEW.status)) END
        WHERE task_id = NEW.id AND status = 'queued';
    ELSIF NEW.status = 'pending' AND OLD.status IN ('failed', 'dead') THEN
        UPDATE deliveries SET status = 'queued', error = NULL, failed_at = NULL, updated_at = now()
        WHERE task_id = NEW.id AND status = 'failed' AND provider_message_id IS NULL;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_delivery_follows AFTER UPDATE OF status ON tasks
    -- Only the transitions it acts on: claims and completions, the hot path of a bulk send,
    -- never call the function.
    FOR EACH ROW WHEN (NEW.kind = 'delivery' AND OLD.status IS DISTINCT FROM NEW.status
                       AND NEW.status IN ('failed', 'dead', 'cancelled', 'pending'))
    EXECUTE FUNCTION delivery_follows_task();

-- 3. Cancelling a bulk send cancels its children that have not started and asks the
--    running ones to stop, however the parent was cancelled (it waits between checks
--    without a worker, so the api's cancel may be what ends it).
CREATE FUNCTION bulk_cancels_children() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks t SET
        status = CASE WHEN t.status IN ('pending', 'retrying') THEN 'cancelled' ELSE t.status END,
        finished_at = CASE WHEN t.status IN ('pending', 'retrying') THEN now() ELSE t.finished_at END,
        cancel_requested = true, updated_at = now()
    FROM deliveries d
    WHERE d.bulk_task_id = NEW.id AND t.id = d.task_id
        AND t.status IN ('pending', 'retrying', 'running');
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_bulk_cancels_children AFTER UPDATE OF status ON tasks
    FOR EACH ROW WHEN (NEW.kind = 'delivery_bulk' AND NEW.status = 'cancelled'
                       AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION bulk_cancels_children();
