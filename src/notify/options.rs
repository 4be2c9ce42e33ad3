//! The join.conf options the notification listener reads.
//!
//! The broker options keep oslo.messaging's names and defaults
//! (`[oslo_messaging_notifications]`, `[oslo_messaging_rabbit]`,
//! `[DEFAULT] control_exchange`) so that the values an operator copied from
//! nova.conf declare exactly what nova's notifier declares. The delivery
//! options are new and live in `[notify]`.

use crate::config::schema::{OptionGroup, OptionKind as K, OptionSpec as O};

// ---- [DEFAULT] (oslo.messaging) ----

/// `[DEFAULT] control_exchange`: the exchange the listener declares and binds.
pub const CONTROL_EXCHANGE: O = O::new(
    "DEFAULT",
    "control_exchange",
    K::Str,
    Some("openstack"),
    "Exchange the listener declares and binds its queue to (oslo.messaging's control_exchange; \
     novajoin never changed it, so 'openstack').",
);

/// The oslo.messaging options novajoin reads from `[DEFAULT]`.
pub const DEFAULT_MESSAGING_OPTIONS: OptionGroup = &[CONTROL_EXCHANGE];

// ---- [oslo_messaging_notifications] ----

/// `[oslo_messaging_notifications] transport_url`.
pub const NOTIFICATIONS_TRANSPORT_URL: O = O::new(
    "oslo_messaging_notifications",
    "transport_url",
    K::Secret,
    None,
    "Transport URL for notifications; when unset, [DEFAULT] transport_url is used.",
);
/// `[oslo_messaging_notifications] driver`.
pub const NOTIFICATIONS_DRIVER: O = O::new(
    "oslo_messaging_notifications",
    "driver",
    K::Multi,
    None,
    "Publisher-side option; accepted so that a copied nova.conf section loads. The listener \
     decodes both the messagingv2 envelope and the old messaging format.",
);
/// `[oslo_messaging_notifications] topics`.
pub const NOTIFICATIONS_TOPICS: O = O::new("oslo_messaging_notifications", "topics", K::List, Some("notifications"),
    "Publisher-side option; accepted for compatibility. The listener consumes [DEFAULT] notifications_topic.");
/// `[oslo_messaging_notifications] retry`.
pub const NOTIFICATIONS_RETRY: O = O::new(
    "oslo_messaging_notifications",
    "retry",
    K::Int {
        min: -1,
        max: 1 << 30,
    },
    Some("-1"),
    "Publisher-side option; accepted for compatibility.",
);

/// The `[oslo_messaging_notifications]` group.
pub const NOTIFICATIONS_OPTIONS: OptionGroup = &[
    NOTIFICATIONS_TRANSPORT_URL,
    NOTIFICATIONS_DRIVER,
    NOTIFICATIONS_TOPICS,
    NOTIFICATIONS_RETRY,
];

// ---- [oslo_messaging_rabbit] ----

/// `amqp_durable_queues`.
pub const AMQP_DURABLE_QUEUES: O = O::new("oslo_messaging_rabbit", "amqp_durable_queues", K::Bool, Some("false"),
    "Declare the exchange and the notification queue durable. Must match nova's and neutron's value.");
/// `amqp_auto_delete`.
pub const AMQP_AUTO_DELETE: O = O::new(
    "oslo_messaging_rabbit",
    "amqp_auto_delete",
    K::Bool,
    Some("false"),
    "Declare the exchange and queue auto-delete. Must match nova's and neutron's value.",
);
/// `rabbit_quorum_queue`.
pub const RABBIT_QUORUM_QUEUE: O = O::new("oslo_messaging_rabbit", "rabbit_quorum_queue", K::Bool, Some("false"),
    "Declare the notification queue as a quorum queue (implies durable). Must match nova's and neutron's value.");
/// `rabbit_quorum_delivery_limit`.
pub const RABBIT_QUORUM_DELIVERY_LIMIT: O = O::new(
    "oslo_messaging_rabbit",
    "rabbit_quorum_delivery_limit",
    K::Int {
        min: 0,
        max: i64::MAX,
    },
    Some("0"),
    "Quorum queue x-delivery-limit (with rabbit_quorum_queue); 0 = not sent, and RabbitMQ 4 then \
     applies its default of 20. The broker drops a message given back more often than this; the \
     listener dead-letters such a notification on its last return instead.",
);
/// `rabbit_quorum_max_memory_length`.
pub const RABBIT_QUORUM_MAX_MEMORY_LENGTH: O = O::new(
    "oslo_messaging_rabbit",
    "rabbit_quorum_max_memory_length",
    K::Int {
        min: 0,
        max: i64::MAX,
    },
    Some("0"),
    "Quorum queue x-max-in-memory-length; 0 = not sent.",
)
.with_deprecated(&["rabbit_quroum_max_memory_length"]);
/// `rabbit_quorum_max_memory_bytes`.
pub const RABBIT_QUORUM_MAX_MEMORY_BYTES: O = O::new(
    "oslo_messaging_rabbit",
    "rabbit_quorum_max_memory_bytes",
    K::Int {
        min: 0,
        max: i64::MAX,
    },
    Some("0"),
    "Quorum queue x-max-in-memory-bytes; 0 = not sent.",
)
.with_deprecated(&["rabbit_quroum_max_memory_bytes"]);
/// `rabbit_ha_queues`.
pub const RABBIT_HA_QUEUES: O = O::new("oslo_messaging_rabbit", "rabbit_ha_queues", K::Bool, Some("false"),
    "Declare the queue with x-ha-policy=all (ignored by RabbitMQ >= 3.0; cannot be combined with quorum).");
/// `rabbit_qos_prefetch_count`.
pub const RABBIT_QOS_PREFETCH_COUNT: O = O::new("oslo_messaging_rabbit", "rabbit_qos_prefetch_count", K::Int { min: 0, max: 65535 }, Some("0"),
    "Unacknowledged messages the broker may push to the listener; 0 = [notify] max_concurrent_messages.");
/// `enable_cancel_on_failover`.
pub const ENABLE_CANCEL_ON_FAILOVER: O = O::new(
    "oslo_messaging_rabbit",
    "enable_cancel_on_failover",
    K::Bool,
    Some("false"),
    "Consume with the argument x-cancel-on-ha-failover = true.",
);
/// `kombu_reconnect_delay`.
pub const KOMBU_RECONNECT_DELAY: O = O::new(
    "oslo_messaging_rabbit",
    "kombu_reconnect_delay",
    K::Float,
    Some("1.0"),
    "Seconds to wait before reconnecting after the connection was lost.",
);
/// `rabbit_retry_interval`.
pub const RABBIT_RETRY_INTERVAL: O = O::new(
    "oslo_messaging_rabbit",
    "rabbit_retry_interval",
    K::Float,
    Some("1"),
    "Seconds before the first retry of a failed connection attempt.",
);
/// `rabbit_retry_backoff`.
pub const RABBIT_RETRY_BACKOFF: O = O::new(
    "oslo_messaging_rabbit",
    "rabbit_retry_backoff",
    K::Float,
    Some("2"),
    "Seconds added to the wait after each failed connection attempt.",
);
/// `rabbit_interval_max`.
pub const RABBIT_INTERVAL_MAX: O = O::new(
    "oslo_messaging_rabbit",
    "rabbit_interval_max",
    K::Float,
    Some("30"),
    "Longest wait between connection attempts, in seconds.",
);
/// `heartbeat_timeout_threshold`.
pub const HEARTBEAT_TIMEOUT_THRESHOLD: O = O::new(
    "oslo_messaging_rabbit",
    "heartbeat_timeout_threshold",
    K::Int { min: 0, max: 65535 },
    Some("60"),
    "AMQP heartbeat timeout in seconds; 0 disables heartbeats.",
);
/// `kombu_failover_strategy`.
pub const KOMBU_FAILOVER_STRATEGY: O = O::new(
    "oslo_messaging_rabbit",
    "kombu_failover_strategy",
    K::Choice(&["round-robin", "shuffle"]),
    Some("round-robin"),
    "Order in which the hosts of a multi-host transport_url are tried.",
);
/// `rabbit_login_method`.
pub const RABBIT_LOGIN_METHOD: O = O::new(
    "oslo_messaging_rabbit",
    "rabbit_login_method",
    K::Choice(&["PLAIN", "AMQPLAIN", "EXTERNAL", "RABBIT-CR-DEMO"]),
    Some("AMQPLAIN"),
    "SASL mechanism. AMQPLAIN (oslo's default) and PLAIN log in with the URL's user and password; \
     EXTERNAL uses the TLS client certificate.",
);
/// `ssl`.
pub const SSL: O = O::new(
    "oslo_messaging_rabbit",
    "ssl",
    K::Bool,
    Some("false"),
    "Connect with TLS (amqps).",
)
.with_deprecated(&["rabbit_use_ssl"]);
/// `ssl_ca_file`.
pub const SSL_CA_FILE: O = O::new(
    "oslo_messaging_rabbit",
    "ssl_ca_file",
    K::Str,
    Some(""),
    "PEM CA bundle that signs the broker's certificate; empty = the system trust store.",
)
.with_deprecated(&["kombu_ssl_ca_certs"]);
/// `ssl_cert_file`.
pub const SSL_CERT_FILE: O = O::new(
    "oslo_messaging_rabbit",
    "ssl_cert_file",
    K::Str,
    Some(""),
    "PEM client certificate (with ssl_key_file) for mutual TLS.",
)
.with_deprecated(&["kombu_ssl_certfile"]);
/// `ssl_key_file`.
pub const SSL_KEY_FILE: O = O::new(
    "oslo_messaging_rabbit",
    "ssl_key_file",
    K::Str,
    Some(""),
    "PEM private key of ssl_cert_file.",
)
.with_deprecated(&["kombu_ssl_keyfile"]);
/// `ssl_version`.
pub const SSL_VERSION: O = O::new(
    "oslo_messaging_rabbit",
    "ssl_version",
    K::Str,
    Some(""),
    "Accepted for compatibility; TLS 1.2 or 1.3 is negotiated.",
)
.with_deprecated(&["kombu_ssl_version"]);
/// `ssl_enforce_hostname_verification`.
pub const SSL_ENFORCE_HOSTNAME_VERIFICATION: O = O::new(
    "oslo_messaging_rabbit",
    "ssl_enforce_hostname_verification",
    K::Bool,
    Some("true"),
    "Deprecated in oslo.messaging, which always verifies the broker's host name against its \
     certificate now. So does novajoin: false is ignored with a warning.",
);

/// Accepted oslo options that do not change how notifications are consumed.
const fn no_effect(name: &'static str, kind: K, default: Option<&'static str>) -> O {
    O::new(
        "oslo_messaging_rabbit",
        name,
        kind,
        default,
        "Accepted so a copied nova.conf section loads; it does not affect notification queues.",
    )
}

/// The `[oslo_messaging_rabbit]` group.
pub const RABBIT_OPTIONS: OptionGroup = &[
    AMQP_DURABLE_QUEUES,
    AMQP_AUTO_DELETE,
    RABBIT_QUORUM_QUEUE,
    RABBIT_QUORUM_DELIVERY_LIMIT,
    RABBIT_QUORUM_MAX_MEMORY_LENGTH,
    RABBIT_QUORUM_MAX_MEMORY_BYTES,
    RABBIT_HA_QUEUES,
    RABBIT_QOS_PREFETCH_COUNT,
    ENABLE_CANCEL_ON_FAILOVER,
    KOMBU_RECONNECT_DELAY,
    RABBIT_RETRY_INTERVAL,
    RABBIT_RETRY_BACKOFF,
    RABBIT_INTERVAL_MAX,
    HEARTBEAT_TIMEOUT_THRESHOLD,
    KOMBU_FAILOVER_STRATEGY,
    RABBIT_LOGIN_METHOD,
    SSL,
    SSL_CA_FILE,
    SSL_CERT_FILE,
    SSL_KEY_FILE,
    SSL_VERSION,
    SSL_ENFORCE_HOSTNAME_VERIFICATION,
    no_effect("rabbit_transient_quorum_queue", K::Bool, Some("false")),
    no_effect(
        "rabbit_transient_queues_ttl",
        K::Int {
            min: 0,
            max: i64::MAX,
        },
        Some("1800"),
    ),
    no_effect("rabbit_stream_fanout", K::Bool, Some("false")),
    no_effect("use_queue_manager", K::Bool, Some("false")),
    no_effect("hostname", K::Str, None),
    no_effect("processname", K::Str, None),
    no_effect("heartbeat_rate", K::Int { min: 0, max: 1000 }, Some("3")),
    no_effect("heartbeat_in_pthread", K::Bool, Some("false")),
    no_effect("direct_mandatory_flag", K::Bool, Some("true")),
    no_effect(
        "kombu_missing_consumer_retry_timeout",
        K::Int {
            min: 0,
            max: i64::MAX,
        },
        Some("60"),
    ),
    no_effect("kombu_compression", K::Str, None),
];

// ---- [notify]: novajoin's own listener options (new) ----

/// `[notify] max_concurrent_messages`.
pub const MAX_CONCURRENT_MESSAGES: O = O::new(
    "notify",
    "max_concurrent_messages",
    K::Int { min: 1, max: 1024 },
    Some("8"),
    "Notifications handled at the same time. Bounds the IPA calls the listener makes in parallel.",
);
/// `[notify] retry_initial_delay`.
pub const RETRY_INITIAL_DELAY: O = O::new(
    "notify",
    "retry_initial_delay",
    K::Float,
    Some("1"),
    "Seconds before the first retry of a notification whose IPA, nova, neutron or keystone call \
     failed for a transient reason; doubles with every retry.",
);
/// `[notify] retry_max_delay`.
pub const RETRY_MAX_DELAY: O = O::new(
    "notify",
    "retry_max_delay",
    K::Float,
    Some("60"),
    "Longest wait between two retries of one notification, in seconds.",
);
/// `[notify] retry_max_attempts`.
pub const RETRY_MAX_ATTEMPTS: O = O::new(
    "notify",
    "retry_max_attempts",
    K::Int { min: 1, max: 1000 },
    Some("10"),
    "Attempts before a transiently failing notification is given back to the broker (requeued, \
     not dropped) so that other messages can proceed.",
);
/// `[notify] dead_letter_queue`.
pub const DEAD_LETTER_QUEUE: O = O::new(
    "notify",
    "dead_letter_queue",
    K::Str,
    Some("${notifications_topic}.failed"),
    "Durable queue that receives notifications that can never be handled (malformed, unknown \
     version, refused by IPA), with the reason in the x-novajoin-error header and the original \
     exchange and routing key in x-original-exchange and x-original-routing-key. \
     ${notifications_topic} (or $notifications_topic) stands for [DEFAULT] notifications_topic, \
     as in oslo.config. Set it empty to reject such notifications without requeue instead, for a \
     broker dead-letter policy to route (with no such policy the broker drops them).",
);
/// `[notify] publisher_exchanges`.
pub const PUBLISHER_EXCHANGES: O = O::new(
    "notify",
    "publisher_exchanges",
    K::List,
    Some("nova,neutron"),
    "Exchanges nova and neutron publish to. When one already exists the queue is bound to it as \
     well, so delivery does not depend on the publishers' own bindings. They are checked \
     passively and never created, so their flags stay the publishers' choice.",
);
/// `[notify] shutdown_timeout`.
pub const SHUTDOWN_TIMEOUT: O = O::new(
    "notify",
    "shutdown_timeout",
    K::Float,
    Some("8"),
    "On SIGTERM or SIGINT, seconds to let notifications in progress finish before the rest are \
     given back to the broker.",
);

/// `[notify] reconcile_interval`.
pub const RECONCILE_INTERVAL: O = O::new(
    "notify",
    "reconcile_interval",
    K::Int {
        min: 0,
        max: 604800,
    },
    Some("0"),
    "Seconds between two runs of `novajoin reconcile --apply` inside the listener, which removes \
     the hosts of instances nova has deleted when their delete notification was lost. 0 turns \
     it off. Needs [service_credentials] with nova's admin role (all projects' servers).",
);

/// The `[notify]` group.
pub const NOTIFY_OPTIONS: OptionGroup = &[
    MAX_CONCURRENT_MESSAGES,
    RETRY_INITIAL_DELAY,
    RETRY_MAX_DELAY,
    RETRY_MAX_ATTEMPTS,
    DEAD_LETTER_QUEUE,
    PUBLISHER_EXCHANGES,
    SHUTDOWN_TIMEOUT,
    RECONCILE_INTERVAL,
];

/// `notification_format`.
pub const NOTIFICATION_FORMAT: O = O::new(
    "DEFAULT",
    "notification_format",
    K::Choice(&["unversioned", "versioned"]),
    Some("unversioned"),
    "Which nova notification format the listener consumes.",
);
/// `notifications_topic`.
pub const NOTIFICATIONS_TOPIC: O = O::new(
    "DEFAULT",
    "notifications_topic",
    K::Str,
    Some("novajoin_notifications"),
    "Topic (routing key prefix) the listener consumes.",
);
/// `transport_url` in [DEFAULT].
pub const TRANSPORT_URL: O = O::new(
    "DEFAULT",
    "transport_url",
    K::Secret,
    None,
    "oslo.messaging transport URL: rabbit://user:pass@host:port[,user:pass@host2:port]/vhost",
);

/// The listener's `[DEFAULT]` options.
pub const DEFAULT_NOTIFY_OPTIONS: OptionGroup =
    &[NOTIFICATION_FORMAT, NOTIFICATIONS_TOPIC, TRANSPORT_URL];
