//! `dawn mcp`: a bridge between an MCP client speaking stdio (newline-delimited JSON-RPC, as
//! desktop clients launch their servers) and a node's streamable-HTTP gateway at `/mcp`.
//!
//! Every message read from stdin is POSTed to the gateway; what the gateway answers (plain
//! JSON or an SSE stream of messages) is written to stdout, one message per line. Requests run
//! concurrently, so a slow tool call never holds up the others; `initialize` runs first and
//! alone, because its answer carries the session id every later request must send. When the
//! gateway fails a request outright, the client still gets a JSON-RPC error for that request
//! id instead of waiting forever. At end of input the session is closed with `DELETE`.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

/// Largest message accepted from stdin or from the gateway, in bytes.
const MAX_MESSAGE: usize = 8 * 1024 * 1024;
/// Most requests in flight at once; further messages wait for a slot.
const MAX_IN_FLIGHT: usize = 64;
/// JSON-RPC error code the bridge uses when the gateway cannot be reached or fails.
const BRIDGE_ERROR: i64 = -32603;

/// What the bridge learned from `initialize`: the headers later requests carry.
#[derive(Debug, Default, Clone)]
struct Session {
    id: Option<String>,
    protocol_version: Option<String>,
}

/// Shared state of one bridge run.
struct Bridge {
    endpoint: String,
    agent: ureq::Agent,
    session: Mutex<Session>,
    out: Mutex<Box<dyn std::io::Write + Send>>,
    /// Requests being forwarded, at most [`MAX_IN_FLIGHT`]; `slot_freed` wakes the reader.
    in_flight: Mutex<usize>,
    slot_freed: Condvar,
}

/// Bridges `input` to the gateway of the node at `base` (`http://host:port`), writing the
/// gateway's messages to `output`, until `input` ends.
pub(crate) fn run(
    base: &str,
    input: impl Read,
    output: Box<dyn std::io::Write + Send>,
) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_connect(Some(Duration::from_secs(3)))
        .build()
        .into();
    let bridge = Arc::new(Bridge {
        endpoint: format!("{}/mcp", base.trim_end_matches('/')),
        agent,
        session: Mutex::new(Session::default()),
        out: Mutex::new(output),
        in_flight: Mutex::new(0),
        slot_freed: Condvar::new(),
    });
    let mut reader = BufReader::new(input);
    let mut workers = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_MESSAGE as u64 + 1)
            .read_until(b'\n', &mut line)
            .context("reading stdin")?;
        if read == 0 {
            break;
        }
        if line.len() > MAX_MESSAGE {
            anyhow::bail!("a message on stdin is larger than {MAX_MESSAGE} bytes");
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                bridge.write(&json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": {"code": -32700, "message": format!("parse error: {error}")},
                }));
                continue;
            }
        };
        if message.get("method").and_then(Value::as_str) == Some("initialize") {
            // Alone and first: its answer names the session later requests belong to.
            for worker in workers.drain(..) {
                let _ = thread::JoinHandle::join(worker);
            }
            bridge.forward(&message);
            continue;
        }
        // Backpressure: stop reading stdin while MAX_IN_FLIGHT requests are out.
        bridge.take_slot();
        let worker_bridge = Arc::clone(&bridge);
        workers.retain(|worker: &thread::JoinHandle<()>| !worker.is_finished());
        workers.push(thread::spawn(move || {
            worker_bridge.forward(&message);
            worker_bridge.free_slot();
        }));
    }
    for worker in workers {
        let _ = worker.join();
    }
    bridge.close();
    Ok(())
}

impl Bridge {
    fn in_flight(&self) -> MutexGuard<'_, usize> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until fewer than [`MAX_IN_FLIGHT`] requests are out, then counts one more.
    fn take_slot(&self) {
        let mut in_flight = self.in_flight();
        while *in_flight >= MAX_IN_FLIGHT {
            in_flight = self
                .slot_freed
                .wait(in_flight)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *in_flight += 1;
    }

    /// A request is answered (or failed): its slot is free.
    fn free_slot(&self) {
        let mut in_flight = self.in_flight();
        *in_flight = in_flight.saturating_sub(1);
        drop(in_flight);
        self.slot_freed.notify_one();
    }

    fn session(&self) -> Session {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Writes one message as a line on the output.
    fn write(&self, message: &Value) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // A closed stdout means the client is gone; there is no one left to tell.
        let _ = writeln!(out, "{message}");
        let _ = out.flush();
    }

    /// Answers request `id` (if it is a request) with a bridge error.
    fn fail(&self, message: &Value, reason: &str) {
        if let Some(id) = message
            .get("id")
            .filter(|_| message.get("method").is_some())
        {
            self.write(&json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": BRIDGE_ERROR, "message": reason},
            }));
        }
    }

    /// POSTs one message and relays whatever the gateway answers.
    fn forward(&self, message: &Value) {
        let session = self.session();
        let mut request = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(id) = &session.id {
            request = request.header("Mcp-Session-Id", id);
        }
        if let Some(version) = &session.protocol_version {
            request = request.header("MCP-Protocol-Version", version);
        }
        let body = message.to_string();
        let mut response = match request.send(body.as_bytes()) {
            Ok(response) => response,
            Err(error) => {
                self.fail(
                    message,
                    &format!(
                        "the Dawn gateway at {} is unreachable: {error}",
                        self.endpoint
                    ),
                );
                return;
            }
        };
        let status = response.status();
        if message.get("method").and_then(Value::as_str) == Some("initialize") {
            let id = response
                .headers()
                .get("mcp-session-id")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            self.session
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .id = id;
        }
        if status.as_u16() == 202 {
            return;
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let reader = response.body_mut().with_config().limit(MAX_MESSAGE as u64);
        if !status.is_success() {
            let text = reader.read_to_string().unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|body| {
                    body.pointer("/error/message")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| text.chars().take(200).collect());
            self.fail(
                message,
                &format!("the Dawn gateway answered {status}: {detail}"),
            );
            return;
        }
        if content_type.starts_with("text/event-stream") {
            let mut events = BufReader::new(reader.reader());
            let mut data = String::new();
            let mut line = String::new();
            loop {
                line.clear();
                match events.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let trimmed = line.trim_end_matches(['\r', '\n']);
                if trimmed.is_empty() {
                    self.relay(&data);
                    data.clear();
                } else if let Some(value) = trimmed.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            self.relay(&data);
        } else {
            match reader.read_to_string() {
                Ok(text) => self.relay(&text),
                Err(error) => self.fail(message, &format!("reading the gateway's answer: {error}")),
            }
        }
    }

    /// Writes a message the gateway sent, remembering the negotiated protocol version.
    fn relay(&self, data: &str) {
        let data = data.trim();
        if data.is_empty() {
            return;
        }
        let Ok(message) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(version) = message
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
        {
            self.session
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .protocol_version = Some(version.to_owned());
        }
        self.write(&message);
    }

    /// Ends the gateway session, if there is one.
    fn close(&self) {
        if let Some(id) = self.session().id {
            let _ = self
                .agent
                .delete(&self.endpoint)
                .header("Mcp-Session-Id", &id)
                .call();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn bridge() -> Bridge {
        Bridge {
            endpoint: "http://127.0.0.1:9/mcp".to_owned(),
            agent: ureq::Agent::config_builder().build().into(),
            session: Mutex::new(Session::default()),
            out: Mutex::new(Box::new(std::io::sink())),
            in_flight: Mutex::new(0),
            slot_freed: Condvar::new(),
        }
    }

    #[test]
    fn the_reader_waits_for_a_free_slot_and_wakes_when_one_is_freed() {
        let bridge = Arc::new(bridge());
        for _ in 0..MAX_IN_FLIGHT {
            bridge.take_slot();
        }
        let (taken_tx, taken_rx) = mpsc::channel();
        let waiter = {
            let bridge = Arc::clone(&bridge);
            thread::spawn(move || {
                bridge.take_slot();
                taken_tx.send(()).unwrap_or_default();
            })
        };
        // Every slot is taken: the waiter stays blocked.
        assert!(
            taken_rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "a slot was taken beyond the limit"
        );
        bridge.free_slot();
        assert!(
            taken_rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "freeing a slot did not wake the reader"
        );
        waiter.join().unwrap_or_default();
        assert_eq!(*bridge.in_flight(), MAX_IN_FLIGHT);
    }
}
