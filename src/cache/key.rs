//! What a request is cached under: the instance id, plus a fingerprint of
//! the fields that decide the answer.
//!
//! The id alone is the key, so an instance has one entry. The fingerprint
//! is stored with the entry: a request for the same instance whose relevant
//! fields differ (a renamed host, changed enrollment metadata) must not get
//! the old answer, so it is a miss that replaces the entry.

use http::request::Parts;
use sha2::{Digest, Sha256};

/// Longest instance id accepted as a key (nova sends 36-character UUIDs).
pub const MAX_INSTANCE_ID_LEN: usize = 255;

/// Metadata key prefixes that change what the join handler does.
const RELEVANT_METADATA_PREFIXES: &[&str] = &["ipa_", "managed_service_", "compact_service"];

/// The fields that decide the answer, in the order of [`Fingerprint`]'s parts.
pub const FINGERPRINT_FIELDS: [&str; 5] = [
    "method and path",
    "hostname",
    "image-id",
    "project-id",
    "metadata",
];

/// Short hashes of each relevant field: equal fingerprints mean the handler
/// would answer the same way; unequal ones say which field changed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [[u8; 8]; 5]);

impl Fingerprint {
    /// The names of the fields that differ between two fingerprints.
    pub fn differing_fields(&self, other: &Fingerprint) -> Vec<&'static str> {
        self.0
            .iter()
            .zip(other.0.iter())
            .zip(FINGERPRINT_FIELDS)
            .filter(|((a, b), _)| a != b)
            .map(|(_, name)| name)
            .collect()
    }

    /// Hex form (for the sealed Redis entry).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(hex::encode).collect::<Vec<_>>().join(":")
    }

    /// Parses [`Fingerprint::to_hex`].
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [[0u8; 8]; 5];
        let mut parts = s.split(':');
        for slot in out.iter_mut() {
            let bytes = hex::decode(parts.next()?).ok()?;
            *slot = bytes.try_into().ok()?;
        }
        parts.next().is_none().then_some(Self(out))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// A cacheable request: which instance, and the fingerprint of its fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// `instance-id` from the body.
    pub instance_id: String,
    /// The relevant fields, hashed.
    pub fingerprint: Fingerprint,
}

fn short_hash(parts: &[&[u8]]) -> [u8; 8] {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed so that field boundaries cannot shift.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let full = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

/// How many routes each thread remembers the hash of: a server has a route
/// or two; odd paths beyond these are hashed each time.
const REMEMBERED_ROUTES: usize = 16;

/// A method, a path and their [`short_hash`].
type RouteHash = (http::Method, Box<str>, [u8; 8]);

thread_local! {
    /// Method, path and their [`short_hash`]: every cache hit needs its
    /// route's, and a SHA-256 per request costs a twentieth of the hit path.
    static ROUTE_HASHES: std::cell::RefCell<Vec<RouteHash>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The fingerprint part of a method and (normalized) path.
fn route_hash(method: &http::Method, path: &str) -> [u8; 8] {
    ROUTE_HASHES.with_borrow_mut(|known| {
        if let Some((_, _, h)) = known.iter().find(|(m, p, _)| m == method && **p == *path) {
            return *h;
        }
        let h = short_hash(&[method.as_str().as_bytes(), path.as_bytes()]);
        if known.len() < REMEMBERED_ROUTES {
            known.push((method.clone(), path.into(), h));
        }
        h
    })
}

fn value_hash(v: Option<&serde_json::Value>) -> [u8; 8] {
    match v {
        None => short_hash(&[b"absent"]),
        Some(v) => short_hash(&[b"value", v.to_string().as_bytes()]),
    }
}

/// Whether the media type is `application/json` (parameters allowed): the
/// only body the join handler reads, so the only one worth keying on.
pub fn is_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

/// The body's top-level fields the key reads, parsed as `serde_json::Value`
/// would parse them (the last of duplicate keys wins), while every other
/// field (`user-data` can be 64 KiB of base64) is checked and skipped
/// without being copied.
struct KeyFields {
    fields: [Option<serde_json::Value>; KEY_FIELDS.len()],
}

/// The top-level fields [`RequestKey::from_request`] reads.
const KEY_FIELDS: [&str; 5] = [
    "instance-id",
    "hostname",
    "image-id",
    "project-id",
    "metadata",
];

impl KeyFields {
    fn get(&self, name: &str) -> Option<&serde_json::Value> {
        let i = KEY_FIELDS.iter().position(|f| *f == name)?;
        self.fields[i].as_ref()
    }
}

impl<'de> serde::Deserialize<'de> for KeyFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = KeyFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyFields, A::Error> {
                let mut out = KeyFields {
                    fields: Default::default(),
                };
                while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match KEY_FIELDS.iter().position(|f| *f == name) {
                        Some(i) => out.fields[i] = Some(map.next_value()?),
                        None => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// What the body alone decides of a [`RequestKey`]: the instance id and
/// the hashes of the body's relevant fields. [`super::key_memo::KeyMemo`]
/// remembers it by the exact body bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyKey {
    instance_id: String,
    /// hostname, image-id, project-id, metadata (the fingerprint's last
    /// four parts).
    fields: [[u8; 8]; 4],
}

impl BodyKey {
    /// Parses a JSON body; `None` when it is not an object with a usable
    /// `instance-id`.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let obj: KeyFields = serde_json::from_slice(body).ok()?;
        let instance_id = obj.get("instance-id")?.as_str()?;
        if instance_id.is_empty()
            || instance_id.len() > MAX_INSTANCE_ID_LEN
            || instance_id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return None;
        }
        let metadata = match obj.get("metadata") {
            Some(serde_json::Value::Object(m)) => {
                let mut relevant: Vec<(&String, &serde_json::Value)> = m
                    .iter()
                    .filter(|(k, _)| RELEVANT_METADATA_PREFIXES.iter().any(|p| k.starts_with(p)))
                    .collect();
                relevant.sort_by(|a, b| a.0.cmp(b.0));
                let text: Vec<Vec<u8>> = relevant
                    .iter()
                    .flat_map(|(k, v)| [k.as_bytes().to_vec(), v.to_string().into_bytes()])
                    .collect();
                let refs: Vec<&[u8]> = std::iter::once(&b"object"[..])
                    .chain(text.iter().map(|t| t.as_slice()))
                    .collect();
                short_hash(&refs)
            }
            other => value_hash(other),
        };
        Some(Self {
            instance_id: instance_id.to_string(),
            fields: [
                value_hash(obj.get("hostname")),
                value_hash(obj.get("image-id")),
                value_hash(obj.get("project-id")),
                metadata,
            ],
        })
    }

    /// The body's size in memory beyond its own bytes (for memo budgets).
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.instance_id.len()
    }
}

impl RequestKey {
    /// The key of a request, or `None` when it is not cacheable: not a JSON
    /// body, not an object, no usable `instance-id`.
    pub fn from_request(parts: &Parts, body: &[u8]) -> Option<Self> {
        if !is_json(parts) {
            return None;
        }
        Some(Self::from_body_key(parts, &BodyKey::parse(body)?))
    }

    /// The key of a request whose body gave `body` (the caller checked
    /// [`is_json`]).
    pub fn from_body_key(parts: &Parts, body: &BodyKey) -> Self {
        let path = parts.uri.path();
        let path = path.strip_suffix('/').unwrap_or(path);
        let route = route_hash(&parts.method, path);
        let [hostname, image, project, metadata] = body.fields;
        Self {
            instance_id: body.instance_id.clone(),
            fingerprint: Fingerprint([route, hostname, image, project, metadata]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, path: &str, ct: Option<&str>) -> Parts {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn remembered_route_hashes_equal_fresh_ones_beyond_the_memo_too() {
        for round in 0..2 {
            for i in 0..REMEMBERED_ROUTES + 4 {
                for method in [http::Method::POST, http::Method::GET] {
                    let path = format!("/v{i}");
                    let fresh = short_hash(&[method.as_str().as_bytes(), path.as_bytes()]);
                    assert_eq!(
                        route_hash(&method, &path),
                        fresh,
                        "round {round}, {method} {path}"
                    );
                }
            }
        }
        assert_ne!(
            route_hash(&http::Method::POST, "/v1"),
            route_hash(&http::Method::GET, "/v1")
        );
    }

    fn key(body: serde_json::Value) -> RequestKey {
        RequestKey::from_request(
            &parts("POST", "/v1/", Some("application/json")),
            body.to_string().as_bytes(),
        )
        .unwrap()
    }

    fn nova_body() -> serde_json::Value {
        serde_json::json!({"project-id": "8c3d", "instance-id": "5b2d9c1e-7a4f-4e8b-9c3d-2f1a0b9e8d7c",
            "image-id": "155d", "user-data": null, "hostname": "vm1",
            "metadata": {"ipa_enroll": "True", "ipa_hostclass": "web", "color": "blue"}, "boot-roles": "member"})
    }

    #[test]
    fn keys_on_instance_id_and_ignores_irrelevant_fields() {
        let a = key(nova_body());
        assert_eq!(a.instance_id, "5b2d9c1e-7a4f-4e8b-9c3d-2f1a0b9e8d7c");
        let mut b = nova_body();
        b["user-data"] = "aGVsbG8=".into();
        b["boot-roles"] = "admin".into();
        b["metadata"]["color"] = "red".into();
        assert_eq!(a, key(b));
        let with_slashless = RequestKey::from_request(
            &parts("POST", "/v1", Some("application/json; charset=UTF-8")),
            nova_body().to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(a, with_slashless);
    }

    #[test]
    fn relevant_changes_change_the_fingerprint_and_are_named() {
        let a = key(nova_body());
        for (field, change) in [
            ("hostname", serde_json::json!({"hostname": "vm2"})),
            ("image-id", serde_json::json!({"image-id": ""})),
            ("project-id", serde_json::json!({"project-id": "other"})),
            (
                "metadata",
                serde_json::json!({"metadata": {"ipa_enroll": "false", "ipa_hostclass": "web"}}),
            ),
            (
                "metadata",
                serde_json::json!({"metadata": {"ipa_enroll": "True", "ipa_hostclass": "web", "managed_service_a": "HTTP/x"}}),
            ),
        ] {
            let mut b = nova_body();
            for (k, v) in change.as_object().unwrap() {
                b[k] = v.clone();
            }
            let k = key(b);
            assert_eq!(k.instance_id, a.instance_id);
            assert_eq!(a.fingerprint.differing_fields(&k.fingerprint), vec![field]);
        }
        let other_path = RequestKey::from_request(
            &parts("POST", "/v1/x", Some("application/json")),
            nova_body().to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(
            a.fingerprint.differing_fields(&other_path.fingerprint),
            vec!["method and path"]
        );
    }

    #[test]
    fn not_cacheable_without_json_or_instance_id() {
        let body = nova_body().to_string();
        assert!(RequestKey::from_request(&parts("POST", "/v1/", None), body.as_bytes()).is_none());
        assert!(RequestKey::from_request(
            &parts("POST", "/v1/", Some("text/plain")),
            body.as_bytes()
        )
        .is_none());
        let json = Some("application/json");
        for bad in [
            &b"not json"[..],
            b"[1]",
            b"{}",
            br#"{"instance-id": 5}"#,
            br#"{"instance-id": ""}"#,
            br#"{"instance-id": "a b"}"#,
            br#"{"instance-id": "a\nb"}"#,
        ] {
            assert!(
                RequestKey::from_request(&parts("POST", "/v1/", json), bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long =
            serde_json::json!({"instance-id": "x".repeat(MAX_INSTANCE_ID_LEN + 1)}).to_string();
        assert!(RequestKey::from_request(&parts("POST", "/v1/", json), long.as_bytes()).is_none());
    }

    #[test]
    fn fingerprint_hex_round_trips() {
        let fp = key(nova_body()).fingerprint;
        assert_eq!(Fingerprint::from_hex(&fp.to_hex()), Some(fp));
        assert_eq!(Fingerprint::from_hex("00"), None);
    }

    #[test]
    fn reads_fields_as_a_json_value_would() {
        let ct = parts("POST", "/v1/", Some("application/json"));
        let with_dup =
            br#"{"instance-id": "old", "hostname": "a", "instance-id": "i-1", "hostname": "vm1"}"#;
        let plain = br#"{"instance-id": "i-1", "hostname": "vm1"}"#;
        let a = RequestKey::from_request(&ct, with_dup).unwrap();
        assert_eq!(
            a,
            RequestKey::from_request(&ct, plain).unwrap(),
            "the last duplicate wins"
        );
        let skipped = br#"{"user-data": {"deep": [1, 2, {"x": null}]}, "instance-id": "i-1", "hostname": "vm1"}"#;
        assert_eq!(a, RequestKey::from_request(&ct, skipped).unwrap());
        for broken in [
            &br#"{"instance-id": "i-1", "user-data": [1,}"#[..],
            br#"{"instance-id": "i-1"} x"#,
            b"[1]",
        ] {
            assert!(
                RequestKey::from_request(&ct, broken).is_none(),
                "{}",
                String::from_utf8_lossy(broken)
            );
        }
    }
}
