"""stapling_facts: each site's issuer sources, in the order its server reads them."""
from __future__ import annotations

from pathlib import Path

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import config as dialect_apache
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import config as dialect_nginx
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import facts
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook import verdict as runbook
from tests.unit.paths import FIXTURES

MODULES = "/usr/lib/apache2/modules"

APACHE_MAIN = """\
ServerRoot "{root}/etc/apache2"
LoadModule ssl_module {modules}/mod_ssl.so
Listen 443
# Server scope: inherited by vhosts that name no CA file of their own.
SSLCACertificateFile /etc/ssl/certs/server-ca.pem
IncludeOptional sites-enabled/*.conf
"""

# Debian's default-ssl.conf shape: the leaf alone, the intermediate in the chain file,
# directives spread over comments, a relative CA path resolved against ServerRoot.
DEFAULT_SSL = """\
<IfModule mod_ssl.c>
\t<VirtualHost _default_:443>
\t\tServerName www.example.com
\t\tSSLEngine on
\t\t#   A self-signed (snakeoil) certificate can be created by installing ...
\t\tSSLCertificateFile\t/etc/ssl/certs/www.example.com.crt
\t\tSSLCertificateKeyFile /etc/ssl/private/www.example.com.key

\t\t#   Server Certificate Chain:
\t\tSSLCertificateChainFile /etc/apache2/ssl.crt/server-ca.crt

\t\t#   Certificate Authority (CA):
\t\tSSLCACertificatePath ssl.crt/
\t\tSSLCACertificateFile /etc/apache2/ssl.crt/ca-bundle.crt
\t\tSSLUseStapling on
\t</VirtualHost>
\t<VirtualHost _default_:443>
\t\tServerName plain.example.com
\t\tSSLEngine on
\t\tSSLCertificateFile /etc/ssl/certs/plain.example.com.pem
\t\tSSLCertificateKeyFile /etc/ssl/private/plain.example.com.key
\t</VirtualHost>
</IfModule>
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_apache_chain_file_ca_file_and_ca_path_in_mod_ssl_order(tmp_path):
    main = write(tmp_path / "etc/apache2/apache2.conf", APACHE_MAIN.format(root="", modules=MODULES))
    write(tmp_path / "etc/apache2/sites-enabled/default-ssl.conf", DEFAULT_SSL)
    config = dialect_apache.load_apache_config("/etc/apache2/apache2.conf", server_root="/etc/apache2",
                                               root=str(tmp_path))
    assert main.exists()
    sites = {s["names"][0]: s for s in facts.apache_sites(config)}
    www = sites["www.example.com"]
    assert www["certificate"] == ["/etc/ssl/certs/www.example.com.crt"]
    assert www["issuer_files"] == ["/etc/apache2/ssl.crt/server-ca.crt", "/etc/apache2/ssl.crt/ca-bundle.crt"]
    assert www["issuer_dirs"] == ["/etc/apache2/ssl.crt"]
    # The vhost without its own CA file inherits the server's.
    assert sites["plain.example.com"]["issuer_files"] == ["/etc/ssl/certs/server-ca.pem"]
    assert sites["plain.example.com"]["issuer_dirs"] == []
    # What the diagnosis hands the responder check.
    assert runbook.check_certificates({"sites": list(sites.values())})[0] == {
        "path": "/etc/ssl/certs/www.example.com.crt",
        "issuer_files": ["/etc/apache2/ssl.crt/server-ca.crt", "/etc/apache2/ssl.crt/ca-bundle.crt"],
        "issuer_dirs": ["/etc/apache2/ssl.crt"]}


NGINX = """\
events {}
http {
    server {
        listen 443 ssl;
        server_name shop.example.com;
        ssl_certificate     /etc/nginx/tls/shop.crt;
        ssl_certificate_key /etc/nginx/tls/shop.key;
        ssl_stapling on;
        ssl_trusted_certificate /etc/nginx/tls/chain.pem;
        ssl_client_certificate /etc/nginx/tls/clients-ca.pem;
    }
    server {
        listen 443 ssl;
        server_name bare.example.com;
        ssl_certificate     /etc/nginx/tls/bare.fullchain.pem;
        ssl_certificate_key /etc/nginx/tls/bare.key;
    }
}
"""


def test_nginx_trusted_then_client_certificate(tmp_path):
    write(tmp_path / "etc/nginx/nginx.conf", NGINX)
    config = dialect_nginx.load_nginx_config("/etc/nginx/nginx.conf", root=str(tmp_path))
    sites = {s["names"][0]: s for s in facts.nginx_sites(config)}
    assert sites["shop.example.com"]["issuer_files"] == ["/etc/nginx/tls/chain.pem", "/etc/nginx/tls/clients-ca.pem"]
    assert sites["shop.example.com"]["issuer_dirs"] == []
    assert sites["bare.example.com"]["issuer_files"] == []


def litespeed_site(certificates: dict) -> dict:
    return {"kind": "vhost", "name": "Example", "names": ["example.com"], "listen": [], "file": "/x", "line": 1,
            "certificates": {k: {"value": v, "file": "/x", "line": 1} for k, v in certificates.items()},
            "stapling": {}}


def test_litespeed_cert_chain_file_ca_file_and_ca_path():
    site = facts._litespeed_site(litespeed_site({
        "certFile": "/usr/local/lsws/conf/cert/example.crt", "certChain": "/usr/local/lsws/conf/cert/chain.pem",
        "CACertFile": "/usr/local/lsws/conf/cert/ca.pem", "CACertPath": "/usr/local/lsws/conf/cert/ca.d"}), "/usr/local/lsws")
    assert site["issuer_files"] == ["/usr/local/lsws/conf/cert/chain.pem", "/usr/local/lsws/conf/cert/ca.pem"]
    assert site["issuer_dirs"] == ["/usr/local/lsws/conf/cert/ca.d"]
    # OpenLiteSpeed's certChain 1 is a flag (the chain is in certFile), not a file.
    flagged = facts._litespeed_site(litespeed_site({"certFile": "/c.crt", "certChain": "1"}), "/usr/local/lsws")
    # certChain 1: the chain is read from certFile itself (the check does that first).
    assert flagged["issuer_files"] == [] and flagged["chain"] == "/c.crt"


def test_ols_fixture_reads_ca_cert_path(tmp_path):
    import shutil
    fixtures = FIXTURES / "configs" / "ols"
    shutil.copytree(fixtures, tmp_path, dirs_exist_ok=True, symlinks=True)
    conf = tmp_path / "usr/local/lsws/conf/httpd_config.conf"
    text = conf.read_text().replace("  certChain               1\n",
                                    "  certChain               1\n  CACertPath              /usr/local/lsws/conf/ca.d\n", 1)
    assert "CACertPath" in text
    conf.write_text(text)
    found = facts.gather_facts(root=str(tmp_path), run_binaries=False)
    listener = next(s for s in found["sites"] if s["server"] == "litespeed" and s["kind"] == "listener")
    assert listener["issuer_dirs"] == ["/usr/local/lsws/conf/ca.d"]
