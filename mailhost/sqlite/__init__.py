"""SQLite, with writers queued fairly across processes (see base.py)."""
