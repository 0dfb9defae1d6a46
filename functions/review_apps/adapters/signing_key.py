"""The key that signs the provider's ID tokens: an RSA key in AWS KMS (RSA_2048, SIGN_VERIFY).
Its private half never leaves KMS, so nobody, this code included, can export it: tokens are
signed with kms:Sign, and the public half is read once per cold start (kms:GetPublicKey) for the
JWKS that relying parties verify with."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # joserfc is imported on first use: only AuthFunction signs, and cold starts count
    from joserfc.jwk import RSAKey

ALGORITHM = "RS256"
_KMS_ALGORITHM = "RSASSA_PKCS1_V1_5_SHA_256"  # RS256 as KMS names it
RAW_MAX = 4096  # the largest message KMS signs as it is


class KmsSigningKey:
    def __init__(self, kms: Callable[[], Any], key_id: str) -> None:
        self._kms, self._key_id = kms, key_id

    @cached_property
    def public_key(self) -> RSAKey:
        from joserfc.jwk import RSAKey

        der = self._kms().get_public_key(KeyId=self._key_id)["PublicKey"]
        return RSAKey.import_key(der, {"use": "sig", "alg": ALGORITHM})

    @property
    def kid(self) -> str:
        return self.public_key.thumbprint()  # RFC 7638: changes exactly when the key does

    def jwk(self) -> dict[str, Any]:
        return {**self.public_key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def sign(self, signing_input: bytes) -> bytes:
        """KMS hashes a message of up to 4 KB itself (an ID token's signing input is well under
        that); a longer one is sent as its SHA-256 digest."""
        if len(signing_input) <= RAW_MAX:
            message, kind = signing_input, "RAW"
        else:
            message, kind = hashlib.sha256(signing_input).digest(), "DIGEST"
        answer = self._kms().sign(
            KeyId=self._key_id, Message=message, MessageType=kind, SigningAlgorithm=_KMS_ALGORITHM
        )
        return bytes(answer["Signature"])
