//! Dawn's QUIC transport, layer 4 of the workspace.
//!
//! One [`Transport`] per node: a quinn endpoint on one UDP socket whose TLS key *is* the node
//! key.
//!
//! - **Identity-bound TLS.** TLS 1.3 only, with RFC 7250 raw public keys: each side presents
//!   its Ed25519 key and signs the handshake. [`Transport::connect`] names the [`NodeId`] it
//!   expects and a peer presenting any other key is refused *during* the handshake
//!   ([`ConnectError::PeerMismatch`]). The listener accepts any valid key, reports the
//!   authenticated [`NodeId`], and asks the node's [`AcceptPolicy`] before going on. ALPN is
//!   `dawn/1`; no resumption, no 0-RTT, no SNI.
//! - **Hello.** Right after the handshake the nodes exchange `dawn_wire::Hello` and negotiate
//!   the protocol version; incompatible peers get [`ConnectError::Incompatible`] and a clean
//!   close with [`CloseCode::Incompatible`].
//! - **A pool.** One [`Connection`] per peer, shared by every caller; concurrent dials to the
//!   same peer become one, cancelled when no caller waits for it any more; closed connections
//!   are forgotten and the next `connect` dials again. Limits on connections in total and per
//!   IP address, on concurrent streams per connection and on frame size. Idle timeout with
//!   keep-alive.
//! - **Requests and raw streams.** Every bidirectional stream starts with a header frame naming
//!   its kind and protocol: [`Connection::request`] sends one length-prefixed frame and reads
//!   one back; [`Connection::open_stream`] hands a raw stream to a higher layer (MCP sessions).
//!   Inbound streams go to the handlers registered with
//!   [`Transport::register_request_handler`] and [`Transport::register_stream_handler`]. Bad
//!   frames reset their stream with a [`StreamCode`]; the connection and the node carry on.
//! - **Events** ([`Transport::subscribe`]) for the node's peer table.
//! - **A bounded shutdown.** [`Transport::close`] tells every peer, cancels dials and
//!   handshakes in flight, and returns within [`TransportConfig::close_timeout`].
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use dawn_crypto::SigningKey;
//! use dawn_transport::{HandlerError, Transport, TransportConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let loopback = "127.0.0.1:0".parse()?;
//! let server = Transport::bind(SigningKey::generate()?, loopback, TransportConfig::default())?;
//! server.register_request_handler("echo/1", |ctx, body: Bytes| async move {
//!     if body.is_empty() {
//!         return Err(HandlerError::new("empty request"));
//!     }
//!     tracing::debug!(peer = %ctx.peer().fmt_short(), "echo");
//!     Ok(body)
//! })?;
//!
//! let client = Transport::bind(SigningKey::generate()?, loopback, TransportConfig::default())?;
//! let connection = client.connect(server.node_id(), &[server.local_addr()?]).await?;
//! assert_eq!(connection.peer(), server.node_id());
//! let reply = connection.request("echo/1", Bytes::from_static(b"hello")).await?;
//! assert_eq!(reply, "hello");
//!
//! client.close("done").await;
//! server.close("done").await;
//! # Ok(()) }
//! ```
//!
//! # The relay path
//!
//! The endpoint is built on a [`quinn::AsyncUdpSocket`] rather than a bare UDP socket, and
//! [`Transport::connect`] takes a list of candidate addresses, so a socket that also carries
//! relayed datagrams can slot in later without changing the API.
//!
//! # Status
//!
//! ALPN `dawn/1`, protocol version 1. The stream header layout (see `frame.rs`) and the close
//! and stream codes are part of the protocol.
//!
//! [`NodeId`]: dawn_identity::NodeId

mod codes;
mod config;
mod connection;
mod frame;
mod handler;
mod hello;
mod limits;
mod tls;
mod transport;

pub use crate::codes::{CloseCode, StreamCode};
pub use crate::config::{AcceptPolicy, ConfigError, Refusal, TransportConfig};
pub use crate::connection::{Connection, Direction, RequestError, StreamError};
pub use crate::frame::{
    FrameIoError, MAX_PROTOCOL_LEN, ProtocolNameError, read_frame, write_frame,
};
pub use crate::handler::{HandlerError, IncomingStream, RegisterError, RequestContext};
pub use crate::tls::{ALPN, TlsError, quic_client_config, quic_server_config};
pub use crate::transport::{AcceptError, BindError, ConnectError, Transport, TransportEvent};
pub use quinn::{ConnectionError, ReadError, RecvStream, SendStream, VarInt, WriteError};

#[cfg(test)]
mod tests;
