//! Property tests: every round trip holds for arbitrary inputs, and every single-bit change to
//! authenticated data is caught.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use dawn_crypto::{
    Aead, AeadError, AeadKey, AeadSuite, NONCE_LEN, SEAL_OVERHEAD, Signature, SignatureError,
    SigningKey, TAG_LEN, VerifyingKey, X25519SecretKey, hkdf_sha256, open, seal, verify_batch,
};
use proptest::prelude::*;
use proptest::sample::Index;

fn suite() -> impl Strategy<Value = AeadSuite> {
    prop::sample::select(AeadSuite::ALL.to_vec())
}

fn flip_bit(bytes: &mut [u8], bit: &Index) {
    let i = bit.index(bytes.len() * 8);
    bytes[i / 8] ^= 1 << (i % 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sign_verify_round_trip(seed: [u8; 32], message in prop::collection::vec(any::<u8>(), 0..512)) {
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key();
        let signature = key.sign(&message);
        prop_assert_eq!(public.verify(&message, &signature), Ok(()));
        // Keys and signatures survive their byte encodings.
        prop_assert_eq!(VerifyingKey::from_bytes(&public.to_bytes()), Ok(public));
        prop_assert_eq!(
            Signature::try_from_slice(signature.as_bytes()).unwrap(),
            signature
        );
        prop_assert_eq!(SigningKey::from_bytes(&key.to_bytes()), key);
    }

    #[test]
    fn any_flipped_bit_in_message_or_signature_fails(
        seed: [u8; 32],
        message in prop::collection::vec(any::<u8>(), 1..512),
        bit: Index,
        in_signature: bool,
    ) {
        let key = SigningKey::from_bytes(&seed);
        let signature = key.sign(&message);
        let (message, signature) = if in_signature {
            let mut bytes = signature.to_bytes();
            flip_bit(&mut bytes, &bit);
            (message, Signature::from_bytes(bytes))
        } else {
            let mut message = message;
            flip_bit(&mut message, &bit);
            (message, signature)
        };
        prop_assert_eq!(
            key.verifying_key().verify(&message, &signature),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn signature_does_not_verify_under_another_key(
        seed: [u8; 32],
        other: [u8; 32],
        message in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assume!(seed != other);
        let signature = SigningKey::from_bytes(&seed).sign(&message);
        prop_assert_eq!(
            SigningKey::from_bytes(&other).verifying_key().verify(&message, &signature),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn aead_round_trip_and_every_bit_is_authenticated(
        suite in suite(),
        key: [u8; 32],
        nonce: [u8; NONCE_LEN],
        aad in prop::collection::vec(any::<u8>(), 0..64),
        plaintext in prop::collection::vec(any::<u8>(), 0..1024),
        bit: Index,
        target in 0..3usize,
    ) {
        let aead = Aead::new(suite, &AeadKey::from_array(key));
        let sealed = aead.encrypt(&nonce, &aad, &plaintext).unwrap();
        prop_assert_eq!(sealed.len(), plaintext.len() + TAG_LEN);
        prop_assert_eq!(&aead.decrypt(&nonce, &aad, &sealed).unwrap(), &plaintext);

        let mut in_place = plaintext.clone();
        aead.encrypt_in_place(&nonce, &aad, &mut in_place).unwrap();
        prop_assert_eq!(&in_place, &sealed);
        aead.decrypt_in_place(&nonce, &aad, &mut in_place).unwrap();
        prop_assert_eq!(&in_place, &plaintext);

        // One flipped bit in the ciphertext and tag, the nonce or the associated data.
        let result = match target {
            0 => {
                let mut bad = sealed.clone();
                flip_bit(&mut bad, &bit);
                aead.decrypt(&nonce, &aad, &bad)
            }
            1 => {
                let mut bad = nonce;
                flip_bit(&mut bad, &bit);
                aead.decrypt(&bad, &aad, &sealed)
            }
            _ => {
                let mut bad = aad.clone();
                if bad.is_empty() {
                    bad.push(0);
                } else {
                    flip_bit(&mut bad, &bit);
                }
                aead.decrypt(&nonce, &bad, &sealed)
            }
        };
        prop_assert_eq!(result, Err(AeadError::Authentication));
    }

    #[test]
    fn aead_suites_and_keys_do_not_interoperate(
        key: [u8; 32],
        other_key: [u8; 32],
        nonce: [u8; NONCE_LEN],
        plaintext in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let chacha = Aead::new(AeadSuite::ChaCha20Poly1305, &AeadKey::from_array(key));
        let aes = Aead::new(AeadSuite::Aes256Gcm, &AeadKey::from_array(key));
        let sealed = chacha.encrypt(&nonce, b"", &plaintext).unwrap();
        prop_assert_eq!(aes.decrypt(&nonce, b"", &sealed), Err(AeadError::Authentication));
        if key != other_key {
            let other = Aead::new(AeadSuite::ChaCha20Poly1305, &AeadKey::from_array(other_key));
            prop_assert_eq!(other.decrypt(&nonce, b"", &sealed), Err(AeadError::Authentication));
        }
    }

    #[test]
    fn seal_open_round_trip(
        suite in suite(),
        sender: [u8; 32],
        recipient: [u8; 32],
        purpose in prop::collection::vec(any::<u8>(), 0..64),
        payload in prop::collection::vec(any::<u8>(), 0..2048),
        bit: Index,
    ) {
        let sender = X25519SecretKey::from_bytes(&sender);
        let recipient = X25519SecretKey::from_bytes(&recipient);
        let sealed = seal(&sender, &recipient.public_key(), &purpose, suite, &payload).unwrap();
        prop_assert_eq!(sealed.len(), payload.len() + SEAL_OVERHEAD);
        prop_assert_eq!(sealed[1], suite.id());
        prop_assert_eq!(
            &open(&recipient, &sender.public_key(), &purpose, &sealed).unwrap(),
            &payload
        );
        let mut bad = sealed.clone();
        flip_bit(&mut bad, &bit);
        prop_assert!(open(&recipient, &sender.public_key(), &purpose, &bad).is_err());
        // A fresh ephemeral key every time: sealing twice never repeats a box.
        let again = seal(&sender, &recipient.public_key(), &purpose, suite, &payload).unwrap();
        prop_assert_ne!(&again, &sealed);
    }

    #[test]
    fn ed25519_identity_can_receive_sealed_boxes(
        node_seed: [u8; 32],
        sender: [u8; 32],
        payload in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let node = SigningKey::from_bytes(&node_seed);
        let sender = X25519SecretKey::from_bytes(&sender);
        let sealed = seal(
            &sender,
            &node.verifying_key().to_x25519(),
            b"dawn/props",
            AeadSuite::default(),
            &payload,
        )
        .unwrap();
        prop_assert_eq!(
            &open(&node.to_x25519(), &sender.public_key(), b"dawn/props", &sealed).unwrap(),
            &payload
        );
    }

    #[test]
    fn hkdf_shorter_output_is_a_prefix_of_longer(
        salt in prop::collection::vec(any::<u8>(), 0..80),
        ikm in prop::collection::vec(any::<u8>(), 0..80),
        info in prop::collection::vec(any::<u8>(), 0..80),
        short in 0..=8160usize,
        long in 0..=8160usize,
    ) {
        let (short, long) = (short.min(long), short.max(long));
        let mut a = vec![0u8; short];
        let mut b = vec![0u8; long];
        hkdf_sha256(&salt, &ikm, &info, &mut a).unwrap();
        hkdf_sha256(&salt, &ikm, &info, &mut b).unwrap();
        prop_assert_eq!(&a[..], &b[..short]);
        // Another info string gives unrelated output.
        if long >= 16 {
            let mut other_info = info.clone();
            other_info.push(0);
            let mut c = vec![0u8; long];
            hkdf_sha256(&salt, &ikm, &other_info, &mut c).unwrap();
            prop_assert_ne!(&c, &b);
        }
    }
}

/// How a batch entry is spoiled.
#[derive(Debug, Clone, Copy)]
enum Corruption {
    MessageBit(usize),
    SignatureBit(usize),
    OtherKey,
    OtherSignature,
}

fn corruption() -> impl Strategy<Value = Option<Corruption>> {
    prop_oneof![
        3 => Just(None),
        1 => (0..8 * 24usize).prop_map(|b| Some(Corruption::MessageBit(b))),
        1 => (0..8 * 64usize).prop_map(|b| Some(Corruption::SignatureBit(b))),
        1 => Just(Some(Corruption::OtherKey)),
        1 => Just(Some(Corruption::OtherSignature)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn verify_batch_names_exactly_the_corrupted_entries(
        seed: u64,
        plan in prop::collection::vec(corruption(), 0..48),
    ) {
        let n = plan.len();
        let signers: Vec<SigningKey> = (0..n)
            .map(|i| {
                let mut s = [0u8; 32];
                s[..8].copy_from_slice(&seed.to_le_bytes());
                s[8..16].copy_from_slice(&(i as u64).to_le_bytes());
                SigningKey::from_bytes(&s)
            })
            .collect();
        let mut messages: Vec<Vec<u8>> =
            (0..n).map(|i| format!("batch {seed:016x} entry {i:04}").into_bytes()).collect();
        let mut signatures: Vec<Signature> =
            signers.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
        let mut keys: Vec<VerifyingKey> = signers.iter().map(SigningKey::verifying_key).collect();
        let stranger = SigningKey::from_bytes(&[0xa5; 32]);

        let mut expected = Vec::new();
        for (i, c) in plan.iter().enumerate() {
            let Some(c) = c else { continue };
            expected.push(i);
            match *c {
                Corruption::MessageBit(b) => messages[i][b / 8] ^= 1 << (b % 8),
                Corruption::SignatureBit(b) => {
                    let mut bytes = signatures[i].to_bytes();
                    bytes[b / 8] ^= 1 << (b % 8);
                    signatures[i] = Signature::from_bytes(bytes);
                }
                Corruption::OtherKey => keys[i] = stranger.verifying_key(),
                Corruption::OtherSignature => signatures[i] = stranger.sign(&messages[i]),
            }
        }
        let items: Vec<(&[u8], &Signature, &VerifyingKey)> = (0..n)
            .map(|i| (messages[i].as_slice(), &signatures[i], &keys[i]))
            .collect();
        match verify_batch(&items) {
            Ok(()) => prop_assert!(expected.is_empty(), "expected {:?} to fail", expected),
            Err(e) => prop_assert_eq!(e.invalid(), expected.as_slice()),
        }
        // Single verification agrees entry by entry.
        for (i, (m, s, k)) in items.iter().enumerate() {
            prop_assert_eq!(k.verify(m, s).is_err(), expected.contains(&i));
        }
    }
}
