-- An event's trace context: the W3C traceparent of the span that sent it (tracing.py).
ALTER TABLE events ADD COLUMN trace TEXT;
