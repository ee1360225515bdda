"""The files in samples/ stay valid: the config file loads, the sshd snippets pass `sshd -t`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sshd_harness import find_sshd, generate_key
from sshrec.schema.settings import load_settings

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_the_sample_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSHREC_CONFIG", str(SAMPLES / "sshrec.toml"))
    monkeypatch.delenv("SSHREC_HOME", raising=False)
    monkeypatch.delenv("SSHREC_DB", raising=False)
    settings = load_settings()
    assert settings.home == "/var/lib/sshrec" and settings.mosh == "deny" and not settings.deny_interactive


@pytest.mark.parametrize("snippet", sorted(p.name for p in (SAMPLES / "sshd_config.d").glob("*.conf")))
def test_sshd_accepts_the_snippet(tmp_path: Path, snippet: str) -> None:
    sshd = find_sshd()
    if sshd is None:
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("sshd -t checks the privilege separation user's setup as root only")
    key = tmp_path / "host_key"
    generate_key(key, "sshrec-sample-check")
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {key}\nInclude {SAMPLES / 'sshd_config.d' / snippet}\n")
    result = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
