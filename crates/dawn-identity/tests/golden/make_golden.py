#!/usr/bin/env python3
"""Writes the golden key files of tests/keyfile_format.rs, independently of the Rust code.

Needs Python's `cryptography` (>= 44, for Argon2id). Run from this directory:
    python3 make_golden.py
The files must not change when rerun; if the Rust crate stops opening them, the format drifted.
"""
import hashlib, struct
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305, AESGCM
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization as s

seed = bytes(range(0x40, 0x60))
pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
magic = b"\x89DAWNKEY"
def protected(suite, cipher):
    m, t, p = 32, 3, 4
    salt = bytes(range(16)); nonce = bytes(range(0xa0, 0xac))
    key = Argon2id(salt=salt, length=32, iterations=t, lanes=p, memory_cost=m).derive(b"dawn golden passphrase")
    aad = magic + bytes([1, 1]) + pub + bytes([suite]) + struct.pack("<III", m, t, p) + salt + nonce
    body = aad + cipher(key).encrypt(nonce, seed, aad)
    return body + hashlib.sha256(body).digest()
def unprotected():
    body = magic + bytes([1, 0]) + pub + seed
    return body + hashlib.sha256(body).digest()
for name, data in [
    ("protected-chacha20-poly1305.hex", protected(1, ChaCha20Poly1305)),
    ("protected-aes-256-gcm.hex", protected(2, AESGCM)),
    ("unprotected.hex", unprotected()),
]:
    with open(name, "w") as f:
        f.write(data.hex() + "\n")
