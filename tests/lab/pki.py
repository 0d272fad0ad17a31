"""The lab's PKI: root -> intermediate -> OCSP signer and leaves, made with ``cryptography``.

Leaves (``LabPKI.leaves[name]``):

- ``good``: an ordinary site certificate with an AIA OCSP URL pointing at the lab responder;
- ``nourl``: no AIA OCSP URL (stapling cannot work; servers warn);
- ``muststaple``: carries the TLS feature extension status_request (OCSP Must-Staple);
- ``revoked``: listed as revoked by the lab responder.

``LabPKI.create(..., ca_issuers_url=URL)`` adds one more leaf, kept apart in
``LabPKI.extra_leaves`` so the web servers' site lists (:data:`LEAF_HOSTS`) do not change:

- ``aia`` (``aia.lab.test``): like ``good``, plus an AIA caIssuers URL (where the lab
  responder serves the intermediate, DER) for finding the issuer of a lone leaf.

Every leaf is written the way web servers read them: ``<name>.crt`` (leaf only),
``<name>.key``, ``<name>.chain.pem`` (intermediate), ``<name>.fullchain.pem`` (leaf +
intermediate) and ``<name>.combined`` (key + leaf + intermediate, as cPanel stores them).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

LEAF_NAMES = ("good", "nourl", "muststaple", "revoked")
# The domain each leaf serves; SNI picks the site.
LEAF_HOSTS = {name: f"{name}.lab.test" for name in LEAF_NAMES}
# Leaves made only on request, never served by the lab's web servers.
EXTRA_LEAF_HOSTS = {"aia": "aia.lab.test"}


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ocsp.stapling lab"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Issued:
    """A certificate with its key and the files it was written to."""

    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def cert_path(self) -> Path:
        return self.files["crt"]

    @property
    def key_path(self) -> Path:
        return self.files["key"]

    @property
    def chain_path(self) -> Path:
        return self.files.get("chain", self.files["crt"])

    @property
    def fullchain_path(self) -> Path:
        return self.files.get("fullchain", self.files["crt"])

    @property
    def combined_path(self) -> Path:
        return self.files["combined"]

    @property
    def serial(self) -> int:
        return self.cert.serial_number


class LabPKI:
    """A throw-away CA hierarchy on disk. Build with :meth:`create`, reopen with :meth:`load`."""

    def __init__(self, directory: Path, ocsp_url: str, root: Issued, intermediate: Issued,
                 ocsp_signer: Issued, leaves: dict[str, Issued], revoked: dict[int, dt.datetime],
                 rogue: Issued, extra_leaves: dict[str, Issued] | None = None,
                 ca_issuers_url: str | None = None):
        self.directory = directory
        self.ocsp_url = ocsp_url
        self.root = root
        self.intermediate = intermediate
        self.ocsp_signer = ocsp_signer
        self.leaves = leaves
        self.revoked = revoked
        # A key and self-signed certificate nobody trusts: the responder's `badsig` mode signs with it.
        self.rogue = rogue
        # Leaves outside LEAF_NAMES (``aia``), present only when asked for at creation.
        self.extra_leaves = extra_leaves or {}
        self.ca_issuers_url = ca_issuers_url

    def all_leaves(self) -> dict[str, Issued]:
        """The standard leaves and the extra ones: everything the responder knows about."""
        return {**self.leaves, **self.extra_leaves}

    # -- building -------------------------------------------------------------------
    @classmethod
    def create(cls, directory: Path | str, ocsp_url: str, validity_days: int = 30,
               ca_issuers_url: str | None = None, not_before: dt.datetime | None = None) -> "LabPKI":
        """``ca_issuers_url``: also make the ``aia`` leaf, whose AIA caIssuers points there;
        ``not_before``: when every certificate starts to be valid (default five minutes ago)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        now = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
        until = now + dt.timedelta(days=validity_days)

        root_key = _key()
        root_cert = cls._ca_cert(_name("Lab Root CA"), root_key, _name("Lab Root CA"), root_key,
                                 now, until, path_length=1)
        root = Issued("root", root_cert, root_key)

        int_key = _key()
        int_cert = cls._ca_cert(_name("Lab Intermediate CA"), int_key, root_cert.subject, root_key,
                                now, until, path_length=0)
        intermediate = Issued("intermediate", int_cert, int_key)

        signer_key = _key()
        signer_cert = (
            cls._builder(_name("Lab OCSP Signer"), signer_key, int_cert.subject, now, until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(int_key, hashes.SHA256())
        )
        ocsp_signer = Issued("ocsp-signer", signer_cert, signer_key)

        leaves = {}
        for name in LEAF_NAMES:
            leaves[name] = cls._leaf(name, int_cert, int_key, ocsp_url if name != "nourl" else None,
                                     must_staple=(name == "muststaple"), now=now, until=until)
        extra_leaves = {}
        if ca_issuers_url:
            extra_leaves["aia"] = cls._leaf("aia", int_cert, int_key, ocsp_url, must_staple=False,
                                            now=now, until=until, ca_issuers_url=ca_issuers_url)

        rogue_key = _key()
        rogue_cert = cls._ca_cert(_name("Rogue Signer"), rogue_key, _name("Rogue Signer"), rogue_key,
                                  now, until, path_length=0)
        rogue = Issued("rogue", rogue_cert, rogue_key)

        revoked = {leaves["revoked"].serial: now}
        pki = cls(directory, ocsp_url, root, intermediate, ocsp_signer, leaves, revoked, rogue,
                  extra_leaves, ca_issuers_url)
        pki._write()
        return pki

    @staticmethod
    def _builder(subject: x509.Name, key, issuer: x509.Name, now, until) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )

    @classmethod
    def _ca_cert(cls, subject, key, issuer, issuer_key, now, until, path_length):
        return (
            cls._builder(subject, key, issuer, now, until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                           critical=True)
            .sign(issuer_key, hashes.SHA256())
        )

    @classmethod
    def _leaf(cls, name, issuer_cert, issuer_key, ocsp_url, must_staple, now, until,
              ca_issuers_url: str | None = None) -> Issued:
        key = _key()
        host = LEAF_HOSTS.get(name) or EXTRA_LEAF_HOSTS[name]
        builder = (
            cls._builder(_name(host), key, issuer_cert.subject, now, until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                           critical=False)
        )
        access = []
        if ocsp_url:
            access.append(x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                                 x509.UniformResourceIdentifier(ocsp_url)))
        if ca_issuers_url:
            access.append(x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                                 x509.UniformResourceIdentifier(ca_issuers_url)))
        if access:
            builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
        if must_staple:
            builder = builder.add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]),
                                            critical=False)
        return Issued(name, builder.sign(issuer_key, hashes.SHA256()), key)

    def _write(self) -> None:
        d = self.directory
        int_pem = _pem(self.intermediate.cert)
        for item in (self.root, self.intermediate, self.ocsp_signer, self.rogue):
            item.files["crt"] = self._put(d / f"{item.name}.crt", _pem(item.cert))
            item.files["key"] = self._put(d / f"{item.name}.key", _pem_key(item.key), mode=0o600)
        for leaf in self.all_leaves().values():
            crt, key = _pem(leaf.cert), _pem_key(leaf.key)
            leaf.files["crt"] = self._put(d / f"{leaf.name}.crt", crt)
            leaf.files["key"] = self._put(d / f"{leaf.name}.key", key, mode=0o600)
            leaf.files["chain"] = self._put(d / f"{leaf.name}.chain.pem", int_pem)
            leaf.files["fullchain"] = self._put(d / f"{leaf.name}.fullchain.pem", crt + int_pem)
            leaf.files["combined"] = self._put(d / f"{leaf.name}.combined", key + crt + int_pem, mode=0o600)
        # The bundle a client trusts, and the one nginx's ssl_trusted_certificate wants.
        self._put(d / "ca-bundle.pem", _pem(self.root.cert))
        self._put(d / "trusted-chain.pem", int_pem + _pem(self.root.cert))
        (d / "index.json").write_text(json.dumps({
            "ocsp_url": self.ocsp_url,
            "ca_issuers_url": self.ca_issuers_url,
            "extra_leaves": sorted(self.extra_leaves),
            "revoked": {str(serial): when.isoformat() for serial, when in self.revoked.items()},
        }, indent=2))

    @staticmethod
    def _put(path: Path, data: bytes, mode: int = 0o644) -> Path:
        path.write_bytes(data)
        path.chmod(mode)
        return path

    # -- reopening (the responder runs in its own process) ----------------------------
    @classmethod
    def load(cls, directory: Path | str) -> "LabPKI":
        d = Path(directory)
        index = json.loads((d / "index.json").read_text())

        def read(name: str) -> Issued:
            cert = x509.load_pem_x509_certificate((d / f"{name}.crt").read_bytes())
            key = serialization.load_pem_private_key((d / f"{name}.key").read_bytes(), None)
            item = Issued(name, cert, key, {"crt": d / f"{name}.crt", "key": d / f"{name}.key"})
            for kind, suffix in (("chain", "chain.pem"), ("fullchain", "fullchain.pem"),
                                 ("combined", "combined")):
                if (d / f"{name}.{suffix}").exists():
                    item.files[kind] = d / f"{name}.{suffix}"
            return item

        revoked = {int(s): dt.datetime.fromisoformat(w) for s, w in index["revoked"].items()}
        return cls(d, index["ocsp_url"], read("root"), read("intermediate"), read("ocsp-signer"),
                   {name: read(name) for name in LEAF_NAMES}, revoked, read("rogue"),
                   {name: read(name) for name in index.get("extra_leaves", [])},
                   index.get("ca_issuers_url"))

    @property
    def ca_bundle(self) -> Path:
        return self.directory / "ca-bundle.pem"

    @property
    def trusted_chain(self) -> Path:
        """Intermediate + root: what nginx's ``ssl_trusted_certificate`` needs to verify staples."""
        return self.directory / "trusted-chain.pem"
