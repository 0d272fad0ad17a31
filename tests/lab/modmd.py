"""A lab apache2 whose stapling is done by mod_md (``MDStapling on``) instead of mod_ssl.

Same private Debian-like tree as :class:`tests.lab.apache.ApacheInstance`, with
``mods-enabled/md.load`` linked and a ``conf-enabled/md-stapling.conf`` holding the mod_md
settings, and no mod_ssl stapling block. mod_md needs mod_watchdog, which Debian's apache2
has compiled in. Responses are kept under ``md_store/ocsp/``, a directory under /tmp
that httpd's User can enter.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.apache import MODULES_DIR, ApacheInstance

MD_CONF = """\
# mod_md staples every certificate (MDStapleOthers: also those mod_md does not manage).
MDStoreDir {store}
MDStapling on
MDStapleOthers on
MDStaplingRenewWindow {renew_window}
MDStaplingKeepResponse {keep_response}
"""


def open_store() -> Path:
    """A store directory httpd's User can reach: mod_md's OCSP watchdog runs in a child as
    ``User`` and cannot write under pytest's root-only temporary directories."""
    path = Path(tempfile.mkdtemp(prefix="ocsp-lab-md-", dir="/tmp"))
    path.chmod(0o755)
    return path


@dataclass
class ModMdApacheInstance(ApacheInstance):
    stapling: bool = False           # no mod_ssl stapling block
    renew_window: str = "33%"
    keep_response: str = "7d"
    md_config: bool = True           # False: the tree only has md.load available (for the role)
    md_store: Path = field(default_factory=open_store)

    def remove_store(self) -> None:
        """Remove the store (call once the instance is stopped for good)."""
        shutil.rmtree(self.md_store, ignore_errors=True)

    def write_config(self) -> None:
        super().write_config()
        load = self.conf_dir / "mods-available" / "md.load"
        load.write_text(f"LoadModule md_module {MODULES_DIR / 'mod_md.so'}\n")
        if not self.md_config:
            return
        enabled = self.conf_dir / "mods-enabled" / "md.load"
        if not enabled.exists():
            enabled.symlink_to(load)
        self.md_store.mkdir(parents=True, exist_ok=True)
        conf = self.conf_dir / "conf-available" / "md-stapling.conf"
        conf.write_text(MD_CONF.format(store=self.md_store, renew_window=self.renew_window,
                                       keep_response=self.keep_response))
        link = self.conf_dir / "conf-enabled" / "md-stapling.conf"
        if not link.exists():
            link.symlink_to(conf)

    def stored_responses(self) -> dict[str, dict]:
        """mod_md's persisted responses: file name -> the JSON it wrote (``ocsp/other/*.json``)."""
        out = {}
        for path in sorted(self.md_store.glob("ocsp/**/*.json")):
            try:
                out[path.name] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return out
