"""Outbound relay: the queue table, delivery attempts, MX routing, DSNs."""
