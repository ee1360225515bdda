"""File transfers recorded as what they did: sftp and old-protocol scp decoded on the way
through (sftp.py, scp.py), rsync from its argv, and the sink that puts file operations and
byte counts, not file contents, into the recording (sink.py)."""
