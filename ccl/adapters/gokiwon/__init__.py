"""Forwarding to 고기원: outgoing channel connections, the ACK listener, the outbox store, a simulator."""
