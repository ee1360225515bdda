"""The systemd unit of the collector, as ``sshrec setup --collector`` installs it (the copy in
samples/systemd/ is this text for the default paths; a test keeps them the same)."""

from __future__ import annotations

DEFAULTS = {"user": "sshrec", "executable": "/usr/local/bin/sshrec", "home": "/var/lib/sshrec",
            "socket_dir": "/run/sshrec"}

TEMPLATE = """# /etc/systemd/system/sshrec-collector.service (sshrec setup --collector installs it).
# The collector runs as its own user, owns the spool, and can do nothing else: every
# hardening option below is on. It needs to read /proc/PID/stat of the recorders (to check
# they run under sshd), so ProtectProc is left at its default.
[Unit]
Description=sshrec collector: receives and keeps SSH session recordings
After=local-fs.target

[Service]
Type=simple
User=sshrec
Group=sshrec
ExecStart=/usr/local/bin/sshrec collector
Restart=on-failure
RestartSec=1
# /run/sshrec (the socket, which anyone may connect to) and /var/lib/sshrec (the spool, 0700)
RuntimeDirectory=sshrec
RuntimeDirectoryMode=0755
RuntimeDirectoryPreserve=yes
StateDirectory=sshrec
StateDirectoryMode=0700
UMask=0077
# Sandboxing: a read-only system, no home folders, no devices, no privileges to gain.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=/var/lib/sshrec
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
# Unix sockets only; an index in PostgreSQL over TCP needs AF_INET AF_INET6 here too.
RestrictAddressFamilies=AF_UNIX

[Install]
WantedBy=multi-user.target
"""


def unit_text(user: str, executable: str, home: str, socket_dir: str, network: bool = False) -> str:
    """The unit for these paths (systemd makes the state and runtime folders under /var/lib
    and /run; elsewhere they are ReadWritePaths, made by setup). ``network``: the collector
    reaches a PostgreSQL index or an object store over TCP."""
    text = TEMPLATE.replace("User=sshrec", f"User={user}").replace("Group=sshrec", f"Group={user}")
    text = text.replace("ExecStart=/usr/local/bin/sshrec collector",
                        f"ExecStart={executable} collector --home {home} --socket {socket_dir}/collector.sock")
    text = text.replace("ReadWritePaths=/var/lib/sshrec", f"ReadWritePaths={home} {socket_dir}")
    if not home.startswith("/var/lib/"):
        text = text.replace("StateDirectory=sshrec\nStateDirectoryMode=0700\n", "")
    if socket_dir != "/run/sshrec":
        runtime = "RuntimeDirectory=sshrec\nRuntimeDirectoryMode=0755\nRuntimeDirectoryPreserve=yes\n"
        text = text.replace(runtime, "")
    if network:
        unix_only = "RestrictAddressFamilies=AF_UNIX\n"
        text = text.replace(text[text.index("# Unix sockets only"):text.index(unix_only) + len(unix_only)],
                            "# Unix sockets, and TCP for the config's PostgreSQL index or object store.\n"
                            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n")
    return text
