"""The management commands: `moa mixes`, `models`, `config`, `keys` and `history`.

Each prints plain text on stdout, so it pipes cleanly; notices and errors go to stderr.
No command here ever prints an API key.
"""
