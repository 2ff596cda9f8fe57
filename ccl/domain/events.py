"""The live events: what a service stored, announced to the UI at once.

Each service sends ``NOTIFY <EVENTS_CHANNEL>`` with a JSON payload naming the table (or TC
code) and the row in the transaction that stores it (PostgreSQL delivers it only if that
commits); the UI LISTENs on the channel and pushes each event to the browsers (SSE).
"""

#: The PostgreSQL LISTEN/NOTIFY channel of the live events: the one place that names it.
EVENTS_CHANNEL = "ccl_events"
