"""The local side: the folder, SQLite and .eml/SMTP implementations of the small interfaces, and
the watched inbox folder with its ledger of claims."""
