//! Request keys remembered by the exact bytes of the body they came from.
//!
//! cloud-init reads the vendordata again and again, and nova sends the same
//! body for one instance each time. Parsing that JSON and hashing its
//! fields on every hit costs 8 % of the cache-hit path's requests/s
//! (bench/ab.sh, docs/PERFORMANCE.md), so the
//! body-derived part of the key ([`BodyKey`]) is kept here, looked up by
//! the body's bytes compared in full (never by a hash of them alone): the
//! result is exactly what parsing would give, whoever sent the body.
//!
//! Bounded: only bodies up to [`MAX_REMEMBERED_BODY`] bytes are kept (a
//! large `user-data` costs as much to hash as to skip while parsing), and
//! when the bodies held reach [`MEMO_BUDGET`] bytes the table starts
//! afresh.

use std::collections::HashMap;
use std::sync::RwLock;

use http::request::Parts;

use super::key::{is_json, BodyKey, RequestKey};

/// Largest body remembered, in bytes.
pub const MAX_REMEMBERED_BODY: usize = 8 * 1024;

/// Bytes the remembered bodies and their keys may take before the table
/// starts afresh (about 10,000 nova requests without user-data).
pub const MEMO_BUDGET: usize = 4 * 1024 * 1024;

/// Remembered body keys; see the module docs.
#[derive(Debug)]
pub struct KeyMemo {
    table: RwLock<Table>,
    budget: usize,
}

#[derive(Debug, Default)]
struct Table {
    keys: HashMap<Box<[u8]>, BodyKey>,
    bytes: usize,
}

impl Default for KeyMemo {
    fn default() -> Self {
        Self::with_budget(MEMO_BUDGET)
    }
}

impl KeyMemo {
    /// A memo holding at most `budget` bytes.
    pub fn with_budget(budget: usize) -> Self {
        Self {
            table: RwLock::new(Table::default()),
            budget,
        }
    }

    /// The request's key, as [`RequestKey::from_request`] would give it.
    pub fn key(&self, parts: &Parts, body: &[u8]) -> Option<RequestKey> {
        if !is_json(parts) {
            return None;
        }
        let remember = body.len() <= MAX_REMEMBERED_BODY;
        if remember {
            let table = self.table.read().unwrap_or_else(|p| p.into_inner());
            if let Some(known) = table.keys.get(body) {
                return Some(RequestKey::from_body_key(parts, known));
            }
        }
        let parsed = BodyKey::parse(body)?;
        let key = RequestKey::from_body_key(parts, &parsed);
        if remember {
            self.insert(body, parsed);
        }
        Some(key)
    }

    fn insert(&self, body: &[u8], parsed: BodyKey) {
        let size = body.len() + parsed.heap_size();
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        if table.bytes + size > self.budget {
            table.keys.clear();
            table.bytes = 0;
        }
        if table.keys.insert(body.into(), parsed).is_none() {
            table.bytes += size;
        }
    }

    /// How many bodies are remembered now.
    pub fn len(&self) -> usize {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str, ct: &str) -> Parts {
        http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", ct)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn body(instance: &str, hostname: &str) -> Vec<u8> {
        serde_json::json!({"instance-id": instance, "hostname": hostname,
            "metadata": {"ipa_enroll": "True"}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn gives_what_parsing_gives_and_remembers_each_body_once() {
        let memo = KeyMemo::default();
        let json = parts("/v1/", "application/json");
        for b in [body("i-1", "vm1"), body("i-1", "vm2"), body("i-2", "vm1")] {
            let first = memo.key(&json, &b);
            assert_eq!(first, RequestKey::from_request(&json, &b));
            assert_eq!(memo.key(&json, &b), first, "the remembered key");
        }
        assert_eq!(memo.len(), 3);
        // The route is not part of what is remembered: another path gives
        // another fingerprint from the same remembered body.
        let other = parts("/v1/x", "application/json");
        let b = body("i-1", "vm1");
        assert_eq!(memo.key(&other, &b), RequestKey::from_request(&other, &b));
        assert_ne!(memo.key(&other, &b), memo.key(&json, &b));
        assert_eq!(memo.len(), 3);
    }

    #[test]
    fn refuses_what_parsing_refuses_and_remembers_none_of_it() {
        let memo = KeyMemo::default();
        let b = body("i-1", "vm1");
        assert_eq!(memo.key(&parts("/v1/", "text/plain"), &b), None);
        let json = parts("/v1/", "application/json");
        for bad in [&b"not json"[..], b"{}", br#"{"instance-id": "a b"}"#] {
            assert_eq!(memo.key(&json, bad), None);
        }
        assert!(memo.is_empty());
    }

    #[test]
    fn large_bodies_are_parsed_every_time_and_the_budget_starts_afresh() {
        let json = parts("/v1/", "application/json");
        let memo = KeyMemo::default();
        let mut big = serde_json::json!({"instance-id": "i-1"});
        big["user-data"] = "A".repeat(MAX_REMEMBERED_BODY).into();
        let big = big.to_string().into_bytes();
        assert_eq!(memo.key(&json, &big), RequestKey::from_request(&json, &big));
        assert!(memo.is_empty());

        let one = body("i-1", "vm1");
        let small = KeyMemo::with_budget(2 * (one.len() + 100));
        for i in 0..3 {
            small.key(&json, &body(&format!("i-{i}"), "vm1"));
        }
        assert!(small.len() < 3, "over budget: started afresh");
        assert!(!small.is_empty());
    }
}
