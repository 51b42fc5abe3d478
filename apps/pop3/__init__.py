"""POP3 (RFC 1939) over the mail store's INBOX."""
