//! The exchange, queue and bindings the listener declares: exactly what
//! oslo.messaging's notification listener and notifier declare with the same
//! options, so that no side ever gets 406 PRECONDITION_FAILED
//! (spec notifications.md §1, §5.6).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use super::settings::{ListenerSettings, QueueFlags};

/// The delivery limit RabbitMQ 4 applies to a quorum queue declared without
/// `x-delivery-limit` (earlier versions have none; guarding against it there
/// only dead-letters a message that came back this often).
pub const RABBITMQ_DEFAULT_DELIVERY_LIMIT: u64 = 20;

/// The declarations for one listener.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// `control_exchange`, declared actively.
    pub exchange: String,
    /// Publisher exchanges (nova, neutron): bound only if they exist.
    pub publisher_exchanges: Vec<String>,
    /// `<topic>.info`.
    pub queue: String,
    /// Routing key, `<topic>.info`.
    pub routing_key: String,
    /// Flags.
    pub flags: QueueFlags,
    /// Dead-letter queue, if configured.
    pub dead_letter_queue: Option<String>,
}

impl Topology {
    /// The topology for these settings.
    pub fn new(s: &ListenerSettings) -> Self {
        Self {
            exchange: s.control_exchange.clone(),
            publisher_exchanges: s
                .publisher_exchanges
                .iter()
                .filter(|e| **e != s.control_exchange)
                .cloned()
                .collect(),
            queue: s.queue_name(),
            routing_key: s.queue_name(),
            flags: s.flags.clone(),
            dead_letter_queue: s.dead_letter_queue.clone(),
        }
    }

    /// Returns after which the broker drops a message of the notification
    /// queue: a quorum queue's `rabbit_quorum_delivery_limit`, or, when that
    /// is 0 (not sent), RabbitMQ 4's default limit for quorum queues. The
    /// listener dead-letters a message itself before the broker would drop it.
    pub fn delivery_limit(&self) -> Option<u64> {
        match (self.flags.quorum, self.flags.quorum_delivery_limit) {
            (false, _) => None,
            (true, 0) => Some(RABBITMQ_DEFAULT_DELIVERY_LIMIT),
            (true, n) => u64::try_from(n).ok(),
        }
    }

    /// exchange.declare options: topic, durable per oslo's rule, never internal.
    pub fn exchange_options(&self) -> ExchangeDeclareOptions {
        ExchangeDeclareOptions {
            passive: false,
            durable: self.flags.durable(),
            auto_delete: self.flags.auto_delete,
            internal: false,
            nowait: false,
        }
    }

    /// queue.declare options for the notification queue.
    pub fn queue_options(&self) -> QueueDeclareOptions {
        QueueDeclareOptions {
            passive: false,
            durable: self.flags.durable(),
            exclusive: false,
            auto_delete: self.flags.auto_delete,
            nowait: false,
        }
    }

    /// queue.declare arguments: none by default; the quorum type and the
    /// non-zero quorum limits; or `x-ha-policy` as oslo sends it.
    pub fn queue_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        let f = &self.flags;
        if f.quorum {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(LongString::from("quorum")),
            );
            for (name, value) in [
                ("x-delivery-limit", f.quorum_delivery_limit),
                ("x-max-in-memory-length", f.quorum_max_memory_length),
                ("x-max-in-memory-bytes", f.quorum_max_memory_bytes),
            ] {
                if value != 0 {
                    args.insert(name.into(), amqp_int(value));
                }
            }
        } else if f.ha_queues {
            args.insert(
                "x-ha-policy".into(),
                AMQPValue::LongString(LongString::from("all")),
            );
        }
        args
    }

    /// Declares the exchange and queue, binds them, binds the queue to every
    /// publisher exchange that exists, and declares the dead-letter queue.
    /// A 406 names the inequivalent argument in the broker's text, which the
    /// returned error keeps.
    pub async fn declare(&self, conn: &Connection, channel: &Channel) -> Result<(), lapin::Error> {
        channel
            .exchange_declare(
                ShortString::from(self.exchange.as_str()),
                ExchangeKind::Topic,
                self.exchange_options(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                ShortString::from(self.queue.as_str()),
                self.queue_options(),
                self.queue_arguments(),
            )
            .await?;
        self.bind(channel, &self.exchange).await?;
        for exchange in &self.publisher_exchanges {
            // A passive declare of a missing exchange closes its channel
            // (404), so each check gets a throwaway channel.
            let probe = conn.create_channel().await?;
            let exists = probe
                .exchange_declare(
                    ShortString::from(exchange.as_str()),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .is_ok();
            if exists {
                let _ = probe
                    .close(200, ShortString::from("exchange checked"))
                    .await;
                self.bind(channel, exchange).await?;
                tracing::debug!(exchange = %exchange, queue = %self.queue, "bound the queue to a publisher exchange");
            } else {
                tracing::info!(exchange = %exchange, queue = %self.queue,
                    "publisher exchange does not exist yet; its notifier will bind the queue when it first publishes");
            }
        }
        if let Some(dlq) = &self.dead_letter_queue {
            let mut args = FieldTable::default();
            if self.flags.quorum {
                args.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString(LongString::from("quorum")),
                );
            }
            channel
                .queue_declare(
                    ShortString::from(dlq.as_str()),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    args,
                )
                .await?;
        }
        Ok(())
    }

    async fn bind(&self, channel: &Channel, exchange: &str) -> Result<(), lapin::Error> {
        channel
            .queue_bind(
                ShortString::from(self.queue.as_str()),
                ShortString::from(exchange),
                ShortString::from(self.routing_key.as_str()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }
}

/// py-amqp sends an integer that fits as a signed 32-bit value ('I'),
/// larger ones as 64-bit ('L'); RabbitMQ compares the values, but matching
/// the type keeps the declaration byte-for-byte the same.
fn amqp_int(v: i64) -> AMQPValue {
    match i32::try_from(v) {
        Ok(n) => AMQPValue::LongInt(n),
        Err(_) => AMQPValue::LongLongInt(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> QueueFlags {
        QueueFlags {
            durable_queues: false,
            auto_delete: false,
            quorum: false,
            quorum_delivery_limit: 0,
            quorum_max_memory_length: 0,
            quorum_max_memory_bytes: 0,
            ha_queues: false,
        }
    }

    fn topo(flags: QueueFlags) -> Topology {
        Topology {
            exchange: "openstack".into(),
            publisher_exchanges: vec![],
            queue: "t.info".into(),
            routing_key: "t.info".into(),
            flags,
            dead_letter_queue: None,
        }
    }

    #[test]
    fn defaults_are_transient_classic_without_arguments() {
        let t = topo(flags());
        assert!(!t.exchange_options().durable && !t.queue_options().durable);
        assert!(!t.queue_options().auto_delete && !t.queue_options().exclusive);
        assert!(t.queue_arguments().inner().is_empty());
    }

    #[test]
    fn quorum_forces_durable_and_sends_only_set_limits() {
        let t = topo(QueueFlags {
            quorum: true,
            quorum_delivery_limit: 5,
            ..flags()
        });
        assert!(t.exchange_options().durable && t.queue_options().durable);
        let args = t.queue_arguments();
        let m = args.inner();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(m.get("x-delivery-limit"), Some(&AMQPValue::LongInt(5)));
    }

    #[test]
    fn only_quorum_queues_have_a_delivery_limit() {
        assert_eq!(topo(flags()).delivery_limit(), None);
        let q = |limit| {
            topo(QueueFlags {
                quorum: true,
                quorum_delivery_limit: limit,
                ..flags()
            })
            .delivery_limit()
        };
        assert_eq!(q(3), Some(3));
        assert_eq!(q(0), Some(RABBITMQ_DEFAULT_DELIVERY_LIMIT));
    }

    #[test]
    fn durable_option_and_ha() {
        let t = topo(QueueFlags {
            durable_queues: true,
            ha_queues: true,
            ..flags()
        });
        assert!(t.queue_options().durable && t.exchange_options().durable);
        assert_eq!(
            t.queue_arguments().inner().get("x-ha-policy"),
            Some(&AMQPValue::LongString("all".into()))
        );
        assert_eq!(amqp_int(1 << 40), AMQPValue::LongLongInt(1 << 40));
    }
}
