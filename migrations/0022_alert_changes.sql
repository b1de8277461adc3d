-- Every alert change until it is announced (README "Alerts: failures with a lifecycle").
--
-- An alert row keeps only its last change, and 0009 kept whether that change was announced beside
-- it: a change written while routing failed was overwritten by the next one, so a fire followed by
-- a resolve (Redis away for the resolve-after period) was announced as `alert.resolved` alone and
-- the pager never got `alert.fired`. Each change is now appended here, with the alert as it left
-- it, in the statement that makes it (alert-store.ts); the announcer routes them in `seq` order and
-- deletes each once routed, so none is lost and an alert's changes arrive in the order made.
CREATE TABLE alert_changes (
  -- The order changes were written: one alert's changes are serialized by its row lock.
  seq              bigserial        PRIMARY KEY,
  alert_id         text             NOT NULL,
  -- The alert's columns as this change left them (`last_change` is this change).
  rule             text             NOT NULL,
  subject          text             NOT NULL,
  app              text             NOT NULL,
  env              text             NOT NULL,
  tenant           text,
  severity         text             NOT NULL,
  state            text             NOT NULL,
  count            integer          NOT NULL,
  first_fired_at   timestamptz      NOT NULL,
  last_fired_at    timestamptz      NOT NULL,
  acknowledged_at  timestamptz,
  acknowledged_by  text,
  resolved_at      timestamptz,
  last_value       double precision,
  message          text             NOT NULL,
  last_change      text             NOT NULL,
  version          integer          NOT NULL,
  updated_at       timestamptz      NOT NULL
);

-- The last changes 0009 had not announced yet are kept for the announcer.
INSERT INTO alert_changes (alert_id, rule, subject, app, env, tenant, severity, state, count, first_fired_at, last_fired_at,
                           acknowledged_at, acknowledged_by, resolved_at, last_value, message, last_change, version, updated_at)
SELECT id, rule, subject, app, env, tenant, severity, state, count, first_fired_at, last_fired_at,
       acknowledged_at, acknowledged_by, resolved_at, last_value, message, last_change, version, updated_at
  FROM alerts WHERE NOT announced ORDER BY updated_at, id;

-- `alerts.announced` (and its index `alerts_unannounced_idx`) is no longer used by this version:
-- nothing here reads it, and new rows omit it (NOT NULL DEFAULT false). It is kept so that instances
-- of the previous version keep working during a rolling deploy — their alert statements read and
-- write it, and one holding the evaluator lease would otherwise stop all alerting. A later
-- migration may drop it, once no instance of the previous version can be running.
