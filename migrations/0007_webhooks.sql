-- Webhooks (issue 11): endpoints, one delivery per (endpoint, event, trigger) and every attempt.
-- Deliveries are the durable record in every mode: the BullMQ queue (with Redis) or the embedded
-- loop only decide when each is attempted.
CREATE TABLE webhook_endpoints (
  id                           text        PRIMARY KEY,
  app                          text        NOT NULL,
  env                          text        NOT NULL,
  -- Null: every tenant of the environment; set: that tenant's events only.
  tenant                       text,
  url                          text        NOT NULL,
  description                  text        NOT NULL DEFAULT '',
  -- Event types and topic patterns (`orders.*`, `*`).
  events                       text[]      NOT NULL,
  enabled                      boolean     NOT NULL DEFAULT true,
  disabled_reason              text,
  secret                       text        NOT NULL,
  -- The secret a rotation replaced, still signing until it expires.
  previous_secret              text,
  previous_secret_expires_at   timestamptz,
  rate_limit_per_second        integer,
  max_concurrency              integer     NOT NULL,
  -- Since when every attempt failed (null after a success): disables the endpoint when too long.
  failing_since                timestamptz,
  last_success_at              timestamptz,
  created_at                   timestamptz NOT NULL DEFAULT now(),
  updated_at                   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_scope_idx ON webhook_endpoints (app, env);

CREATE TABLE webhook_deliveries (
  -- Creation order: one lane's deliveries are attempted in this order.
  id               bigserial   PRIMARY KEY,
  endpoint_id      text        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  event_id         text        NOT NULL,
  event_type       text        NOT NULL,
  topic            text        NOT NULL,
  -- The event's entity (or its id when it has none): a lane's deliveries go out one at a time, in order.
  lane             text        NOT NULL,
  -- The body sent, as JSON text (signed byte for byte).
  body             text        NOT NULL,
  -- initial, replay, manual (redelivery) or test.
  trigger          text        NOT NULL,
  -- pending, delivered or dead.
  state            text        NOT NULL DEFAULT 'pending',
  attempts         integer     NOT NULL DEFAULT 0,
  first_attempt_at timestamptz,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  -- A worker attempting it holds it until then (a worker that dies mid-attempt releases it by time).
  leased_until     timestamptz,
  last_status      integer,
  last_error       text,
  event_time       timestamptz NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz
);
-- A routed event is delivered once per endpoint, however often its source routes it again.
CREATE UNIQUE INDEX webhook_deliveries_initial_idx ON webhook_deliveries (endpoint_id, event_id) WHERE trigger = 'initial';
CREATE INDEX webhook_deliveries_lane_idx ON webhook_deliveries (endpoint_id, lane, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (finished_at) WHERE state <> 'pending';

CREATE TABLE webhook_attempts (
  id               bigserial   PRIMARY KEY,
  delivery_id      bigint      NOT NULL,
  endpoint_id      text        NOT NULL,
  event_id         text        NOT NULL,
  event_type       text        NOT NULL,
  attempt          integer     NOT NULL,
  trigger          text        NOT NULL,
  -- delivered, failed, gone, throttled, refused (target not allowed), dead (the last one).
  outcome          text        NOT NULL,
  status           integer,
  duration_ms      integer     NOT NULL,
  error            text,
  response_excerpt text,
  next_attempt_at  timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_created_idx ON webhook_attempts (created_at);
