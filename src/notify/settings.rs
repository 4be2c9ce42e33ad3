//! The listener's settings, read once from join.conf and the transport URL.
//!
//! A query parameter of the transport URL overrides the
//! `[oslo_messaging_rabbit]` option of the same name, as oslo.messaging
//! does; an unknown key is a start-up error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use lapin::uri::SASLMechanism;

use super::options as opt;
use super::transport::{TransportUrl, TransportUrlError};
use crate::config::files::parse_bool;
use crate::config::schema::{OptionKind, OptionSpec};
use crate::config::OptionSource;
use crate::config::{ConfigError, ConfigFiles};

/// Which nova notification format the listener handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationFormat {
    /// `compute.instance.*` (nova's default).
    Unversioned,
    /// `instance.*` with versioned payloads.
    Versioned,
}

/// How the queue and exchanges are declared; must equal what nova's and
/// neutron's notifiers declare (see spec notifications.md §1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueFlags {
    /// `amqp_durable_queues`.
    pub durable_queues: bool,
    /// `amqp_auto_delete`.
    pub auto_delete: bool,
    /// `rabbit_quorum_queue`.
    pub quorum: bool,
    /// `rabbit_quorum_delivery_limit` (0 = not sent).
    pub quorum_delivery_limit: i64,
    /// `rabbit_quorum_max_memory_length` (0 = not sent).
    pub quorum_max_memory_length: i64,
    /// `rabbit_quorum_max_memory_bytes` (0 = not sent).
    pub quorum_max_memory_bytes: i64,
    /// `rabbit_ha_queues`.
    pub ha_queues: bool,
}

impl QueueFlags {
    /// oslo's rule: exchanges and queues are durable with either option.
    pub fn durable(&self) -> bool {
        self.durable_queues || self.quorum
    }
}

/// TLS settings (`ssl*` options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA bundle (PEM); `None` = system trust store.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    pub key_file: Option<PathBuf>,
}

/// Broker reconnection timing, oslo's names.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectTiming {
    /// `kombu_reconnect_delay`: wait after losing an established connection.
    pub reconnect_delay: Duration,
    /// `rabbit_retry_interval`: first wait after a failed attempt.
    pub retry_interval: Duration,
    /// `rabbit_retry_backoff`: added per failed attempt.
    pub retry_backoff: Duration,
    /// `rabbit_interval_max`: cap.
    pub interval_max: Duration,
}

impl ReconnectTiming {
    /// The wait before connection attempt number `failures + 1` after
    /// `failures` consecutive failures: interval + backoff × (failures − 1),
    /// capped, as kombu's `ensure_connection` steps it.
    pub fn wait_after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return self.reconnect_delay;
        }
        let step = self.retry_backoff.saturating_mul(failures - 1);
        (self.retry_interval + step).min(self.interval_max)
    }
}

/// Retry of notifications whose handling failed for a transient reason.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// First wait.
    pub initial_delay: Duration,
    /// Cap.
    pub max_delay: Duration,
    /// Attempts before the message is requeued.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Wait after attempt `attempt` (1-based) failed: doubling, capped.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// Everything the listener needs to know, validated.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// The brokers.
    pub transport: TransportUrl,
    /// Shuffle the host order before the first attempt (oslo does when
    /// several hosts are given) and fail over round-robin.
    pub shuffle_hosts: bool,
    /// TLS, when enabled.
    pub tls: Option<TlsSettings>,
    /// SASL mechanism.
    pub mechanism: SASLMechanism,
    /// AMQP heartbeat, seconds.
    pub heartbeat: u16,
    /// `[DEFAULT] notifications_topic`.
    pub topic: String,
    /// `[DEFAULT] notification_format`.
    pub format: NotificationFormat,
    /// `[DEFAULT] control_exchange`.
    pub control_exchange: String,
    /// `[notify] publisher_exchanges`.
    pub publisher_exchanges: Vec<String>,
    /// Declaration flags.
    pub flags: QueueFlags,
    /// basic.qos prefetch count.
    pub prefetch: u16,
    /// Consume with `x-cancel-on-ha-failover`.
    pub cancel_on_failover: bool,
    /// Reconnect timing.
    pub reconnect: ReconnectTiming,
    /// Concurrency limit.
    pub max_concurrent: usize,
    /// Transient-failure retry.
    pub retry: RetryPolicy,
    /// Where permanently failing messages go.
    pub dead_letter_queue: Option<String>,
    /// Grace period on shutdown.
    pub shutdown_timeout: Duration,
}

impl ListenerSettings {
    /// The queue the listener consumes: `<topic>.info`, the same name
    /// oslo's notifier declares and publishes to.
    pub fn queue_name(&self) -> String {
        format!("{}.info", self.topic)
    }

    /// Reads and validates the settings.
    pub fn from_config(cfg: &ConfigFiles) -> Result<Self, ConfigError> {
        let mut src = cfg;
        let (url_spec, url_text) = match cfg.raw(&opt::NOTIFICATIONS_TRANSPORT_URL) {
            Some(_) => (
                &opt::NOTIFICATIONS_TRANSPORT_URL,
                cfg.string(&opt::NOTIFICATIONS_TRANSPORT_URL),
            ),
            None => (
                &crate::notify::options::TRANSPORT_URL,
                cfg.string(&crate::notify::options::TRANSPORT_URL),
            ),
        };
        let url_text =
            url_text
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| ConfigError::Missing {
                    group: "DEFAULT".into(),
                    option: "transport_url".into(),
                    why: "the notification listener needs the broker's address \
                  (or set [oslo_messaging_notifications] transport_url)"
                        .into(),
                })?;
        let transport = TransportUrl::parse(&url_text).map_err(|e| url_error(cfg, url_spec, e))?;
        let query = transport.query.clone();
        let mut ov = Overrides {
            cfg,
            query: &query,
            url_spec,
        };
        ov.check_keys()?;

        let flags = QueueFlags {
            durable_queues: ov.bool(&opt::AMQP_DURABLE_QUEUES)?,
            auto_delete: ov.bool(&opt::AMQP_AUTO_DELETE)?,
            quorum: ov.bool(&opt::RABBIT_QUORUM_QUEUE)?,
            quorum_delivery_limit: ov.int_or_default(&opt::RABBIT_QUORUM_DELIVERY_LIMIT)?,
            quorum_max_memory_length: ov.int_or_default(&opt::RABBIT_QUORUM_MAX_MEMORY_LENGTH)?,
            quorum_max_memory_bytes: ov.int_or_default(&opt::RABBIT_QUORUM_MAX_MEMORY_BYTES)?,
            ha_queues: ov.bool(&opt::RABBIT_HA_QUEUES)?,
        };
        if flags.quorum && flags.ha_queues {
            return Err(ov.bad(&opt::RABBIT_QUORUM_QUEUE,
                "rabbit_quorum_queue and rabbit_ha_queues cannot both be true (oslo.messaging refuses it too)"));
        }

        let ssl = transport.scheme_tls || ov.bool(&opt::SSL)?;
        let tls = if ssl {
            if !ov.bool(&opt::SSL_ENFORCE_HOSTNAME_VERIFICATION)? {
                // oslo.messaging ignores the option too (deprecated: it
                // always verifies), so a copied nova.conf value still loads.
                tracing::warn!("[oslo_messaging_rabbit] ssl_enforce_hostname_verification = false is \
                    ignored: the broker's certificate and host name are always verified, as \
                    oslo.messaging does; give the broker a certificate for the name in transport_url");
            }
            let mut path = |spec: &OptionSpec| -> Result<Option<PathBuf>, ConfigError> {
                Ok(ov
                    .string(spec)?
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from))
            };
            let t = TlsSettings {
                ca_file: path(&opt::SSL_CA_FILE)?,
                cert_file: path(&opt::SSL_CERT_FILE)?,
                key_file: path(&opt::SSL_KEY_FILE)?,
            };
            if t.cert_file.is_some() != t.key_file.is_some() {
                return Err(ov.bad(
                    &opt::SSL_CERT_FILE,
                    "ssl_cert_file and ssl_key_file must be set together",
                ));
            }
            Some(t)
        } else {
            None
        };
        let mechanism = match ov
            .string(&opt::RABBIT_LOGIN_METHOD)?
            .unwrap_or_default()
            .as_str()
        {
            "PLAIN" => SASLMechanism::Plain,
            "AMQPLAIN" => SASLMechanism::AMQPlain,
            "EXTERNAL" => SASLMechanism::External,
            "RABBIT-CR-DEMO" => SASLMechanism::RabbitCrDemo,
            other => {
                return Err(ov.bad(
                    &opt::RABBIT_LOGIN_METHOD,
                    &format!("{other:?} is not one of PLAIN, AMQPLAIN, EXTERNAL, RABBIT-CR-DEMO"),
                ))
            }
        };

        let mut secs = |spec: &OptionSpec| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs_f64(ov.float_or_default(spec)?))
        };
        let reconnect = ReconnectTiming {
            reconnect_delay: secs(&opt::KOMBU_RECONNECT_DELAY)?,
            retry_interval: secs(&opt::RABBIT_RETRY_INTERVAL)?,
            retry_backoff: secs(&opt::RABBIT_RETRY_BACKOFF)?,
            interval_max: secs(&opt::RABBIT_INTERVAL_MAX)?,
        };

        let max_concurrent = src.int_or_default(&opt::MAX_CONCURRENT_MESSAGES)? as usize;
        let prefetch = match ov.int_or_default(&opt::RABBIT_QOS_PREFETCH_COUNT)? {
            0 => max_concurrent as u16,
            n => n as u16,
        };
        let format = match cfg
            .choice(&crate::notify::options::NOTIFICATION_FORMAT)?
            .as_deref()
        {
            Some("versioned") => NotificationFormat::Versioned,
            _ => NotificationFormat::Unversioned,
        };
        let topic = cfg
            .string(&crate::notify::options::NOTIFICATIONS_TOPIC)
            .unwrap_or_default();
        if topic.trim().is_empty() {
            return Err(ConfigError::Missing {
                group: "DEFAULT".into(),
                option: "notifications_topic".into(),
                why: "it names the queue to consume (<topic>.info)".into(),
            });
        }
        let control_exchange = cfg
            .string(&opt::CONTROL_EXCHANGE)
            .unwrap_or_else(|| "openstack".into());
        let retry = RetryPolicy {
            initial_delay: Duration::from_secs_f64(
                src.float_or_default(&opt::RETRY_INITIAL_DELAY)?,
            ),
            max_delay: Duration::from_secs_f64(src.float_or_default(&opt::RETRY_MAX_DELAY)?),
            max_attempts: src.int_or_default(&opt::RETRY_MAX_ATTEMPTS)? as u32,
        };
        let dead_letter_queue = cfg
            .string(&opt::DEAD_LETTER_QUEUE)
            .map(|q| with_topic(&q, &topic))
            .filter(|s| !s.trim().is_empty());
        Ok(Self {
            shuffle_hosts: transport.hosts.len() > 1
                && ov.string(&opt::KOMBU_FAILOVER_STRATEGY)?.as_deref() == Some("shuffle"),
            heartbeat: ov.int_or_default(&opt::HEARTBEAT_TIMEOUT_THRESHOLD)? as u16,
            transport,
            tls,
            mechanism,
            topic,
            format,
            control_exchange,
            publisher_exchanges: cfg.list(&opt::PUBLISHER_EXCHANGES),
            flags,
            prefetch,
            cancel_on_failover: ov.bool(&opt::ENABLE_CANCEL_ON_FAILOVER)?,
            reconnect,
            max_concurrent,
            retry,
            dead_letter_queue,
            shutdown_timeout: Duration::from_secs_f64(
                src.float_or_default(&opt::SHUTDOWN_TIMEOUT)?,
            ),
        })
    }
}

/// `${notifications_topic}` and `$notifications_topic` in `value` replaced
/// by the topic, as oslo.config substitutes another option's value.
fn with_topic(value: &str, topic: &str) -> String {
    value
        .replace("${notifications_topic}", topic)
        .replace("$notifications_topic", topic)
}

fn url_error(cfg: &ConfigFiles, spec: &OptionSpec, e: TransportUrlError) -> ConfigError {
    match cfg.raw(spec) {
        Some(at) => ConfigError::BadValue {
            file: at.file.clone(),
            line: at.line,
            group: spec.group.into(),
            option: spec.name.into(),
            problem: e.to_string(),
        },
        None => ConfigError::Missing {
            group: spec.group.into(),
            option: spec.name.into(),
            why: e.to_string(),
        },
    }
}

/// `[oslo_messaging_rabbit]` values with the URL's query parameters on top.
struct Overrides<'a> {
    cfg: &'a ConfigFiles,
    query: &'a BTreeMap<String, String>,
    url_spec: &'a OptionSpec,
}

impl Overrides<'_> {
    fn check_keys(&self) -> Result<(), ConfigError> {
        match self
            .query
            .keys()
            .find(|k| !opt::RABBIT_OPTIONS.iter().any(|o| o.name == k.as_str()))
        {
            Some(key) => Err(self.bad(
                self.url_spec,
                &format!("query parameter '{key}' is not an [oslo_messaging_rabbit] option"),
            )),
            None => Ok(()),
        }
    }

    fn query_value(&self, spec: &OptionSpec) -> Option<&str> {
        self.query.get(spec.name).map(String::as_str)
    }

    fn bad(&self, spec: &OptionSpec, problem: &str) -> ConfigError {
        let at = if self.query_value(spec).is_some() {
            self.cfg.raw(self.url_spec)
        } else {
            self.cfg.raw(spec)
        };
        match at {
            Some(at) => ConfigError::BadValue {
                file: at.file.clone(),
                line: at.line,
                group: spec.group.into(),
                option: spec.name.into(),
                problem: problem.to_string(),
            },
            None => ConfigError::Missing {
                group: spec.group.into(),
                option: spec.name.into(),
                why: problem.to_string(),
            },
        }
    }
}

/// The URL's query parameters first, then join.conf.
impl OptionSource for Overrides<'_> {
    fn string(&mut self, spec: &OptionSpec) -> Result<Option<String>, ConfigError> {
        Ok(match self.query_value(spec) {
            Some(v) => Some(v.to_string()),
            None => self.cfg.string(spec),
        })
    }

    fn bool(&mut self, spec: &OptionSpec) -> Result<bool, ConfigError> {
        match self.query_value(spec) {
            Some(v) => parse_bool(v).ok_or_else(|| {
                self.bad(
                    spec,
                    &format!("transport_url ?{}={v:?} is not a boolean", spec.name),
                )
            }),
            None => self.cfg.bool(spec),
        }
    }

    fn int(&mut self, spec: &OptionSpec) -> Result<Option<i64>, ConfigError> {
        match self.query_value(spec) {
            Some(v) => {
                let (min, max) = match spec.kind {
                    OptionKind::Int { min, max } => (min, max),
                    _ => (i64::MIN, i64::MAX),
                };
                v.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .map(Some)
                    .ok_or_else(|| {
                        self.bad(
                            spec,
                            &format!(
                                "transport_url ?{}={v:?} is not a whole number between {min} and {max}",
                                spec.name
                            ),
                        )
                    })
            }
            None => self.cfg.int(spec),
        }
    }

    fn float(&mut self, spec: &OptionSpec) -> Result<Option<f64>, ConfigError> {
        match self.query_value(spec) {
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map(Some)
                .ok_or_else(|| {
                    self.bad(
                        spec,
                        &format!(
                            "transport_url ?{}={v:?} is not a non-negative number",
                            spec.name
                        ),
                    )
                }),
            None => self.cfg.float(spec),
        }
    }

    fn list(&mut self, spec: &OptionSpec) -> Result<Vec<String>, ConfigError> {
        Ok(match self.query_value(spec) {
            Some(v) => crate::config::files::split_list(v),
            None => self.cfg.list(spec),
        })
    }

    fn choice(&mut self, spec: &OptionSpec) -> Result<Option<String>, ConfigError> {
        match (spec.kind, self.query_value(spec)) {
            (OptionKind::Choice(words), Some(v)) if !words.contains(&v) => Err(self.bad(
                spec,
                &format!(
                    "transport_url ?{}={v:?} is not one of: {}",
                    spec.name,
                    words.join(", ")
                ),
            )),
            (_, Some(v)) => Ok(Some(v.to_string())),
            (_, None) => self.cfg.choice(spec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Result<ListenerSettings, ConfigError> {
        let mut c = ConfigFiles::default();
        c.add_text(Path::new("join.conf"), text).unwrap();
        ListenerSettings::from_config(&c)
    }

    #[test]
    fn defaults_match_oslo() {
        let s = load("[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n").unwrap();
        assert_eq!(s.queue_name(), "novajoin_notifications.info");
        assert_eq!(s.control_exchange, "openstack");
        assert_eq!(s.transport.vhost, "/");
        assert!(!s.flags.durable() && !s.flags.auto_delete && !s.flags.quorum);
        assert_eq!(s.format, NotificationFormat::Unversioned);
        assert_eq!(s.mechanism, SASLMechanism::AMQPlain);
        assert!(s.tls.is_none());
        assert_eq!(s.publisher_exchanges, vec!["nova", "neutron"]);
        assert_eq!(s.prefetch, 8);
        assert_eq!(
            s.dead_letter_queue.as_deref(),
            Some("novajoin_notifications.failed")
        );
    }

    #[test]
    fn the_dead_letter_queue_follows_the_topic_and_can_be_turned_off() {
        let url = "[DEFAULT]\ntransport_url = rabbit://h/\nnotifications_topic = nj\n";
        let s = load(url).unwrap();
        assert_eq!(s.dead_letter_queue.as_deref(), Some("nj.failed"));
        let s = load(&format!(
            "{url}[notify]\ndead_letter_queue = $notifications_topic-dlq\n"
        ))
        .unwrap();
        assert_eq!(s.dead_letter_queue.as_deref(), Some("nj-dlq"));
        let s = load(&format!("{url}[notify]\ndead_letter_queue =\n")).unwrap();
        assert_eq!(s.dead_letter_queue, None);
    }

    #[test]
    fn notifications_section_wins_and_query_overrides_options() {
        let s = load(
            "[DEFAULT]\ntransport_url = rabbit://a@h1/\n[oslo_messaging_notifications]\n\
             transport_url = rabbit://b:c@h2:5673/nova?rabbit_quorum_queue=true\n\
             [oslo_messaging_rabbit]\nrabbit_quorum_queue = false\namqp_durable_queues = false\n",
        )
        .unwrap();
        assert_eq!(s.transport.hosts[0].host, "h2");
        assert!(s.flags.quorum && s.flags.durable());
    }

    #[test]
    fn unknown_query_key_names_file_and_line() {
        let e = load("[DEFAULT]\n\ntransport_url = rabbit://h/?durable=yes\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("join.conf:3") && e.contains("durable"), "{e}");
        let e = load("[DEFAULT]\ntransport_url = rabbit://h/?amqp_durable_queues=maybe\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("join.conf:2") && e.contains("amqp_durable_queues"),
            "{e}"
        );
    }

    #[test]
    fn missing_url_and_tls_rules() {
        let e = load("[DEFAULT]\n").unwrap_err().to_string();
        assert!(e.contains("transport_url"), "{e}");
        let s = load("[DEFAULT]\ntransport_url = rabbit://h/?ssl=true\n[oslo_messaging_rabbit]\nssl_ca_file = /ca.pem\n").unwrap();
        assert_eq!(s.tls.unwrap().ca_file, Some(PathBuf::from("/ca.pem")));
        let e = load("[DEFAULT]\ntransport_url = rabbit://h/\n[oslo_messaging_rabbit]\nssl = true\nssl_cert_file = /c.pem\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ssl_key_file"), "{e}");
        let e = load("[DEFAULT]\ntransport_url = rabbit://h/\n[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\nrabbit_ha_queues = true\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rabbit_ha_queues"), "{e}");
    }

    #[test]
    fn backoffs_grow_and_cap() {
        let r = ReconnectTiming {
            reconnect_delay: Duration::from_secs(1),
            retry_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_secs(2),
            interval_max: Duration::from_secs(6),
        };
        let w: Vec<u64> = (0..5).map(|n| r.wait_after(n).as_secs()).collect();
        assert_eq!(w, vec![1, 1, 3, 5, 6]);
        let p = RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            max_attempts: 5,
        };
        let d: Vec<u128> = (1..6).map(|a| p.delay_after(a).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 500, 500]);
    }
}
