//! The real RabbitMQ on 127.0.0.1:5672 (guest/guest) and the real
//! oslo.messaging Notifier from the test venv.
//!
//! Every test gets its own topic and exchanges ([`RabbitNames`]) so that
//! tests running at the same time (ours and other engineers') never share a
//! queue, and never redeclare one another's objects with other flags. The
//! names are deleted when the value is dropped.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};

/// The broker's AMQP address for lapin (vhost `/`).
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The same broker as an oslo transport URL (empty path = vhost `/`).
pub const TRANSPORT_URL: &str = "rabbit://guest:guest@127.0.0.1:5672/";

/// The Python of the test venv (`NOVAJOIN_TEST_VENV`, default
/// `target/test-venv`), which has oslo.messaging.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("NOVAJOIN_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "no Python at {}: run scripts/install-test-deps.sh or set NOVAJOIN_TEST_VENV",
        py.display()
    );
    py
}

fn publisher_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/oslo_notify.py")
}

/// One notification as nova or neutron hands it to its Notifier.
#[derive(Clone, Debug)]
pub struct OsloMessage {
    /// `publisher_id`, e.g. `compute.cmp-1`.
    pub publisher_id: String,
    /// `event_type`.
    pub event_type: String,
    /// Lower-case priority method: `info`, `error`, ...
    pub priority: String,
    /// The payload.
    pub payload: Value,
}

impl OsloMessage {
    /// An INFO notification.
    pub fn info(publisher_id: &str, event_type: &str, payload: Value) -> Self {
        Self {
            publisher_id: publisher_id.into(),
            event_type: event_type.into(),
            priority: "info".into(),
            payload,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "publisher_id": self.publisher_id,
            "event_type": self.event_type,
            "priority": self.priority,
            "payload": self.payload,
            // What nova's redacted request context carries, roughly.
            "context": {"user_id": "8a0e7b5f1c2d4e3f9a6b7c8d9e0f1a2b",
                        "project_id": "c97027dd880d4c129ae7a4ba7edade05",
                        "request_id": format!("req-{}", uuid::Uuid::new_v4())},
        })
    }
}

/// Publishes on one topic with the real oslo.messaging Notifier.
#[derive(Clone, Debug)]
pub struct OsloPublisher {
    /// The topic (`notifications_topic`).
    pub topic: String,
}

impl OsloPublisher {
    /// Publishes to `exchange` (the publisher's control exchange) on this
    /// topic; `query` carries `[oslo_messaging_rabbit]` options (e.g.
    /// `amqp_durable_queues=true`). Blocks until every message was sent.
    pub fn publish(&self, exchange: &str, query: &str, messages: &[OsloMessage]) {
        let mut child = self.spawn(exchange, query, messages, Duration::ZERO);
        let status = child.wait().expect("publisher did not run");
        assert!(
            status.success(),
            "oslo.messaging publisher failed: {status}"
        );
    }

    /// Starts publishing in the background, `pace` apart; the child prints
    /// `sent <n>` per message and `done <n>` at the end on its stdout.
    pub fn spawn(
        &self,
        exchange: &str,
        query: &str,
        messages: &[OsloMessage],
        pace: Duration,
    ) -> Child {
        let url = if query.is_empty() {
            TRANSPORT_URL.to_string()
        } else {
            format!("{TRANSPORT_URL}?{query}")
        };
        let job = json!({
            "url": url,
            "exchange": exchange,
            "topic": self.topic,
            "driver": "messagingv2",
            "pace": pace.as_secs_f64(),
            "messages": messages.iter().map(OsloMessage::to_json).collect::<Vec<_>>(),
        });
        let mut child = Command::new(venv_python())
            .arg(publisher_script())
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the oslo.messaging publisher");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(job.to_string().as_bytes())
            .expect("write job");
        drop(stdin);
        child
    }
}

/// Unique names for one test.
pub struct RabbitNames {
    /// `notifications_topic` for the listener and the publishers.
    pub topic: String,
    /// The listener's `control_exchange`.
    pub control_exchange: String,
    /// The exchange "nova" publishes to.
    pub nova_exchange: String,
    /// The exchange "neutron" publishes to.
    pub neutron_exchange: String,
    /// A dead-letter queue name for the listener.
    pub dead_letter_queue: String,
}

impl RabbitNames {
    /// Fresh names with a readable prefix.
    pub fn new(prefix: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let id = &id[..12];
        Self {
            topic: format!("nj-{prefix}-{id}"),
            control_exchange: format!("nj-{prefix}-{id}-openstack"),
            nova_exchange: format!("nj-{prefix}-{id}-nova"),
            neutron_exchange: format!("nj-{prefix}-{id}-neutron"),
            dead_letter_queue: format!("nj-{prefix}-{id}-dead"),
        }
    }

    /// The notification queue: `<topic>.info`.
    pub fn queue(&self) -> String {
        format!("{}.info", self.topic)
    }

    /// The oslo.messaging publisher for this topic (cheap to clone, and
    /// usable from a blocking thread).
    pub fn publisher(&self) -> OsloPublisher {
        OsloPublisher {
            topic: self.topic.clone(),
        }
    }

    /// Publishes raw bytes (for malformed messages oslo would never send)
    /// to `exchange` with the notification routing key.
    pub async fn publish_raw(&self, exchange: &str, body: &[u8]) {
        let conn = connect().await;
        let ch = conn.create_channel().await.expect("channel");
        ch.basic_publish(
            ShortString::from(exchange),
            ShortString::from(self.queue()),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default()
                .with_content_type(ShortString::from("application/json"))
                .with_content_encoding(ShortString::from("utf-8"))
                .with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("publish confirm");
        let _ = conn.close(200, ShortString::from("bye")).await;
    }

    /// Ready and unacknowledged message counts of a queue, from
    /// `rabbitmqctl` (the only place the unacked count is visible without
    /// the management plugin). `None` when the queue does not exist.
    pub fn queue_counts(&self, queue: &str) -> Option<(u64, u64)> {
        queue_counts(queue)
    }

    /// The listener's default dead-letter queue: `<topic>.failed`.
    pub fn default_dead_letter_queue(&self) -> String {
        format!("{}.failed", self.topic)
    }

    /// Takes every message out of the dead-letter queue: (body, headers).
    pub async fn take_dead_letters(&self) -> Vec<(Vec<u8>, FieldTable)> {
        self.take_messages(&self.dead_letter_queue).await
    }

    /// Takes every message out of `queue`: (body, headers).
    pub async fn take_messages(&self, queue: &str) -> Vec<(Vec<u8>, FieldTable)> {
        let conn = connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let mut out = Vec::new();
        while let Some(m) = ch
            .basic_get(ShortString::from(queue), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get on the dead-letter queue")
        {
            let headers = m.delivery.properties.headers().clone().unwrap_or_default();
            out.push((m.delivery.data.clone(), headers));
        }
        let _ = conn.close(200, ShortString::from("bye")).await;
        out
    }

    /// Checks a queue exists (passive declare) and returns its ready count.
    pub async fn passive_ready_count(&self, queue: &str) -> Option<u32> {
        let conn = connect().await;
        let ch = conn.create_channel().await.expect("channel");
        let q = ch
            .queue_declare(
                ShortString::from(queue),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()?;
        let _ = conn.close(200, ShortString::from("bye")).await;
        Some(q.message_count())
    }
}

impl Drop for RabbitNames {
    fn drop(&mut self) {
        let queues = [
            self.queue(),
            self.dead_letter_queue.clone(),
            self.default_dead_letter_queue(),
        ];
        let exchanges = [
            self.control_exchange.clone(),
            self.nova_exchange.clone(),
            self.neutron_exchange.clone(),
        ];
        // Drop cannot be async, and may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let Ok(conn) = Connection::connect(AMQP_URL, ConnectionProperties::default()).await
                else {
                    return;
                };
                for q in queues {
                    if let Ok(ch) = conn.create_channel().await {
                        let _ = ch
                            .queue_delete(ShortString::from(q), QueueDeleteOptions::default())
                            .await;
                    }
                }
                for e in exchanges {
                    if let Ok(ch) = conn.create_channel().await {
                        let _ = ch
                            .exchange_delete(ShortString::from(e), ExchangeDeleteOptions::default())
                            .await;
                    }
                }
                let _ = conn.close(200, ShortString::from("bye")).await;
            });
        })
        .join();
    }
}

/// A lapin connection to the test broker.
pub async fn connect() -> Connection {
    Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672")
}

/// The given columns of one queue's row in `rabbitmqctl list_queues`
/// (tab-separated; the last column may contain spaces).
fn queue_row(queue: &str, columns: &[&str]) -> Option<Vec<String>> {
    let out = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers", "-p", "/", "name"])
        .args(columns)
        .output()
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|line| {
        let mut f = line.splitn(columns.len() + 1, '\t');
        if f.next()? != queue {
            return None;
        }
        let row: Vec<String> = f.map(|v| v.trim().to_string()).collect();
        (row.len() == columns.len()).then_some(row)
    })
}

/// Ready and unacknowledged counts of a queue from `rabbitmqctl`.
pub fn queue_counts(queue: &str) -> Option<(u64, u64)> {
    let row = queue_row(queue, &["messages_ready", "messages_unacknowledged"])?;
    Some((row[0].parse().ok()?, row[1].parse().ok()?))
}

/// `durable`, `auto_delete` and `arguments` of a queue, from `rabbitmqctl`.
pub fn queue_flags(queue: &str) -> Option<(bool, bool, String)> {
    let row = queue_row(queue, &["durable", "auto_delete", "arguments"])?;
    Some((row[0] == "true", row[1] == "true", row[2].clone()))
}

/// Restarts the broker application (`rabbitmqctl stop_app`, wait,
/// `start_app`). Every client on this machine loses its connection, so
/// keep `stopped_for` to a few seconds.
pub fn restart_broker(stopped_for: Duration) {
    let stop = Command::new("rabbitmqctl")
        .arg("stop_app")
        .output()
        .expect("rabbitmqctl stop_app");
    assert!(
        stop.status.success(),
        "stop_app failed: {}",
        String::from_utf8_lossy(&stop.stderr)
    );
    std::thread::sleep(stopped_for);
    let start = Command::new("rabbitmqctl")
        .arg("start_app")
        .output()
        .expect("rabbitmqctl start_app");
    assert!(
        start.status.success(),
        "start_app failed: {}",
        String::from_utf8_lossy(&start.stderr)
    );
}

/// Text of an AMQP header value.
pub fn header_text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// A TLS front for the test broker: accepts TLS on a loopback port with a
/// certificate for `localhost` from a CA made at start, and forwards the
/// plain stream to 127.0.0.1:5672. Stops when dropped.
pub struct TlsFront {
    /// The port to connect to with TLS.
    pub port: u16,
    /// The CA that signed the certificate (PEM).
    pub ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsFront {
    /// Starts the front on the current runtime.
    pub async fn start() -> TlsFront {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        use std::sync::Arc;

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "novajoin test broker CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut broker) = tokio::net::TcpStream::connect("127.0.0.1:5672").await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                });
            }
        });
        TlsFront {
            port,
            ca_pem: ca.pem(),
            task,
        }
    }
}
