"""Standard Webhooks signatures as Herald makes them verify with the standardwebhooks package."""

from __future__ import annotations

import base64
import os
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.kit.config import ConfigError, new_webhook_secret
from services.kit.webhook_signing import signature_headers, webhook_key


def test_signed_headers_verify_with_the_reference_library():
    secret = new_webhook_secret()
    body = '{"type":"message.new","text":"Grüße"}'.encode()
    headers = signature_headers(webhook_key(secret), "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == {"type": "message.new", "text": "Grüße"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)


@pytest.mark.parametrize("secret", ["", "whsec_", "plain-secret", "whsec_!!!", "whsec_" + base64.b64encode(
    os.urandom(16)).decode()])
def test_a_malformed_secret_names_the_variable(secret):
    with pytest.raises(ConfigError, match="HERALD_WEBHOOK_SECRET"):
        webhook_key(secret)
