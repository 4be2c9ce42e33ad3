//! `ipa-double`: the FreeIPA test double as a process, for demos and
//! benchmarks. Prints one line `ipa-double listening on URL` when ready.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ipa_double::{DoubleOptions, IpaDouble};

/// A stateful FreeIPA JSON-RPC test double (NOT an IPA server).
#[derive(Debug, Parser)]
#[command(name = "ipa-double", version, about)]
struct Args {
    /// Address to listen on (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// User for password login.
    #[arg(long, default_value = "admin")]
    user: String,
    /// Its password.
    #[arg(long, env = "IPA_DOUBLE_PASSWORD")]
    password: String,
    /// The IPA server FQDN the Referer must name.
    #[arg(long, default_value = "ipa.example.test")]
    fqdn: String,
    /// Kerberos realm.
    #[arg(long, default_value = "EXAMPLE.TEST")]
    realm: String,
    /// DNS domain (also created as a DNS zone).
    #[arg(long, default_value = "example.test")]
    domain: String,
    /// The server's API version.
    #[arg(long, default_value = "2.254")]
    api_version: String,
    /// Session lifetime in seconds.
    #[arg(long, default_value_t = 1200)]
    session_lifetime: u64,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Time every JSON-RPC call takes, in milliseconds (IPA's fixed cost).
    #[arg(long, default_value_t = 0)]
    call_cost_ms: u64,
    /// Time each command of a call takes, in milliseconds (a batch counts
    /// its items).
    #[arg(long, default_value_t = 0)]
    item_cost_ms: u64,
    /// Serve HTTPS and write the CA certificate to this file.
    #[arg(long, value_name = "PATH")]
    tls_ca_out: Option<std::path::PathBuf>,
    /// Trust this header as the principal authenticated by a fronting
    /// Apache with mod_auth_gssapi (enables Kerberos login; see the docs).
    #[arg(long, value_name = "HEADER")]
    trusted_user_header: Option<String>,
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let opts = DoubleOptions {
        listen: a.listen,
        fqdn: a.fqdn,
        realm: a.realm,
        dns_zones: vec![a.domain.clone()],
        domain: a.domain,
        users: vec![(a.user, a.password)],
        api_version: a.api_version,
        session_lifetime: Duration::from_secs(a.session_lifetime),
        tls: a.tls_ca_out.is_some(),
        trusted_user_header: a.trusted_user_header,
        ..DoubleOptions::default()
    };
    let double = match IpaDouble::start(opts).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ipa-double: cannot start: {e}");
            std::process::exit(1);
        }
    };
    if let (Some(path), Some(pem)) = (a.tls_ca_out, double.ca_pem()) {
        if let Err(e) = std::fs::write(&path, pem) {
            eprintln!("ipa-double: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    double.set_latency(Duration::from_millis(a.latency_ms));
    double.set_cost_model(
        Duration::from_millis(a.call_cost_ms),
        Duration::from_millis(a.item_cost_ms),
    );
    println!("ipa-double listening on {}", double.url());
    let _ = tokio::signal::ctrl_c().await;
}
