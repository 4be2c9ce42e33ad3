//! `novajoin ipa-setup`: prepares IPA for novajoin, run once by an IPA
//! administrator on the host that will run novajoin (what
//! `novajoin-ipa-setup` did).
//!
//! # What it creates
//!
//! In this order, each only when it is missing:
//!
//! 1. with `--precreate` only: the host `<hostname>` (`host_add`,
//!    description "Undercloud host", a fresh one-time password, `force`),
//!    and the OTP is printed (or written to `--otp-file`, mode 0600);
//! 2. the service `nova/<hostname>` (`service_add`, `force`);
//! 3. four permissions (`permission_add`, right `write`):
//!    * `Modify host password`: type `host`, attribute `userpassword`;
//!    * `Write host certificate`: type `host`, attribute `usercertificate`;
//!    * `Modify host userclass`: type `host`, attribute `userclass`;
//!    * `Modify service managedBy attribute`: type `service`, attribute `managedby`;
//! 4. the privilege `Nova Host Management` (`privilege_add`, same
//!    description), and its permissions (`privilege_add_permission`): the
//!    list in [`PRIVILEGE_PERMISSIONS`] (the original's list plus the names
//!    current IPA uses for two of its entries). Names this IPA does not have
//!    are reported and skipped;
//! 5. the role `Nova Host Manager` (`role_add`, same description), its
//!    privilege (`role_add_privilege`) and its member, the service
//!    `nova/<hostname>` (`role_add_member`);
//! 6. without `--precreate` or `--no-keytab`: the keytab of
//!    `nova/<hostname>` at `--keytab` (default `/etc/novajoin/krb5.keytab`),
//!    fetched with `ipa-getkeytab -s <server> -p nova/<hostname> -k <keytab>`
//!    (there is no JSON-RPC call that returns keys), then owned by
//!    `--keytab-owner` (default `novajoin`, the user the packaged units run as) with mode 0600. A keytab that
//!    already works (a ticket can be obtained with it) is kept: fetching
//!    again would rotate the keys and break every other copy.
//!
//! With `--precreate` the host is not enrolled yet, so no keytab is fetched:
//! enroll it (`ipa-client-install` with the OTP), then run `ipa-setup`
//! again without `--precreate` to fetch the keytab.
//!
//! A second run finds everything in place, changes nothing and says so.
//! `--dry-run` prints the calls without contacting IPA.
//!
//! # Logging in
//!
//! As `--principal` (default `admin`) with the password from
//! `--password-file` or the `IPA_ADMIN_PASSWORD` environment variable
//! (password login, and a private ticket for `ipa-getkeytab`); without a
//! password, with the Kerberos tickets of the caller (`kinit admin` first).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{json, Map, Value};
use url::Url;

use crate::ipa::kerberos::{kinit_with_password, local_hostname};
use crate::ipa::{
    IpaAuth, IpaClient, IpaClientConfig, IpaCommand, IpaDefaultConf, IpaError, KerberosAuth, Secret,
};
use crate::progress::{Progress, Summary};

/// The privilege novajoin's role holds.
pub const PRIVILEGE: &str = "Nova Host Management";
/// The role novajoin's service principal is a member of.
pub const ROLE: &str = "Nova Host Manager";
/// Description of a pre-created host.
pub const PRECREATED_HOST_DESCRIPTION: &str = "Undercloud host";

/// The permissions ipa-setup creates: name, type, attribute (right `write`).
pub const PERMISSIONS: &[(&str, &str, &str)] = &[
    ("Modify host password", "host", "userpassword"),
    ("Write host certificate", "host", "usercertificate"),
    ("Modify host userclass", "host", "userclass"),
    ("Modify service managedBy attribute", "service", "managedby"),
];

/// The permissions given to the privilege (case-insensitive in IPA). The
/// original's list, which has four names current IPA no longer uses
/// (`modify hosts`, `System: revoke certificate`, `System: write host
/// certificate`, `System: retrieve certificates from the ca`), plus the
/// current names `System: Modify Hosts` and `System: Manage Host
/// Certificates` and the `Write host certificate` permission created above.
/// Whichever names a given IPA lacks are reported and skipped.
pub const PRIVILEGE_PERMISSIONS: &[&str] = &[
    "System: add hosts",
    "System: remove hosts",
    "modify host password",
    "modify host userclass",
    "modify hosts",
    "modify service managedBy attribute",
    "System: Add krbPrincipalName to a Host",
    "System: Add Services",
    "System: Remove Services",
    "System: revoke certificate",
    "System: manage host keytab",
    "System: write host certificate",
    "System: retrieve certificates from the ca",
    "System: modify services",
    "System: manage service keytab",
    "System: read dns entries",
    "System: remove dns entries",
    "System: add dns entries",
    "System: update dns entries",
    "Retrieve Certificates from the CA",
    "Revoke Certificate",
    "System: Modify Hosts",
    "System: Manage Host Certificates",
    "Write host certificate",
];

/// Options of `novajoin ipa-setup`.
#[derive(Debug, Clone, Args)]
pub struct IpaSetupArgs {
    /// The IPA server's FQDN [default: from --default-conf].
    #[arg(long)]
    pub server: Option<String>,
    /// IPA's JSON-RPC URL [default: https://<server>/ipa/json].
    #[arg(long)]
    pub url: Option<String>,
    /// The Kerberos realm [default: from --default-conf].
    #[arg(long)]
    pub realm: Option<String>,
    /// FQDN of the host that runs novajoin: the service is nova/<hostname>
    /// [default: `host` in --default-conf, else this machine's name].
    #[arg(long)]
    pub hostname: Option<String>,
    /// The IPA client configuration to read defaults from.
    #[arg(long, value_name = "PATH", default_value = "/etc/ipa/default.conf")]
    pub default_conf: PathBuf,
    /// CA bundle that signs IPA's certificate (https only).
    #[arg(long, value_name = "PATH", default_value = "/etc/ipa/ca.crt")]
    pub ca_file: PathBuf,
    /// The IPA administrator to log in as.
    #[arg(long, default_value = "admin")]
    pub principal: String,
    /// File whose first line is the administrator's password (else the
    /// IPA_ADMIN_PASSWORD environment variable; with neither, the caller's
    /// Kerberos tickets are used).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// Where to write the keytab of nova/<hostname>.
    #[arg(long, value_name = "PATH", default_value = "/etc/novajoin/krb5.keytab")]
    pub keytab: PathBuf,
    /// The user that must own the keytab (novajoin's user).
    #[arg(long, value_name = "USER", default_value = "novajoin")]
    pub keytab_owner: String,
    /// Do not fetch a keytab.
    #[arg(long)]
    pub no_keytab: bool,
    /// The ipa-getkeytab program (from the IPA client packages).
    #[arg(long, value_name = "PATH", default_value = "ipa-getkeytab")]
    pub getkeytab: PathBuf,
    /// Pre-create the host <hostname> with a one-time password and print it
    /// (the host is not enrolled yet: no keytab is fetched).
    #[arg(long)]
    pub precreate: bool,
    /// With --precreate: write the OTP to this file (mode 0600) instead of
    /// printing it.
    #[arg(long, value_name = "PATH", requires = "precreate")]
    pub otp_file: Option<PathBuf>,
    /// Print the IPA calls (and the ipa-getkeytab command) without running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Why ipa-setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A value is missing or wrong on the command line.
    #[error("{0}")]
    Usage(String),
    /// An IPA call failed.
    #[error("{what}: {source}")]
    Ipa {
        /// The step.
        what: String,
        /// The error.
        source: Box<IpaError>,
    },
    /// Fetching or installing the keytab failed.
    #[error("keytab: {0}")]
    Keytab(String),
}

/// What to do to create one object or membership.
#[derive(Clone, Debug)]
enum Step {
    /// An `*_add` command: `DuplicateEntry` means it exists.
    Create { what: String, cmd: IpaCommand },
    /// The pre-created host (its OTP is printed when it is created).
    Host { fqdn: String, otp: Secret },
    /// A member-add command: "already a member" means it is in place.
    Members {
        what: String,
        cmd: IpaCommand,
        kind: &'static str,
    },
    /// The keytab of the service principal.
    Keytab { principal: String, path: PathBuf },
}

impl Step {
    /// What the step is about, for the progress display.
    fn describe(&self) -> String {
        match self {
            Step::Create { what, .. } | Step::Members { what, .. } => what.clone(),
            Step::Host { fqdn, .. } => format!("host {fqdn}"),
            Step::Keytab { principal, .. } => format!("keytab of {principal}"),
        }
    }
}

/// Everything resolved from the arguments and default.conf.
struct Target {
    server: String,
    url: Url,
    realm: Option<String>,
    hostname: String,
}

fn resolve(args: &IpaSetupArgs) -> Result<Target, SetupError> {
    let dc = match IpaDefaultConf::load(&args.default_conf) {
        Ok(dc) => Some(dc),
        Err(crate::ipa::default_conf::DefaultConfError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) => return Err(SetupError::Usage(e.to_string())),
    };
    let server = args
        .server
        .clone()
        .or_else(|| dc.as_ref().and_then(IpaDefaultConf::server_fqdn))
        .ok_or_else(|| {
            SetupError::Usage(format!(
                "the IPA server is unknown: pass --server (no {})",
                args.default_conf.display()
            ))
        })?;
    let url_text = args
        .url
        .clone()
        .unwrap_or_else(|| format!("https://{server}/ipa/json"));
    let url = Url::parse(&url_text)
        .map_err(|e| SetupError::Usage(format!("--url {url_text:?} is not a URL: {e}")))?;
    let realm = args
        .realm
        .clone()
        .or_else(|| dc.as_ref().and_then(|d| d.realm.clone()));
    let hostname = args
        .hostname
        .clone()
        .or_else(|| dc.as_ref().and_then(|d| d.host.clone()))
        .or_else(local_hostname)
        .ok_or_else(|| SetupError::Usage("pass --hostname".into()))?
        .trim_end_matches('.')
        .to_lowercase();
    if !hostname.contains('.') {
        return Err(SetupError::Usage(format!(
            "{hostname:?} is not a fully qualified host name: pass --hostname"
        )));
    }
    Ok(Target {
        server,
        url,
        realm,
        hostname,
    })
}

fn opts(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The steps, in order.
fn plan(args: &IpaSetupArgs, t: &Target) -> Vec<Step> {
    let service = format!("nova/{}", t.hostname);
    let mut steps = Vec::new();
    if args.precreate {
        steps.push(Step::Host {
            fqdn: t.hostname.clone(),
            otp: Secret::new(crate::join::new_otp()),
        });
    }
    steps.push(Step::Create {
        what: format!("service {service}"),
        cmd: IpaCommand::new(
            "service_add",
            vec![json!(service)],
            opts(&[("force", json!(true))]),
        ),
    });
    for (name, kind, attr) in PERMISSIONS {
        steps.push(Step::Create {
            what: format!("permission {name:?}"),
            cmd: IpaCommand::new(
                "permission_add",
                vec![json!(name)],
                opts(&[
                    ("ipapermright", json!(["write"])),
                    ("type", json!(kind)),
                    ("attrs", json!([attr])),
                ]),
            ),
        });
    }
    steps.push(Step::Create {
        what: format!("privilege {PRIVILEGE:?}"),
        cmd: IpaCommand::new(
            "privilege_add",
            vec![json!(PRIVILEGE)],
            opts(&[("description", json!(PRIVILEGE))]),
        ),
    });
    steps.push(Step::Members {
        what: format!("permissions of privilege {PRIVILEGE:?}"),
        cmd: IpaCommand::new(
            "privilege_add_permission",
            vec![json!(PRIVILEGE)],
            opts(&[("permission", json!(PRIVILEGE_PERMISSIONS))]),
        ),
        kind: "permission",
    });
    steps.push(Step::Create {
        what: format!("role {ROLE:?}"),
        cmd: IpaCommand::new(
            "role_add",
            vec![json!(ROLE)],
            opts(&[("description", json!(ROLE))]),
        ),
    });
    steps.push(Step::Members {
        what: format!("privilege of role {ROLE:?}"),
        cmd: IpaCommand::new(
            "role_add_privilege",
            vec![json!(ROLE)],
            opts(&[("privilege", json!([PRIVILEGE]))]),
        ),
        kind: "privilege",
    });
    steps.push(Step::Members {
        what: format!("member {service} of role {ROLE:?}"),
        cmd: IpaCommand::new(
            "role_add_member",
            vec![json!(ROLE)],
            opts(&[("service", json!([service]))]),
        ),
        kind: "service",
    });
    if !args.precreate && !args.no_keytab {
        let principal = match &t.realm {
            Some(r) => format!("{service}@{r}"),
            None => service.clone(),
        };
        steps.push(Step::Keytab {
            principal,
            path: args.keytab.clone(),
        });
    }
    steps
}

/// `ipa <method> <args> <options>` with secrets masked.
fn show_call(cmd: &IpaCommand) -> String {
    let mut o = cmd.options().clone();
    if o.contains_key("userpassword") {
        o.insert(
            "userpassword".into(),
            json!("<generated one-time password>"),
        );
    }
    format!(
        "{} {} {}",
        cmd.method(),
        Value::Array(cmd.args().to_vec()),
        Value::Object(o)
    )
}

fn host_command(fqdn: &str, otp: &Secret) -> IpaCommand {
    IpaCommand::new(
        "host_add",
        vec![json!(fqdn)],
        opts(&[
            ("description", json!(PRECREATED_HOST_DESCRIPTION)),
            ("userpassword", json!(otp.expose())),
            ("force", json!(true)),
        ]),
    )
}

fn getkeytab_line(args: &IpaSetupArgs, server: &str, principal: &str, path: &Path) -> String {
    format!(
        "{} -s {server} -p {principal} -k {}",
        args.getkeytab.display(),
        path.display()
    )
}

/// Runs the subcommand; returns the exit status (0 done, 1 failed, 2 usage).
pub fn run_cli(args: IpaSetupArgs) -> i32 {
    crate::logging::init(false, "human");
    let target = match resolve(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("novajoin ipa-setup: {e}");
            return 2;
        }
    };
    let steps = plan(&args, &target);
    let mut out = std::io::stdout();
    if args.dry_run {
        let _ = writeln!(
            out,
            "dry run: these calls would be made to {} (nothing is sent):",
            target.url
        );
        for s in &steps {
            let line = match s {
                Step::Create { cmd, .. } | Step::Members { cmd, .. } => show_call(cmd),
                Step::Host { fqdn, otp } => show_call(&host_command(fqdn, otp)),
                Step::Keytab { principal, path } => format!(
                    "unless {} already works for {principal}: {}; chown {} {}; chmod 600 {}",
                    path.display(),
                    getkeytab_line(&args, &target.server, principal, path),
                    args.keytab_owner,
                    path.display(),
                    path.display()
                ),
            };
            let _ = writeln!(out, "  {line}");
        }
        return 0;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("novajoin ipa-setup: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let mut summary = Summary::default();
    let result = runtime.block_on(run(&args, &target, steps, &mut out, &mut summary));
    if !summary.is_empty() {
        let _ = writeln!(out, "{}", summary.render());
    }
    match result {
        Ok(changes) => {
            if changes == 0 {
                let _ = writeln!(
                    out,
                    "IPA already has everything novajoin needs: nothing changed."
                );
            } else {
                let _ = writeln!(out, "done: {changes} change(s) made.");
            }
            0
        }
        Err(e) => {
            eprintln!("novajoin ipa-setup: {e}");
            match e {
                SetupError::Usage(_) => 2,
                _ => 1,
            }
        }
    }
}

fn read_password(args: &IpaSetupArgs) -> Result<Option<Secret>, SetupError> {
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SetupError::Usage(format!(
                "cannot read --password-file {}: {e}",
                path.display()
            ))
        })?;
        let first = text.lines().next().unwrap_or_default().to_string();
        return Ok(Some(Secret::new(first)));
    }
    Ok(std::env::var("IPA_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .map(Secret::new))
}

async fn run(
    args: &IpaSetupArgs,
    t: &Target,
    steps: Vec<Step>,
    out: &mut impl Write,
    summary: &mut Summary,
) -> Result<usize, SetupError> {
    let password = read_password(args)?;
    let auth = match &password {
        Some(p) => IpaAuth::password(args.principal.clone(), p.clone()),
        None => IpaAuth::kerberos(KerberosAuth::default_cache()),
    };
    let mut cfg = IpaClientConfig::new(t.url.clone(), auth);
    cfg.server_fqdn = Some(t.server.clone());
    cfg.realm = t.realm.clone();
    cfg.ca_file = (t.url.scheme() == "https").then(|| args.ca_file.clone());
    cfg.timeout = Duration::from_secs(60);
    let client = IpaClient::new(cfg).map_err(|e| SetupError::Usage(e.to_string()))?;
    let ipa_err = |what: &str| {
        let what = what.to_string();
        move |source| SetupError::Ipa {
            what,
            source: Box::new(source),
        }
    };
    let mut progress = Progress::new("novajoin ipa-setup", steps.len() + 1);
    progress.step(&format!("logging in to {}", t.server));
    client.login().await.map_err(ipa_err("logging in to IPA"))?;
    progress.println(
        out,
        &format!("logged in to {} as {}", t.server, args.principal),
    );

    let mut changes = 0;
    for step in steps {
        progress.step(&step.describe());
        match step {
            Step::Create { what, cmd } => match client.call(cmd).await {
                Ok(_) => {
                    changes += 1;
                    progress.println(out, &format!("created {what}"));
                    summary.row(what, "created");
                }
                Err(IpaError::DuplicateEntry(_)) => {
                    progress.println(out, &format!("{what} already exists"));
                    summary.row(what, "already present");
                }
                Err(e) => return Err(ipa_err(&format!("creating {what}"))(e)),
            },
            Step::Host { fqdn, otp } => match client.call(host_command(&fqdn, &otp)).await {
                Ok(_) => {
                    changes += 1;
                    progress.println(out, &format!("created host {fqdn}"));
                    summary.row(format!("host {fqdn}"), "created");
                    match &args.otp_file {
                        Some(path) => {
                            write_private(path, otp.expose().as_bytes()).map_err(|e| {
                                SetupError::Usage(format!(
                                    "host {fqdn} was created but its OTP could not be written to {}: {e}",
                                    path.display()
                                ))
                            })?;
                            progress.println(
                                out,
                                &format!(
                                    "one-time password for {fqdn} written to {}",
                                    path.display()
                                ),
                            );
                        }
                        None => {
                            progress.println(
                                out,
                                &format!("one-time password for {fqdn}: {}", otp.expose()),
                            );
                        }
                    }
                }
                Err(IpaError::DuplicateEntry(_)) => {
                    progress.println(
                        out,
                        &format!(
                            "host {fqdn} already exists; it keeps its one-time password (none issued)"
                        ),
                    );
                    summary.row(format!("host {fqdn}"), "already present");
                }
                Err(e) => return Err(ipa_err(&format!("creating host {fqdn}"))(e)),
            },
            Step::Members { what, cmd, kind } => {
                let result = client
                    .call(cmd)
                    .await
                    .map_err(ipa_err(&format!("adding {what}")))?
                    .member_result();
                let missing: BTreeSet<&str> = result
                    .real_failures()
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect();
                if result.completed > 0 {
                    changes += 1;
                    progress.println(
                        out,
                        &format!("added {} {kind}(s): {what}", result.completed),
                    );
                } else {
                    progress.println(out, &format!("{what} already in place"));
                }
                summary.row(
                    what.clone(),
                    match (result.completed, missing.len()) {
                        (0, 0) => "already present".to_string(),
                        (n, 0) => format!("{n} added"),
                        (0, m) => format!("{m} skipped (not in this IPA)"),
                        (n, m) => format!("{n} added, {m} skipped (not in this IPA)"),
                    },
                );
                if !missing.is_empty() {
                    tracing::warn!(
                        "{what}: this IPA has no {kind} named {}; skipped",
                        missing.iter().copied().collect::<Vec<_>>().join(", ")
                    );
                    if kind == "service" || kind == "privilege" {
                        return Err(SetupError::Ipa {
                            what: format!("adding {what}"),
                            source: Box::new(IpaError::Protocol(format!(
                                "IPA refused: {}",
                                result
                                    .real_failures()
                                    .iter()
                                    .map(|(n, why)| format!("{n}: {why}"))
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            ))),
                        });
                    }
                }
            }
            Step::Keytab { principal, path } => {
                // Its lines are collected and written past the bar.
                let mut lines = Vec::new();
                let fetched =
                    keytab(args, t, &principal, &path, password.as_ref(), &mut lines).await;
                let text = String::from_utf8_lossy(&lines);
                for line in text.lines() {
                    progress.println(out, line);
                }
                let row = format!("keytab {} ({principal})", path.display());
                match fetched {
                    Ok(true) => {
                        changes += 1;
                        summary.row(row, "fetched");
                    }
                    Ok(false) => summary.row(row, "already works, kept"),
                    Err(e) => {
                        summary.row(row, "FAILED");
                        return Err(e);
                    }
                }
            }
        }
    }
    progress.finish();
    Ok(changes)
}

/// Keeps a working keytab, else fetches one; returns whether it changed.
async fn keytab(
    args: &IpaSetupArgs,
    t: &Target,
    principal: &str,
    path: &Path,
    password: Option<&Secret>,
    out: &mut impl Write,
) -> Result<bool, SetupError> {
    let works = {
        let auth = KerberosAuth::with_keytab(principal, path);
        tokio::task::spawn_blocking(move || auth.check_credentials())
            .await
            .map_err(|e| SetupError::Keytab(e.to_string()))?
    };
    match works {
        Ok(()) => {
            let _ = writeln!(
                out,
                "keytab {} already works for {principal}; not fetched again (that would rotate its keys)",
                path.display()
            );
            return Ok(false);
        }
        Err(e) if path.exists() => {
            tracing::warn!(
                "the keytab {} does not work ({e}); fetching a new one",
                path.display()
            );
        }
        Err(_) => {}
    }
    let owner = lookup_user(&args.keytab_owner)?;
    // The administrator's ticket for ipa-getkeytab, in a private cache.
    let ccache_dir = tempfile::Builder::new()
        .prefix("novajoin-ipa-setup-")
        .tempdir()
        .map_err(|e| SetupError::Keytab(e.to_string()))?;
    let ccache = format!("FILE:{}", ccache_dir.path().join("admin.cc").display());
    if let Some(pw) = password {
        let admin = match (&t.realm, args.principal.contains('@')) {
            (Some(r), false) => format!("{}@{r}", args.principal),
            _ => args.principal.clone(),
        };
        let pw = pw.clone();
        let cc = ccache.clone();
        tokio::task::spawn_blocking(move || kinit_with_password(&admin, &pw, &cc))
            .await
            .map_err(|e| SetupError::Keytab(e.to_string()))?
            .map_err(|e| SetupError::Keytab(e.to_string()))?;
    }
    if path.exists() {
        std::fs::remove_file(path).map_err(|e| {
            SetupError::Keytab(format!("cannot remove the old {}: {e}", path.display()))
        })?;
    }
    let mut cmd = tokio::process::Command::new(&args.getkeytab);
    cmd.arg("-s")
        .arg(&t.server)
        .arg("-p")
        .arg(principal)
        .arg("-k")
        .arg(path)
        .stdin(std::process::Stdio::null());
    if password.is_some() {
        cmd.env("KRB5CCNAME", &ccache);
    }
    let output = cmd.output().await.map_err(|e| {
        SetupError::Keytab(format!(
            "cannot run {}: {e} (install the IPA client tools, or pass --getkeytab)",
            args.getkeytab.display()
        ))
    })?;
    if !output.status.success() {
        return Err(SetupError::Keytab(format!(
            "{} failed ({}): {}",
            getkeytab_line(args, &t.server, principal, path),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1)).map_err(|e| {
        SetupError::Keytab(format!(
            "cannot give {} to {}: {e}",
            path.display(),
            args.keytab_owner
        ))
    })?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| SetupError::Keytab(format!("chmod 600 {}: {e}", path.display())))?;
    let check = KerberosAuth::with_keytab(principal, path);
    tokio::task::spawn_blocking(move || check.check_credentials())
        .await
        .map_err(|e| SetupError::Keytab(e.to_string()))?
        .map_err(|e| SetupError::Keytab(format!("the new keytab does not work: {e}")))?;
    let _ = writeln!(
        out,
        "fetched the keytab of {principal} into {} (owner {}, mode 0600)",
        path.display(),
        args.keytab_owner
    );
    Ok(true)
}

/// uid and gid of a user name.
fn lookup_user(name: &str) -> Result<(u32, u32), SetupError> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| SetupError::Usage(format!("bad user name {name:?}")))?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we
    // copy the two numbers out at once (ipa-setup is single-threaded here).
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(SetupError::Usage(format!(
            "--keytab-owner: no user {name:?} on this host (the user novajoin runs as)"
        )));
    }
    // SAFETY: non-null result of getpwnam.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Writes a file readable only by its owner.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: IpaSetupArgs,
    }

    fn args(extra: &[&str]) -> IpaSetupArgs {
        let mut v = vec![
            "x",
            "--server",
            "ipa.example.com",
            "--realm",
            "EXAMPLE.COM",
            "--hostname",
            "uc.example.com",
            "--default-conf",
            "/nonexistent",
        ];
        v.extend_from_slice(extra);
        Cli::parse_from(v).args
    }

    #[test]
    fn plan_lists_every_documented_object_in_order() {
        let a = args(&[]);
        let t = resolve(&a).unwrap();
        let methods: Vec<String> = plan(&a, &t)
            .iter()
            .map(|s| match s {
                Step::Create { cmd, .. } | Step::Members { cmd, .. } => cmd.method().to_string(),
                Step::Host { .. } => "host_add".into(),
                Step::Keytab { principal, .. } => format!("keytab {principal}"),
            })
            .collect();
        assert_eq!(
            methods,
            [
                "service_add",
                "permission_add",
                "permission_add",
                "permission_add",
                "permission_add",
                "privilege_add",
                "privilege_add_permission",
                "role_add",
                "role_add_privilege",
                "role_add_member",
                "keytab nova/uc.example.com@EXAMPLE.COM"
            ]
        );
        assert_eq!(t.url.as_str(), "https://ipa.example.com/ipa/json");
    }

    #[test]
    fn precreate_adds_the_host_first_and_fetches_no_keytab() {
        let a = args(&["--precreate"]);
        let t = resolve(&a).unwrap();
        let p = plan(&a, &t);
        assert!(matches!(&p[0], Step::Host { fqdn, .. } if fqdn == "uc.example.com"));
        assert!(!p.iter().any(|s| matches!(s, Step::Keytab { .. })));
    }

    #[test]
    fn shown_calls_never_contain_the_otp() {
        let otp = Secret::new("0123456789abcdef0123456789abcdef");
        let line = show_call(&host_command("uc.example.com", &otp));
        assert!(!line.contains(otp.expose()), "{line}");
        assert!(line.starts_with("host_add [\"uc.example.com\"]"), "{line}");
    }

    #[test]
    fn a_short_hostname_is_refused() {
        let mut a = args(&[]);
        a.hostname = Some("uc".into());
        assert!(matches!(resolve(&a), Err(SetupError::Usage(_))));
    }
}
