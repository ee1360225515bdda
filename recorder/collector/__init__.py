"""The collector: a daemon, as its own service user, that owns the spool. Recorders stream
their sessions to it over a Unix socket (protocol.py; docs/collector-protocol.md): sink.py is
the recorder's end, server.py the daemon, store.py what it writes."""
