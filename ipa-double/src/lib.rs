//! Stateful FreeIPA JSON-RPC test double (in progress).
