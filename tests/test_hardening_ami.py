"""AMI without the secret in clear text, against the real Asterisk 22 (tests/pbx).

- MD5 challenge login: ``Challenge`` (AuthType MD5) then ``Login`` with ``Key`` =
  md5(challenge + secret); a wrong secret is refused the same way as a plain login.
- TLS (manager.conf ``tlsenable``): a self-signed certificate generated here for 127.0.0.1,
  which the client verifies; a client trusting another certificate is refused, and the
  plain-text port still answers for clients that are not configured for TLS.
- The PBX service uses both from its settings and tracks a real call through them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from earwitness.config import load_settings
from earwitness.telephony.ami import AmiAuthError, AmiClient, AmiState
from earwitness.telephony.service import ami_tls_context
from tests.pbx.asterisk import Asterisk

pytestmark = pytest.mark.asterisk
pytest_plugins = ["tests.pbx.fixtures"]
T = TypeVar("T")


def self_signed(name: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """A certificate valid for one day for ``name`` (IP SAN), and its private key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, Path]:
    cert, key = self_signed()
    path = tmp_path_factory.mktemp("tls") / "pbx-cert.pem"
    path.write_bytes(cert)
    return cert, key, path


@pytest.fixture(scope="module")
def pbx(asterisk_root: Path, certificate: tuple[bytes, bytes, Path]) -> Iterator[Asterisk]:
    cert, key, _ = certificate
    instance = Asterisk(asterisk_root, tls_cert=(cert, key))
    try:
        instance.start()
    except Exception as exc:
        instance.kill()
        pytest.fail(f"Asterisk did not start: {exc}", pytrace=False)
    try:
        yield instance
    finally:
        instance.stop()
        instance.cleanup()


def arun(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _login(client: AmiClient) -> dict[str, Any]:
    client.start()
    try:
        await client.wait_connected(timeout=15)
        pong = await client.send("Ping")
        return {"state": client.state, "ping": pong.get("Response"), "version": client.version}
    finally:
        await client.close()


def test_md5_challenge_login(pbx: Asterisk) -> None:
    client = AmiClient(pbx.ami_host, pbx.ami_port, pbx.ami_user, pbx.ami_secret, auth="md5")
    result = arun(_login(client))
    assert result["state"] is AmiState.CONNECTED and result["ping"] == "Success"
    assert client.counters.logins == 1


def test_md5_challenge_login_with_a_wrong_secret_is_refused(pbx: Asterisk) -> None:
    client = AmiClient(
        pbx.ami_host, pbx.ami_port, pbx.ami_user, "not-the-secret", auth="md5", backoff=(5, 5)
    )

    async def attempt() -> None:
        client.start()
        try:
            await client.wait_connected(timeout=15)
        finally:
            await client.close()

    with pytest.raises(AmiAuthError, match="failed"):
        arun(attempt())
    assert client.counters.auth_failures >= 1


def test_tls_with_the_pbx_certificate(
    pbx: Asterisk, certificate: tuple[bytes, bytes, Path]
) -> None:
    assert pbx.ami_tls_port is not None
    context = ssl.create_default_context(cafile=str(certificate[2]))
    for auth in ("plain", "md5"):
        client = AmiClient(
            pbx.ami_host, pbx.ami_tls_port, pbx.ami_user, pbx.ami_secret, auth=auth, tls=context
        )
        result = arun(_login(client))
        assert result["state"] is AmiState.CONNECTED and result["ping"] == "Success", auth


def test_tls_refuses_a_certificate_it_does_not_trust(pbx: Asterisk, tmp_path: Path) -> None:
    assert pbx.ami_tls_port is not None
    other = tmp_path / "other.pem"
    other.write_bytes(self_signed()[0])  # same name, another key: an impostor
    context = ssl.create_default_context(cafile=str(other))
    client = AmiClient(
        pbx.ami_host, pbx.ami_tls_port, pbx.ami_user, pbx.ami_secret, tls=context, backoff=(5, 5)
    )

    async def attempt() -> None:
        client.start()
        try:
            await client.wait_connected(timeout=15)
        finally:
            await client.close()

    with pytest.raises(AmiAuthError, match="TLS"):
        arun(attempt())
    assert client.counters.logins == 0


def test_service_settings_build_a_verified_tls_context(
    pbx: Asterisk, certificate: tuple[bytes, bytes, Path], tmp_path: Path
) -> None:
    """The PBX service (settings → client) logs in over TLS with MD5 and resyncs."""
    from earwitness.runtime import Runtime
    from tests.polling import wait_until

    settings = load_settings(
        data_dir=tmp_path / "data",
        demo="never",
        worker_mode="off",
        ami_host=pbx.ami_host,
        ami_port=pbx.ami_tls_port,
        ami_user=pbx.ami_user,
        ami_secret=pbx.ami_secret,
        ami_auth="md5",
        ami_tls=True,
        ami_tls_ca_path=certificate[2],
        ami_record_calls=False,
    )
    context = ami_tls_context(settings)
    assert context is not None and context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    runtime = Runtime.open(settings)
    try:
        runtime.start_services()
        service = runtime.services["ami"]
        health = wait_until(
            lambda: (h := service.health()).get("ok") and h.get("resyncs", 0) >= 1 and h,
            30,
            "the PBX service logged in over TLS",
        )
        assert health["configured"] is True
    finally:
        runtime.close()
