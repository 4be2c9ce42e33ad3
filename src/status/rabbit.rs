//! "RabbitMQ notifications": the broker of the listener's transport URL
//! accepts the listener's login, and the exchanges and the notification
//! queue the listener uses exist. Names come from the listener's own
//! settings and topology code (`crate::notify`), so they cannot drift.
//!
//! Read-only: every declare is passive (a missing exchange or queue is a
//! 404 that closes only its own channel). AMQP 0-9-1 has no way to list a
//! queue's bindings (only the management plugin's HTTP API can), so the
//! check proves that the queue and the exchanges it is bound to exist; the
//! listener (re)binds them every time it connects.

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties, ExchangeKind};

use super::report::CheckResult;
use super::within;
use crate::config::ConfigFiles;
use crate::notify::topology::Topology;
use crate::notify::transport::ConnectTarget;
use crate::notify::ListenerSettings;

/// The check's name.
pub const NAME: &str = "RabbitMQ notifications";

/// Connects as the listener would and checks its exchanges and queue.
pub async fn check(cfg: &ConfigFiles) -> CheckResult {
    let settings = match ListenerSettings::from_config(cfg) {
        Ok(s) => s,
        Err(e) => return CheckResult::failure(NAME, e.to_string()),
    };
    let tls = match tls_config(&settings) {
        Ok(t) => t,
        Err(e) => return CheckResult::failure(NAME, e),
    };
    let topology = Topology::new(&settings);
    let mut errors = Vec::new();
    for host in &settings.transport.hosts {
        let target = ConnectTarget {
            host: host.clone(),
            vhost: settings.transport.vhost.clone(),
            tls: settings.tls.is_some(),
            heartbeat: settings.heartbeat,
            mechanism: settings.mechanism,
            connect_timeout_ms: 10_000,
        };
        let props = ConnectionProperties::default()
            .with_connection_name(format!("novajoin-status:{}", std::process::id()).into());
        let runtime = match lapin::runtime::default_runtime() {
            Ok(r) => r,
            Err(e) => return CheckResult::failure(NAME, e.to_string()),
        };
        let conn = within(Connection::connect_uri_with_config(
            target.amqp_uri(),
            props,
            tls.clone(),
            runtime,
        ))
        .await;
        match conn {
            Ok(Ok(conn)) => {
                let r = inspect(
                    &conn,
                    &topology,
                    &host.to_string(),
                    &settings.transport.vhost,
                )
                .await;
                let _ = conn
                    .close(200, ShortString::from("status check done"))
                    .await;
                return r;
            }
            Ok(Err(e)) => errors.push(format!("{host}: {e}")),
            Err(t) => errors.push(format!("{host}: no answer within {t:?}")),
        }
    }
    CheckResult::failure(
        NAME,
        format!(
            "cannot connect to RabbitMQ ({}); check [DEFAULT] transport_url (or \
             [oslo_messaging_notifications] transport_url), the credentials and that the broker \
             runs",
            errors.join("; ")
        ),
    )
}

async fn inspect(conn: &Connection, topology: &Topology, host: &str, vhost: &str) -> CheckResult {
    let mut exchanges = vec![topology.exchange.clone()];
    exchanges.extend(topology.publisher_exchanges.iter().cloned());
    for exchange in &exchanges {
        match exchange_exists(conn, exchange).await {
            Ok(true) => {}
            Ok(false) => {
                return CheckResult::failure(
                    NAME,
                    format!(
                        "exchange {exchange:?} does not exist in vhost {vhost:?} on {host}: nova \
                         has not published a notification yet, or control_exchange / [notify] \
                         publisher_exchanges do not match nova's settings"
                    ),
                )
            }
            Err(e) => return CheckResult::failure(NAME, format!("{host}: {e}")),
        }
    }
    let channel = match conn.create_channel().await {
        Ok(c) => c,
        Err(e) => return CheckResult::failure(NAME, format!("{host}: {e}")),
    };
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match channel
        .queue_declare(
            ShortString::from(topology.queue.as_str()),
            passive,
            FieldTable::default(),
        )
        .await
    {
        Ok(q) => CheckResult::success(
            NAME,
            format!(
                "connected to {host} (vhost {vhost:?}); queue {:?} exists ({} ready, {} \
                 consumer(s)); exchanges {} exist",
                topology.queue,
                q.message_count(),
                q.consumer_count(),
                exchanges.join(", ")
            ),
        ),
        Err(e) => CheckResult::failure(
            NAME,
            format!(
                "the notification queue {:?} does not exist in vhost {vhost:?} ({e}): nothing \
                 receives nova's notifications; start novajoin notify (it declares and binds the \
                 queue), and check notifications_topic against nova's \
                 [oslo_messaging_notifications] topics",
                topology.queue
            ),
        ),
    }
}

/// Passive declare on a channel of its own (a 404 closes the channel).
async fn exchange_exists(conn: &Connection, name: &str) -> Result<bool, lapin::Error> {
    let probe = conn.create_channel().await?;
    let r = probe
        .exchange_declare(
            ShortString::from(name),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    match r {
        Ok(()) => {
            let _ = probe.close(200, ShortString::from("checked")).await;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// The TLS files of `[oslo_messaging_rabbit]`, read as the listener reads
/// them.
fn tls_config(settings: &ListenerSettings) -> Result<OwnedTLSConfig, String> {
    let mut tls = OwnedTLSConfig::default();
    let Some(t) = &settings.tls else {
        return Ok(tls);
    };
    let read = |p: &std::path::PathBuf| {
        std::fs::read(p).map_err(|e| {
            format!(
                "cannot read {}: {e} ([oslo_messaging_rabbit] ssl_*)",
                p.display()
            )
        })
    };
    if let Some(ca) = &t.ca_file {
        tls.cert_chain = Some(String::from_utf8_lossy(&read(ca)?).into_owned());
    }
    if let (Some(c), Some(k)) = (&t.cert_file, &t.key_file) {
        tls.identity = Some(OwnedIdentity::PKCS8 {
            pem: read(c)?,
            key: read(k)?,
        });
    }
    Ok(tls)
}
