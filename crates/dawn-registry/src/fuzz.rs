//! An entry point for fuzz targets: the registry's decoders over arbitrary bytes.

use std::time::Instant;

use bytes::Bytes;
use dawn_crypto::SigningKey;

use crate::config::RegistryConfig;
use crate::manifest::Decompress;
use crate::message::RegistryMessage;
use crate::record::AgentRecord;
use crate::registry::Registry;

/// A decoder broke one of its promises on some input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fuzz property violated: {0}")]
pub struct FuzzFailure(String);

/// Feeds arbitrary bytes to every registry decoder: as a message, to a registry's
/// [`handle_message`](Registry::handle_message) and to its
/// [`import_state`](Registry::import_state).
///
/// Checks that a message that decodes re-encodes to exactly the same bytes (one encoding per
/// value), and so does every record in it, and that the registry takes any input without panicking and without accepting
/// anything from bytes nobody signed. Never panics itself; a broken property is returned, and
/// a fuzz target turns it into a crash (`fuzz_decode(data).unwrap()`).
///
/// # Errors
/// [`FuzzFailure`] if a property does not hold.
pub fn fuzz_decode(bytes: &[u8]) -> Result<(), FuzzFailure> {
    let copy = Bytes::copy_from_slice(bytes);
    if let Ok(message) = RegistryMessage::decode_bytes(&copy, &mut Decompress) {
        let again = message
            .encode()
            .map_err(|e| FuzzFailure(format!("a decoded message does not encode: {e}")))?;
        if again != bytes {
            return Err(FuzzFailure("decoded message re-encodes differently".into()));
        }
        // Stored records are re-encoded when forwarded: that must give the bytes their
        // owner signed.
        let updates = match &message {
            RegistryMessage::Delta(update) => std::slice::from_ref(update.as_ref()),
            RegistryMessage::Updates(updates) => updates.as_slice(),
            RegistryMessage::Reconcile(_) => &[],
        };
        for (_, record) in updates.iter().flat_map(|u| &u.entries) {
            if let Ok(decoded) = AgentRecord::decode(record)
                && decoded.encode().ok().as_deref() != Some(&record[..])
            {
                return Err(FuzzFailure("a record re-encodes differently".into()));
            }
        }
    }
    let now = Instant::now();
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let peer = SigningKey::from_bytes(&[0x43; 32]).verifying_key().into();
    let mut registry = Registry::new(key, RegistryConfig::default(), 0, now, 1_700_000_000_000)
        .map_err(|e| FuzzFailure(format!("default configuration refused: {e}")))?;
    let _ = registry.handle_message(now, peer, bytes);
    let _ = registry.import_state(now, bytes);
    while registry.poll_transmit().is_some() {}
    while registry.poll_event().is_some() {}
    Ok(())
}
