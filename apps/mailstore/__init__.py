"""The mail store: folders, messages, flags, UIDs, modseq, expunge log and blobs."""
