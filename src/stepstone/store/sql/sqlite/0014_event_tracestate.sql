-- The W3C tracestate of an event's trace (tracing.py), beside its traceparent (0013).
ALTER TABLE events ADD COLUMN tracestate TEXT;
