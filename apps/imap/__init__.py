"""IMAP4rev1 and IMAP4rev2 server: pure parser, session state machine, command modules."""
