//! The delivery loop: connect (with failover and backoff), declare,
//! consume with manual acks, hand each notification to the handler with
//! bounded concurrency, and settle it only when its work is done.
//!
//! Outcomes of one message:
//! * handled, or not for novajoin → `basic.ack`;
//! * cannot ever succeed (malformed, unknown event or version, refused by
//!   IPA) → logged with its message id, then copied to the dead-letter queue
//!   and acked when one is configured, else `basic.reject` without requeue
//!   (a broker dead-letter policy can catch it);
//! * failed for a transient reason → retried in place with doubling
//!   backoff; after `retry_max_attempts`, or on shutdown, `basic.nack` with
//!   requeue so the broker keeps it.
//!
//! A lost connection ends the session; the broker requeues whatever was
//! unacked and redelivers it after the reconnect, so handlers must be (and
//! are) idempotent. Notifications about the same instance or floating IP
//! are handled one after another in arrival order.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::panic::AssertUnwindSafe;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::envelope::{self, Notification};
use super::events::{self, Classified, Event};
use super::failure::HandlerError;
use super::settings::ListenerSettings;
use super::topology::Topology;
use super::transport::ConnectTarget;

/// Does the work for one event. Must be idempotent: after a broker restart
/// the same notification may be delivered again.
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one event.
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// Why the listener stopped other than by a shutdown request.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// A TLS file could not be read.
    #[error("cannot read {path}: {source}")]
    TlsFile {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The notification listener.
pub struct Listener {
    settings: ListenerSettings,
    topology: Topology,
    handler: Arc<dyn EventHandler>,
    tls: OwnedTLSConfig,
}

/// How one message ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Disposition {
    Ack,
    Permanent(String),
    Requeue(String),
}

/// Shared between the consume loop and the message tasks.
struct Shared {
    settings: ListenerSettings,
    handler: Arc<dyn EventHandler>,
    /// true once shutdown was requested: retries stop waiting.
    stopping: watch::Receiver<bool>,
    order: Mutex<HashMap<String, (u64, oneshot::Receiver<()>)>>,
    next_id: AtomicU64,
}

/// One connection's channels, kept alive while its deliveries are settled.
struct Session {
    connection: Connection,
    consume: Channel,
    /// Publisher-confirm channel for dead-lettering.
    publish: Option<Channel>,
    consumer_tag: String,
    /// Where permanently failing messages are copied.
    dead_letter_queue: Option<String>,
    /// Returns after which a quorum queue drops a message (its
    /// `x-delivery-limit`), if it has one.
    delivery_limit: Option<u64>,
}

enum SessionEnd {
    Shutdown(Arc<Session>),
    Lost(String),
}

impl Listener {
    /// A listener for these settings and handler. Reads the TLS files now so
    /// that a wrong path fails at start-up.
    pub fn new(
        settings: ListenerSettings,
        handler: Arc<dyn EventHandler>,
    ) -> Result<Self, ListenerError> {
        let mut tls = OwnedTLSConfig::default();
        if let Some(t) = &settings.tls {
            let read = |p: &std::path::PathBuf| {
                std::fs::read(p).map_err(|source| ListenerError::TlsFile {
                    path: p.display().to_string(),
                    source,
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
        }
        Ok(Self {
            topology: Topology::new(&settings),
            settings,
            handler,
            tls,
        })
    }

    /// Runs until `shutdown` resolves, then stops consuming, lets messages
    /// in progress finish (up to `shutdown_timeout`), gives the rest back to
    /// the broker and closes the connection.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ListenerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            settings: self.settings.clone(),
            handler: self.handler.clone(),
            stopping: stop_rx.clone(),
            order: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let permits = Arc::new(Semaphore::new(self.settings.max_concurrent));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut hosts = self.settings.transport.hosts.clone();
        if self.settings.shuffle_hosts {
            use rand::seq::SliceRandom;
            hosts.shuffle(&mut rand::thread_rng());
        }
        tokio::pin!(shutdown);
        let stopping = stop_rx.clone();
        let mut failures: u32 = 0;
        let mut host_index = 0usize;
        let mut last_session = None;

        loop {
            if *stopping.borrow() {
                break;
            }
            let host = hosts[host_index % hosts.len()].clone();
            let target = ConnectTarget {
                host: host.clone(),
                vhost: self.settings.transport.vhost.clone(),
                tls: self.settings.tls.is_some(),
                heartbeat: self.settings.heartbeat,
                mechanism: self.settings.mechanism,
                connect_timeout_ms: 10_000,
            };
            let session = tokio::select! {
                _ = &mut shutdown => { let _ = stop_tx.send(true); break; }
                s = self.open_session(&target) => s,
            };
            let wait = match session {
                Ok(session) => {
                    tracing::info!(broker = %host, vhost = %target.vhost, queue = %self.topology.queue,
                        exchange = %self.topology.exchange, "listening for notifications");
                    failures = 0;
                    metrics::gauge!("novajoin_notify_connected").set(1.0);
                    let end = consume(
                        session,
                        shared.clone(),
                        permits.clone(),
                        &mut tasks,
                        &mut shutdown,
                        &stop_tx,
                    )
                    .await;
                    metrics::gauge!("novajoin_notify_connected").set(0.0);
                    match end {
                        SessionEnd::Shutdown(s) => {
                            last_session = Some(s);
                            break;
                        }
                        SessionEnd::Lost(why) => {
                            tracing::warn!(broker = %host, reason = %why,
                                "lost the broker connection; unacknowledged notifications will be redelivered after reconnecting");
                            self.settings.reconnect.wait_after(0)
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    host_index += 1;
                    let wait = self.settings.reconnect.wait_after(failures);
                    tracing::warn!(broker = %host, attempt = failures, retry_in = ?wait, error = %e,
                        "cannot connect to the broker");
                    wait
                }
            };
            tokio::select! {
                _ = &mut shutdown => { let _ = stop_tx.send(true); break; }
                _ = tokio::time::sleep(wait) => {}
            }
            // Reap finished tasks so the set does not grow across sessions.
            while tasks.try_join_next().is_some() {}
        }
        let _ = stop_tx.send(true);

        // Let work in progress finish; what does not is given back.
        let grace = self.settings.shutdown_timeout;
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, grace = ?grace, "stopping: finishing notifications in progress");
        }
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "stopping: work still running after the grace period; \
                its notifications stay unacknowledged and the broker redelivers them"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        if let Some(s) = last_session {
            let _ = s
                .connection
                .close(200, ShortString::from("novajoin notify stopping"))
                .await;
        }
        tracing::info!("notification listener stopped");
        Ok(())
    }

    async fn open_session(&self, target: &ConnectTarget) -> Result<Session, lapin::Error> {
        let runtime = lapin::runtime::default_runtime()?;
        let props = ConnectionProperties::default().with_connection_name(LongString::from(
            format!("novajoin-notify:{}", std::process::id()),
        ));
        let connection = Connection::connect_uri_with_config(
            target.amqp_uri(),
            props,
            self.tls.clone(),
            runtime,
        )
        .await?;
        let consume = connection.create_channel().await?;
        if let Err(e) = self.topology.declare(&connection, &consume).await {
            tracing::error!(error = %e, queue = %self.topology.queue, exchange = %self.topology.exchange,
                "declaring the notification queue failed; if the broker says PRECONDITION_FAILED / inequivalent arg, \
                 make amqp_durable_queues, amqp_auto_delete and rabbit_quorum_queue equal to nova's and neutron's");
            let _ = connection
                .close(200, ShortString::from("declare failed"))
                .await;
            return Err(e);
        }
        consume
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let publish = match &self.topology.dead_letter_queue {
            Some(_) => {
                let ch = connection.create_channel().await?;
                ch.confirm_select(ConfirmSelectOptions::default()).await?;
                Some(ch)
            }
            None => None,
        };
        Ok(Session {
            connection,
            consume,
            publish,
            consumer_tag: format!("novajoin-notify-{}", uuid::Uuid::new_v4().simple()),
            dead_letter_queue: self.topology.dead_letter_queue.clone(),
            delivery_limit: self.topology.delivery_limit(),
        })
    }
}

async fn consume(
    session: Session,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    shutdown: &mut std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
    stop_tx: &watch::Sender<bool>,
) -> SessionEnd {
    let mut args = FieldTable::default();
    if shared.settings.cancel_on_failover {
        args.insert("x-cancel-on-ha-failover".into(), AMQPValue::Boolean(true));
    }
    let consumer = session
        .consume
        .basic_consume(
            ShortString::from(shared.settings.queue_name()),
            ShortString::from(session.consumer_tag.as_str()),
            BasicConsumeOptions {
                no_ack: false,
                ..Default::default()
            },
            args,
        )
        .await;
    let mut consumer = match consumer {
        Ok(c) => c,
        Err(e) => return SessionEnd::Lost(format!("basic.consume failed: {e}")),
    };
    let session = Arc::new(session);
    loop {
        let permit = tokio::select! {
            _ = &mut *shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let next = tokio::select! {
            _ = &mut *shutdown => break,
            n = consumer.next() => n,
        };
        let delivery = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => return lost(&session, e.to_string()).await,
            None => {
                return lost(
                    &session,
                    "the broker cancelled the consumer or closed the channel".into(),
                )
                .await
            }
        };
        dispatch(delivery, permit, &shared, &session, tasks);
        // Reap finished tasks as we go.
        while tasks.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    // Stop deliveries; unacked prefetched ones are requeued by the broker
    // when the channel closes, or nacked by their tasks.
    let _ = session
        .consume
        .basic_cancel(
            ShortString::from(session.consumer_tag.as_str()),
            BasicCancelOptions::default(),
        )
        .await;
    SessionEnd::Shutdown(session)
}

/// Ends a session that stopped delivering: the connection is closed (if it
/// still stands, e.g. only the channel died) so the broker requeues every
/// unacknowledged delivery for the next session.
async fn lost(session: &Session, why: String) -> SessionEnd {
    let close = session
        .connection
        .close(200, ShortString::from("novajoin notify reconnecting"));
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), close).await;
    SessionEnd::Lost(why)
}

fn dispatch(
    delivery: Delivery,
    permit: OwnedSemaphorePermit,
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    tasks: &mut JoinSet<()>,
) {
    let compression = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("compression").map(amqp_text));
    let decoded = envelope::decode(&delivery.data, compression.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|n| {
            events::classify(&n, shared.settings.format)
                .map(|c| (n, c))
                .map_err(|e| e.to_string())
        });
    let shared = shared.clone();
    let session = session.clone();
    match decoded {
        Err(why) => {
            let id = envelope::salvage_message_id(&delivery.data).unwrap_or_else(|| "-".into());
            tasks.spawn(async move {
                let _permit = permit;
                settle(&session, &delivery, &id, "-", Disposition::Permanent(why)).await;
            });
        }
        Ok((n, Classified::Ignore(why))) => {
            tracing::debug!(message_id = %n.message_id, event_type = %n.event_type, publisher = %n.publisher_id,
                reason = why, "notification ignored");
            metrics::counter!("novajoin_notify_messages_total", "outcome" => "ignored")
                .increment(1);
            tasks.spawn(async move {
                let _permit = permit;
                settle(
                    &session,
                    &delivery,
                    &n.message_id,
                    &n.event_type,
                    Disposition::Ack,
                )
                .await;
            });
        }
        Ok((n, Classified::Handle(event))) => {
            // Chain behind the previous message about the same resource.
            let key = event.ordering_key();
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
            let (done_tx, done_rx) = oneshot::channel::<()>();
            let previous = shared
                .order
                .lock()
                .expect("order map poisoned")
                .insert(key.clone(), (id, done_rx))
                .map(|(_, rx)| rx);
            tasks.spawn(async move {
                let _permit = permit;
                if let Some(prev) = previous {
                    let _ = prev.await;
                }
                let disposition =
                    handle_with_retry(&shared, &n, &event, delivery.redelivered).await;
                settle(
                    &session,
                    &delivery,
                    &n.message_id,
                    &n.event_type,
                    disposition,
                )
                .await;
                drop(done_tx);
                let mut order = shared.order.lock().expect("order map poisoned");
                if order.get(&key).is_some_and(|(owner, _)| *owner == id) {
                    order.remove(&key);
                }
            });
        }
    }
}

async fn handle_with_retry(
    shared: &Shared,
    n: &Notification,
    event: &Event,
    redelivered: bool,
) -> Disposition {
    let mut stopping = shared.stopping.clone();
    let policy = &shared.settings.retry;
    let mut attempt = 0u32;
    if *stopping.borrow() {
        // Queued behind another message about the same resource and not
        // started: not in-flight work, so it goes back.
        return Disposition::Requeue("shutting down before it started".into());
    }
    loop {
        attempt += 1;
        tracing::debug!(message_id = %n.message_id, event_type = %n.event_type, attempt, redelivered, "handling notification");
        // A panicking handler must not leave the message unsettled (it would
        // come back after every reconnect and panic again).
        let outcome = AssertUnwindSafe(shared.handler.handle(event, &n.message_id))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                Err(HandlerError::Permanent(
                    "the handler panicked; this is a bug".into(),
                ))
            });
        match outcome {
            Ok(()) => return Disposition::Ack,
            Err(HandlerError::Permanent(why)) => return Disposition::Permanent(why),
            Err(failure @ (HandlerError::Transient(_) | HandlerError::AccessDenied(_))) => {
                let denied = matches!(failure, HandlerError::AccessDenied(_));
                let why = match failure {
                    HandlerError::AccessDenied(_) => failure.to_string(),
                    HandlerError::Transient(w) | HandlerError::Permanent(w) => w,
                };
                if denied {
                    metrics::counter!(crate::metrics::NOTIFY_ACCESS_DENIED).increment(1);
                }
                if attempt >= policy.max_attempts {
                    let why = format!("{why} (gave up after {attempt} attempts)");
                    return if denied {
                        Disposition::Permanent(why)
                    } else {
                        Disposition::Requeue(why)
                    };
                }
                if *stopping.borrow() {
                    return Disposition::Requeue(format!("{why} (shutting down)"));
                }
                let wait = policy.delay_after(attempt);
                tracing::warn!(message_id = %n.message_id, event_type = %n.event_type, attempt, retry_in = ?wait,
                    error = %why, "notification failed for a transient reason; retrying");
                metrics::counter!("novajoin_notify_retries_total").increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopping.wait_for(|s| *s) => {
                        return Disposition::Requeue(format!("{why} (shutting down)"));
                    }
                }
            }
        }
    }
}

/// Longest an ack, nack or reject may take. A settle that never completes
/// (a connection that died without the client library noticing) would hold
/// its concurrency permit and, through the per-resource ordering, every
/// later message about the same resource, unacknowledged, for good.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn settle(
    session: &Session,
    delivery: &Delivery,
    message_id: &str,
    event_type: &str,
    d: Disposition,
) {
    let d = match (d, session.delivery_limit) {
        (Disposition::Requeue(why), Some(limit)) if delivery_count(delivery) >= limit => {
            Disposition::Permanent(format!(
                "{why}; it was given back {limit} times, the queue's delivery limit, so the broker \
                 would drop it on the next return"
            ))
        }
        (d, _) => d,
    };
    let settled = tokio::time::timeout(
        SETTLE_TIMEOUT,
        settle_on_channel(session, delivery, message_id, event_type, &d),
    )
    .await;
    match settled {
        Ok(Ok(true)) => {}
        Ok(Ok(false) | Err(_)) => tracing::warn!(message_id, event_type, outcome = ?d,
            "could not settle the notification on its channel (connection lost); the broker will redeliver it"),
        Err(_) => {
            tracing::warn!(message_id, event_type, outcome = ?d, timeout = ?SETTLE_TIMEOUT,
                "the broker did not take the notification's acknowledgement in time; closing the connection \
                 so that it redelivers every unacknowledged notification");
            let close = session.connection.close(
                200,
                ShortString::from("novajoin notify: acknowledgement timed out"),
            );
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), close).await;
        }
    }
}

/// How often a quorum queue has had the message back before this delivery
/// (its `x-delivery-count` header; absent on the first delivery).
fn delivery_count(delivery: &Delivery) -> u64 {
    let Some(headers) = delivery.properties.headers() else {
        return 0;
    };
    match headers.inner().get("x-delivery-count") {
        Some(AMQPValue::LongLongInt(n)) => u64::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongInt(n)) => u64::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongUInt(n)) => u64::from(*n),
        Some(AMQPValue::ShortInt(n)) => u64::try_from(*n).unwrap_or(0),
        Some(AMQPValue::ShortUInt(n)) => u64::from(*n),
        Some(AMQPValue::ShortShortInt(n)) => u64::try_from(*n).unwrap_or(0),
        Some(AMQPValue::ShortShortUInt(n)) => u64::from(*n),
        _ => 0,
    }
}

/// Acks, nacks or rejects (dead-lettering first when configured).
async fn settle_on_channel(
    session: &Session,
    delivery: &Delivery,
    message_id: &str,
    event_type: &str,
    d: &Disposition,
) -> lapin::Result<bool> {
    match d {
        Disposition::Ack => {
            metrics::counter!("novajoin_notify_messages_total", "outcome" => "handled")
                .increment(1);
            delivery.acker.ack(BasicAckOptions::default()).await
        }
        Disposition::Requeue(why) => {
            tracing::warn!(message_id, event_type, reason = %why, "notification given back to the broker for later");
            metrics::counter!("novajoin_notify_messages_total", "outcome" => "requeued")
                .increment(1);
            delivery
                .acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await
        }
        Disposition::Permanent(why) => {
            metrics::counter!("novajoin_notify_messages_total", "outcome" => "rejected")
                .increment(1);
            match (&session.publish, &session.dead_letter_queue) {
                (Some(ch), Some(dlq)) => match dead_letter(ch, dlq, delivery, why).await {
                    Ok(()) => {
                        tracing::error!(message_id, event_type, reason = %why, dead_letter_queue = %dlq,
                            routing_key = %delivery.routing_key, "notification rejected; copied to the dead-letter queue");
                        delivery.acker.ack(BasicAckOptions::default()).await
                    }
                    Err(e) => {
                        tracing::error!(message_id, event_type, reason = %why, error = %e,
                            "notification cannot be handled and dead-lettering it failed; requeued");
                        delivery
                            .acker
                            .nack(BasicNackOptions {
                                multiple: false,
                                requeue: true,
                            })
                            .await
                    }
                },
                _ => {
                    tracing::error!(message_id, event_type, reason = %why, routing_key = %delivery.routing_key,
                        "notification rejected (it can never be handled)");
                    delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                }
            }
        }
    }
}

async fn dead_letter(
    ch: &Channel,
    queue: &str,
    delivery: &Delivery,
    why: &str,
) -> Result<(), String> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-novajoin-error".into(),
        AMQPValue::LongString(LongString::from(why)),
    );
    headers.insert(
        "x-original-exchange".into(),
        AMQPValue::LongString(LongString::from(delivery.exchange.as_str())),
    );
    headers.insert(
        "x-original-routing-key".into(),
        AMQPValue::LongString(LongString::from(delivery.routing_key.as_str())),
    );
    let mut props = BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(2);
    if let Some(ct) = delivery.properties.content_type() {
        props = props.with_content_type(ct.clone());
    }
    if let Some(ce) = delivery.properties.content_encoding() {
        props = props.with_content_encoding(ce.clone());
    }
    let confirm = ch
        .basic_publish(
            ShortString::from(""),
            ShortString::from(queue),
            BasicPublishOptions::default(),
            &delivery.data,
            props,
        )
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    if confirm.is_nack() {
        return Err(format!("the broker refused the copy to {queue}"));
    }
    Ok(())
}

fn amqp_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        other => format!("{other:?}"),
    }
}
