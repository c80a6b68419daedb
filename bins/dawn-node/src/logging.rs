//! Logging set-up: one `tracing` filter, human-readable or JSON lines on stderr, and (with the
//! `otlp` feature) spans exported to an OpenTelemetry collector.
//!
//! The filter comes from the first source that sets it: `--log`, `DAWN_LOG`, `log.level` in the
//! config file, `RUST_LOG`, then `info`. JSON lines carry the current span's fields (`span`)
//! and every enclosing span (`spans`). A request that crosses nodes runs inside
//! `dawn_node::RequestId::span`, so both nodes' lines carry the same `dawn.req_id`.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use dawn_node::{Config, LogFormat};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The subscriber every layer sits on: the registry, filtered once for all layers.
type Filtered = Layered<EnvFilter, Registry>;

/// A layer over [`Filtered`].
type BoxedLayer = Box<dyn Layer<Filtered> + Send + Sync>;

/// Where the log filter came from and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterChoice {
    /// `--log`, `DAWN_LOG`, `log.level` or `RUST_LOG`, for error messages.
    pub(crate) origin: &'static str,
    /// The filter text.
    pub(crate) text: String,
}

/// Chooses the filter: the configured one when `level_origin` says a source set it, else
/// `RUST_LOG` when set and not empty, else the configured (default) one.
pub(crate) fn choose_filter(
    config: &Config,
    level_origin: Option<&'static str>,
    rust_log: Option<String>,
) -> FilterChoice {
    match (level_origin, rust_log.filter(|v| !v.trim().is_empty())) {
        (None, Some(text)) => FilterChoice {
            origin: "RUST_LOG",
            text,
        },
        (origin, _) => FilterChoice {
            origin: origin.unwrap_or("log.level"),
            text: config.log.level.clone(),
        },
    }
}

fn env_filter(choice: &FilterChoice) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(&choice.text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {:?} is not a log filter ({e})",
            choice.origin,
            choice.text
        )
    })
}

/// The line format: text (coloured when `ansi`) or one JSON object per line with the current
/// span and the span list.
fn format_layer<W>(format: LogFormat, ansi: bool, writer: W) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(writer)
            .boxed(),
        _ => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
    }
}

/// The subscriber without OTLP export, writing lines to `writer`: what `init` installs, and
/// what tests capture.
pub(crate) fn subscriber<W>(
    choice: &FilterChoice,
    format: LogFormat,
    ansi: bool,
    writer: W,
    extra: Option<BoxedLayer>,
) -> anyhow::Result<impl tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let mut layers = vec![format_layer(format, ansi, writer)];
    layers.extend(extra);
    Ok(Registry::default().with(env_filter(choice)?).with(layers))
}

/// Keeps the exporter alive; dropping it flushes the spans not yet exported (at most a few
/// seconds).
#[must_use = "dropping it stops the trace export"]
pub(crate) struct Logging {
    #[cfg(feature = "otlp")]
    otlp: Option<otlp::Exporter>,
}

impl Drop for Logging {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = self.otlp.take() {
            exporter.shutdown();
        }
    }
}

/// Installs the global subscriber: logs on stderr (stdout carries the addresses and the
/// `ready` line), and spans to `telemetry.otlp_endpoint` when built with `otlp`.
pub(crate) fn init(config: &Config, level_origin: Option<&'static str>) -> anyhow::Result<Logging> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let choice = choose_filter(config, level_origin, rust_log);
    let ansi = std::io::stderr().is_terminal();

    #[cfg(feature = "otlp")]
    let (extra, exporter) = match &config.telemetry.otlp_endpoint {
        Some(endpoint) => {
            let (layer, exporter) = otlp::layer(endpoint)?;
            (Some(layer), Some(exporter))
        }
        None => (None, None),
    };
    #[cfg(not(feature = "otlp"))]
    let extra = None;

    // `try_init` also routes the `log` records of libraries (quinn, rustls) through the same
    // filter and format.
    subscriber(&choice, config.log.format, ansi, std::io::stderr, extra)?
        .try_init()
        .context("cannot set up logging")?;
    let logging = Logging {
        #[cfg(feature = "otlp")]
        otlp: exporter,
    };

    #[cfg(not(feature = "otlp"))]
    if let Some(endpoint) = &config.telemetry.otlp_endpoint {
        tracing::warn!(
            endpoint = endpoint.as_str(),
            "telemetry.otlp_endpoint is set, but this dawn-node was built without the otlp \
             feature; no spans are exported"
        );
    }
    #[cfg(feature = "otlp")]
    if let Some(endpoint) = &config.telemetry.otlp_endpoint {
        tracing::info!(
            endpoint = endpoint.as_str(),
            "exporting spans over OTLP/HTTP"
        );
    }
    Ok(logging)
}

#[cfg(feature = "otlp")]
mod otlp {
    //! OTLP/HTTP (protobuf) span export through a small blocking ureq client: the SDK's batch
    //! processor runs on its own thread, so blocking there is what it expects.

    use std::io::Read as _;
    use std::time::Duration;

    use anyhow::Context as _;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::Layer as _;

    use super::BoxedLayer;

    /// How long one export may take.
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Largest collector answer read, in bytes (an OTLP answer is a few bytes).
    const MAX_ANSWER: u64 = 64 * 1024;

    /// The tracer provider; shut it down to flush.
    pub(super) struct Exporter(SdkTracerProvider);

    impl Exporter {
        pub(super) fn shutdown(self) {
            if let Err(error) = self.0.shutdown_with_timeout(EXPORT_TIMEOUT) {
                eprintln!("dawn-node: flushing the OTLP export failed: {error}");
            }
        }
    }

    #[derive(Debug)]
    struct UreqClient(ureq::Agent);

    #[async_trait::async_trait]
    impl HttpClient for UreqClient {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let response = self.0.run(request.map(|body| body.to_vec()))?;
            let (parts, mut body) = response.into_parts();
            let mut answer = Vec::new();
            body.as_reader().take(MAX_ANSWER).read_to_end(&mut answer)?;
            Ok(Response::from_parts(parts, Bytes::from(answer)))
        }
    }

    /// The layer that hands spans to the exporter, and the exporter.
    pub(super) fn layer(endpoint: &str) -> anyhow::Result<(BoxedLayer, Exporter)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(EXPORT_TIMEOUT))
            .build()
            .into();
        let exporter = SpanExporter::builder()
            .with_http()
            .with_http_client(UreqClient(agent))
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .with_context(|| format!("telemetry.otlp_endpoint: cannot export to {endpoint}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("dawn-node").build())
            .build();
        let tracer = provider.tracer("dawn-node");
        let layer = tracing_opentelemetry::layer().with_tracer(tracer).boxed();
        Ok((layer, Exporter(provider)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use dawn_node::{Direction, NodeBuilder, RequestId};
    use tracing::Instrument as _;

    use super::*;

    /// Lines written by a subscriber, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Self;
        fn make_writer(&'w self) -> Self {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
        fn json(&self) -> Vec<serde_json::Value> {
            self.text()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    fn config_with_level(level: &str) -> Config {
        let mut config = Config::default();
        config.log.level = level.to_owned();
        config
    }

    #[test]
    fn filter_precedence() {
        let configured = config_with_level("debug");
        let rust_log = || Some("trace".to_owned());
        // A configured source wins over RUST_LOG.
        for origin in ["--log", "DAWN_LOG", "log.level"] {
            let choice = choose_filter(&configured, Some(origin), rust_log());
            assert_eq!(choice.text, "debug");
            assert_eq!(choice.origin, origin);
        }
        // Nothing configured: RUST_LOG, unless empty.
        let default = Config::default();
        assert_eq!(
            choose_filter(&default, None, rust_log()),
            FilterChoice {
                origin: "RUST_LOG",
                text: "trace".into()
            }
        );
        for empty in [None, Some(String::new()), Some("  ".into())] {
            let choice = choose_filter(&default, None, empty);
            assert_eq!(choice.text, "info");
            assert_eq!(choice.origin, "log.level");
        }
    }

    #[test]
    fn a_bad_filter_names_its_source() {
        let choice = FilterChoice {
            origin: "RUST_LOG",
            text: "info,[unclosed".into(),
        };
        let error = subscriber(&choice, LogFormat::Text, false, Captured::default(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with("RUST_LOG: \"info,[unclosed\" is not a log filter"),
            "{error}"
        );
    }

    #[test]
    fn text_and_json_lines_follow_the_filter() {
        let choice = FilterChoice {
            origin: "log.level",
            text: "info,dawn_test=debug".into(),
        };
        let text = Captured::default();
        let sub = subscriber(&choice, LogFormat::Text, false, text.clone(), None).unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::debug!(target: "dawn_test", answer = 42, "kept");
            tracing::debug!(target: "other", "dropped");
        });
        let out = text.text();
        assert!(out.contains("kept answer=42"), "{out}");
        assert!(!out.contains("dropped"), "{out}");
        assert!(
            !out.contains('\u{1b}'),
            "no colour codes when not a terminal: {out}"
        );

        let json = Captured::default();
        let sub = subscriber(&choice, LogFormat::Json, false, json.clone(), None).unwrap();
        tracing::subscriber::with_default(sub, || {
            let _span = tracing::info_span!("dawn.test.outer", peer = "abc").entered();
            tracing::warn!(target: "dawn_test", count = 3, "in a span");
        });
        let lines = json.json();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["fields"]["message"], "in a span");
        assert_eq!(line["fields"]["count"], 3);
        assert_eq!(line["span"]["name"], "dawn.test.outer");
        assert_eq!(line["span"]["peer"], "abc");
        assert_eq!(line["spans"][0]["name"], "dawn.test.outer");
    }

    /// A fake OTLP collector on loopback: answers 200 and hands over each request's path,
    /// content type and body.
    #[cfg(feature = "otlp")]
    fn collector() -> (String, std::sync::mpsc::Receiver<(String, String, Vec<u8>)>) {
        use std::io::{BufRead as _, BufReader, Read as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let path = request_line
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let (mut length, mut content_type) = (0, String::new());
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "content-type" => value.trim().clone_into(&mut content_type),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .unwrap();
                let _ = tx.send((path, content_type, body));
            }
        });
        (url, rx)
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn spans_reach_an_otlp_collector() {
        let (url, requests) = collector();
        let (layer, exporter) = otlp::layer(&url).unwrap();
        let choice = FilterChoice {
            origin: "log.level",
            text: "info".into(),
        };
        let sub = subscriber(
            &choice,
            LogFormat::Text,
            false,
            Captured::default(),
            Some(layer),
        )
        .unwrap();
        let id = RequestId::from_bytes([7; 16]);
        tracing::subscriber::with_default(sub, || {
            let peer: dawn_node::NodeId = "pfqi2ljchfqlw4yvf7jbfiulsxpsiwm3mjpzuybrm5shrfahkuzq"
                .parse()
                .unwrap();
            let _span = id.span(&peer, "agent_call", Direction::Outbound).entered();
            tracing::info!("inside");
        });
        // Shutting down flushes the batch.
        exporter.shutdown();
        let (path, content_type, body) = requests
            .recv_timeout(Duration::from_secs(10))
            .expect("no export reached the collector");
        assert_eq!(path, "/v1/traces");
        assert_eq!(content_type, "application/x-protobuf");
        let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"dawn.node.request"), "span name in the export");
        assert!(contains(b"dawn-node"), "service name in the export");
        assert!(
            contains(id.to_string().as_bytes()),
            "dawn.req_id in the export"
        );
    }

    /// A request from one real node to another: both sides log inside `RequestId::span`, and
    /// their JSON lines carry the same `dawn.req_id`, each naming the other as `peer`.
    #[test]
    fn a_request_id_ties_both_nodes_log_lines_together() {
        let captured = Captured::default();
        let choice = FilterChoice {
            origin: "log.level",
            text: "warn,dawn_test=info".into(),
        };
        let sub = subscriber(&choice, LogFormat::Json, false, captured.clone(), None).unwrap();
        // A current-thread runtime keeps every task on this thread, under this subscriber.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let id = RequestId::new();
        let (a_id, b_id) = tracing::subscriber::with_default(sub, || {
            runtime.block_on(async {
                let start = |dir: &std::path::Path| {
                    let loopback = "127.0.0.1:0".parse().unwrap();
                    NodeBuilder::new()
                        .data_dir(dir)
                        .listen(loopback)
                        .http(None)
                        .development_mode(true)
                        .start()
                };
                let a = start(dir_a.path()).await.unwrap();
                let b = start(dir_b.path()).await.unwrap();
                b.transport()
                    .register_request_handler("dawn/test-echo", |context, body: Bytes| async move {
                        let preamble: [u8; RequestId::LEN] =
                            body.get(..RequestId::LEN).unwrap().try_into().unwrap();
                        let id = RequestId::from_bytes(preamble);
                        let span = id.span(&context.peer(), "echo", Direction::Inbound);
                        async {
                            tracing::info!(target: "dawn_test", "serving");
                            Ok::<_, dawn_transport::HandlerError>(body)
                        }
                        .instrument(span)
                        .await
                    })
                    .unwrap();
                let connection = a
                    .transport()
                    .connect(b.node_id(), &[b.quic_addr()])
                    .await
                    .unwrap();
                async {
                    tracing::info!(target: "dawn_test", "calling");
                    let answer = connection
                        .request("dawn/test-echo", Bytes::copy_from_slice(&id.to_bytes()))
                        .await
                        .unwrap();
                    assert_eq!(&answer[..], &id.to_bytes());
                    tracing::info!(target: "dawn_test", "answered");
                }
                .instrument(id.span(&b.node_id(), "echo", Direction::Outbound))
                .await;
                tokio::time::sleep(Duration::from_millis(10)).await;
                let ids = (a.node_id(), b.node_id());
                b.shutdown().await.unwrap();
                a.shutdown().await.unwrap();
                ids
            })
        });

        let lines = captured.json();
        let find = |message: &str| {
            lines
                .iter()
                .find(|l| l["fields"]["message"] == message)
                .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
        };
        let want = id.to_string();
        for (message, peer, direction) in [
            ("calling", b_id, "outbound"),
            ("answered", b_id, "outbound"),
            ("serving", a_id, "inbound"),
        ] {
            let span = &find(message)["span"];
            assert_eq!(span["name"], dawn_node::REQUEST_SPAN, "{message}");
            assert_eq!(
                span[dawn_node::REQUEST_ID_FIELD],
                want.as_str(),
                "{message}"
            );
            assert_eq!(span["peer"], peer.fmt_short(), "{message}");
            assert_eq!(span["direction"], direction, "{message}");
            assert_eq!(span["op"], "echo", "{message}");
        }
    }
}
