-- FraiseQL Subscriptions outbox, version 1.
-- __SCHEMA__ is replaced by the quoted schema name, __CHANNEL__ by the
-- NOTIFY channel "<schema>_outbox" as a string literal.

CREATE TABLE IF NOT EXISTS __SCHEMA__.outbox (
    id           bigserial PRIMARY KEY,
    tenant       text        NOT NULL,
    topic        text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    forwarded_at timestamptz
);

-- What the bridge reads: rows not yet forwarded, in id order.
CREATE INDEX IF NOT EXISTS outbox_pending ON __SCHEMA__.outbox (id) WHERE forwarded_at IS NULL;
-- What pruning deletes: forwarded rows older than the retention.
CREATE INDEX IF NOT EXISTS outbox_forwarded ON __SCHEMA__.outbox (forwarded_at) WHERE forwarded_at IS NOT NULL;

-- Events that can never be published (bad tenant or topic, payload not a
-- JSON object or too large), with the reason. Operators fix and re-publish
-- them by hand; the bridge never reads this table.
CREATE TABLE IF NOT EXISTS __SCHEMA__.dead_letter (
    id        bigserial   PRIMARY KEY,
    source    text        NOT NULL,  -- outbox, notify:<channel>, changelog:<table>
    source_id text,                  -- the row id in the source, when it has one
    tenant    text,
    topic     text,
    payload   text,
    reason    text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);

-- How far each tailed source was forwarded.
CREATE TABLE IF NOT EXISTS __SCHEMA__.checkpoint (
    source     text        PRIMARY KEY,
    last_id    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- publish stores one event in the outbox and wakes the bridge. The event is
-- forwarded only if the calling transaction commits.
CREATE OR REPLACE FUNCTION __SCHEMA__.publish(tenant text, topic text, payload jsonb)
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO __SCHEMA__.outbox (tenant, topic, payload)
    VALUES (publish.tenant, publish.topic, publish.payload)
    RETURNING id INTO new_id;
    -- A wake-up only (notifications with equal payloads in one transaction
    -- fold into one); the bridge reads the rows, and polls as well.
    PERFORM pg_notify(__CHANNEL__, '');
    RETURN new_id;
END
$fn$;
