-- FraiseQL Subscriptions outbox, version 2: an event may carry the W3C
-- traceparent of the transaction that published it, so that its trace
-- continues on the nodes. NULL (the default) means none.

ALTER TABLE __SCHEMA__.outbox ADD COLUMN IF NOT EXISTS traceparent text;

-- The three-argument publish is replaced, not overloaded: with both, a
-- three-argument call would be ambiguous.
DROP FUNCTION IF EXISTS __SCHEMA__.publish(text, text, jsonb);

-- publish stores one event in the outbox and wakes the bridge. The event is
-- forwarded only if the calling transaction commits. traceparent, when
-- given and a valid W3C traceparent, becomes the event's traceparent
-- header; an invalid one is dropped by the bridge, never the event.
CREATE OR REPLACE FUNCTION __SCHEMA__.publish(tenant text, topic text, payload jsonb, traceparent text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
AS $fn$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO __SCHEMA__.outbox (tenant, topic, payload, traceparent)
    VALUES (publish.tenant, publish.topic, publish.payload, publish.traceparent)
    RETURNING id INTO new_id;
    PERFORM pg_notify(__CHANNEL__, '');
    RETURN new_id;
END
$fn$;
