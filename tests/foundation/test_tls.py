"""TLS by configuration: a server with HERALD_TLS_CERT_FILE/KEY_FILE, a client trusting HERALD_TLS_CA_FILE."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import grpc
import pytest
from google.protobuf import wrappers_pb2

from harness import serving, test_settings
from probe import ProbeService, method
from services.kit.auth import make_token
from services.kit.clients import open_channel


@pytest.fixture
def certificate(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


async def test_tls_server_accepts_a_client_that_trusts_its_ca(tmp_path, certificate):
    key, cert = certificate
    settings = replace(test_settings(tmp_path), tls_cert_file=str(cert), tls_key_file=str(key))
    async with serving(ProbeService(), settings) as running:
        channel = open_channel(f"localhost:{running.port}", token=make_token(settings.api_secret, "tls"),
                               ca_file=str(cert))
        echo = channel.unary_unary(method("Echo"), request_serializer=wrappers_pb2.StringValue.SerializeToString,
                                   response_deserializer=wrappers_pb2.StringValue.FromString)
        assert (await echo(wrappers_pb2.StringValue(value="hi"), timeout=10)).value == "hi|tls"
        await channel.close()

        plaintext = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await plaintext.unary_unary(method("Echo"))(b"", timeout=3)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await plaintext.close()
