//! Decisions remembered per caller, for the rule set in force.
//!
//! Every request on the vendordata route asks the policy two questions
//! (keystonecontext's `context_is_admin`, then the route's action) with
//! credentials built from the caller's identity, and nearly every request
//! comes from the same few nova service tokens. Building the credential
//! dictionaries and evaluating the rules cost more than the rest of the
//! cache-hit path, so an answer that can only depend on the key (the
//! caller's identity) is taken once and reused:
//!
//! * only under the rule set it was taken with: a policy reload starts a
//!   fresh table;
//! * only when the caller says decisions under that rule set may be reused
//!   (the policy filter asks whether the rule reads per-request values such
//!   as `request_id`; see [`super::eval::may_read_any`]);
//! * only allow and deny: an evaluation error is recomputed (and logged)
//!   every time.
//!
//! Identities are keyed as [`SharedKey`]: the one shared value each
//! validated token carries, found by address rather than by hashing a dozen
//! strings (most of a memo lookup's cost).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use super::enforcer::{Decision, RuleSet};

/// How many callers one table remembers before it starts afresh. nova
/// calls with a handful of service tokens; the bound only stops a flood of
/// distinct tokens from growing memory.
pub const MEMO_CAPACITY: usize = 10_000;

/// Whether decisions under a rule set may be reused.
type ReusePredicate = Box<dyn Fn(&RuleSet) -> bool + Send + Sync>;

/// A memo key that is one particular shared value (an identity as a
/// validated token carries it), hashed and compared by address.
///
/// Sound because the key holds the `Arc`: while an entry lives, its value
/// cannot be freed, so no other value can take its address. Two equal
/// values behind different `Arc`s (a re-issued token) are two entries with
/// the same decision, computed once each.
#[derive(Debug)]
pub struct SharedKey<T>(pub Arc<T>);

impl<T> Hash for SharedKey<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

impl<T> PartialEq for SharedKey<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for SharedKey<T> {}

/// Remembered decisions for one question, keyed by `K`.
pub struct DecisionMemo<K> {
    table: RwLock<Table<K>>,
    reusable_under: ReusePredicate,
    capacity: usize,
}

struct Table<K> {
    /// The rule set the decisions were taken under (held, so its address
    /// cannot be reused by a later rule set while the table names it).
    rules: Option<Arc<RuleSet>>,
    reusable: bool,
    decisions: HashMap<K, bool>,
}

impl<K> std::fmt::Debug for DecisionMemo<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionMemo")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq> DecisionMemo<K> {
    /// A memo whose decisions are always reusable: for questions whose
    /// inputs are all in the key.
    pub fn new() -> Self {
        Self::reusable_when(|_| true)
    }

    /// A memo that reuses decisions only under rule sets for which
    /// `reusable_under` says yes (asked once per rule set).
    pub fn reusable_when(
        reusable_under: impl Fn(&RuleSet) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self::with_capacity(Box::new(reusable_under), MEMO_CAPACITY)
    }

    fn with_capacity(reusable_under: ReusePredicate, capacity: usize) -> Self {
        Self {
            table: RwLock::new(Table {
                rules: None,
                reusable: false,
                decisions: HashMap::default(),
            }),
            reusable_under,
            capacity,
        }
    }

    /// The decision for `key` under `rules`: the remembered one, or
    /// `compute()`'s (remembered unless it is an error or the rule set's
    /// decisions are not reusable).
    pub fn decide(
        &self,
        rules: &Arc<RuleSet>,
        key: K,
        compute: impl FnOnce() -> Decision,
    ) -> Decision {
        {
            let table = self.table.read().unwrap_or_else(|p| p.into_inner());
            if table.rules.as_ref().is_some_and(|r| Arc::ptr_eq(r, rules)) {
                if !table.reusable {
                    drop(table);
                    return compute();
                }
                if let Some(&allowed) = table.decisions.get(&key) {
                    return if allowed {
                        Decision::Allow
                    } else {
                        Decision::Deny
                    };
                }
            }
        }
        let decision = compute();
        let allowed = match &decision {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Error(_) => return decision,
        };
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        if !table.rules.as_ref().is_some_and(|r| Arc::ptr_eq(r, rules)) {
            table.reusable = (self.reusable_under)(rules);
            table.rules = Some(rules.clone());
            table.decisions.clear();
        }
        if table.reusable {
            if table.decisions.len() >= self.capacity {
                table.decisions.clear();
            }
            table.decisions.insert(key, allowed);
        }
        decision
    }

    /// How many decisions are remembered now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .decisions
            .len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq> Default for DecisionMemo<K> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Enforcer, PolicyOptions, NOVAJOIN_DEFAULTS};
    use std::cell::Cell;

    fn enforcer(dir: &std::path::Path, text: &str) -> Enforcer {
        let path = dir.join("policy.yaml");
        std::fs::write(&path, text).unwrap();
        Enforcer::new(NOVAJOIN_DEFAULTS, PolicyOptions::file_only(&path)).unwrap()
    }

    #[test]
    fn a_decision_is_computed_once_per_key_and_rule_set() {
        let dir = tempfile::tempdir().unwrap();
        let e = enforcer(dir.path(), "\"a\": \"@\"\n");
        let memo = DecisionMemo::<&str>::new();
        let calls = Cell::new(0);
        let ask = |key, rules: &Arc<RuleSet>| {
            memo.decide(rules, key, || {
                calls.set(calls.get() + 1);
                Decision::Allow
            })
        };
        let rules = e.rules();
        assert!(ask("nova", &rules).allowed());
        assert!(ask("nova", &rules).allowed());
        assert_eq!(calls.get(), 1);
        ask("glance", &rules);
        assert_eq!(calls.get(), 2);
        // Another rule set (a reload): nothing carries over.
        let reloaded = Arc::new((*rules).clone());
        ask("nova", &reloaded);
        assert_eq!(calls.get(), 3);
        assert_eq!(memo.len(), 1);
    }

    #[test]
    fn shared_keys_are_one_value_not_equal_content() {
        let dir = tempfile::tempdir().unwrap();
        let rules = enforcer(dir.path(), "\"a\": \"@\"\n").rules();
        let memo = DecisionMemo::<(SharedKey<String>, bool)>::new();
        let calls = Cell::new(0);
        let ask = |who: &Arc<String>| {
            memo.decide(&rules, (SharedKey(who.clone()), false), || {
                calls.set(calls.get() + 1);
                Decision::Allow
            })
        };
        let nova = Arc::new("nova".to_string());
        ask(&nova);
        ask(&nova.clone());
        assert_eq!(calls.get(), 1, "the same shared value is found again");
        // Equal content behind another Arc: its own entry (decided once).
        let again = Arc::new("nova".to_string());
        ask(&again);
        ask(&again);
        assert_eq!(calls.get(), 2);
        assert_eq!(memo.len(), 2);
    }

    #[test]
    fn errors_and_unreusable_rule_sets_are_recomputed() {
        let dir = tempfile::tempdir().unwrap();
        let rules = enforcer(dir.path(), "\"a\": \"@\"\n").rules();
        let calls = Cell::new(0);
        let error = || {
            calls.set(calls.get() + 1);
            Decision::Error(crate::policy::EvalError::new(
                crate::policy::error::EvalErrorKind::KeyError,
                "x",
            ))
        };
        let memo = DecisionMemo::<u8>::new();
        memo.decide(&rules, 1, error);
        memo.decide(&rules, 1, error);
        assert_eq!(calls.get(), 2);

        let never = DecisionMemo::<u8>::reusable_when(|_| false);
        let deny = || {
            calls.set(calls.get() + 1);
            Decision::Deny
        };
        never.decide(&rules, 1, deny);
        never.decide(&rules, 1, deny);
        assert_eq!(calls.get(), 4);
        assert!(never.is_empty());
    }

    #[test]
    fn a_full_table_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let rules = enforcer(dir.path(), "\"a\": \"@\"\n").rules();
        let memo = DecisionMemo::<u32>::with_capacity(Box::new(|_| true), 3);
        for k in 0..3 {
            memo.decide(&rules, k, || Decision::Deny);
        }
        assert_eq!(memo.len(), 3);
        memo.decide(&rules, 99, || Decision::Deny);
        assert_eq!(memo.len(), 1);
    }
}
