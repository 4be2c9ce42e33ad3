//! `novajoin install`: sets up novajoin on a host, as `novajoin-install`
//! did: writes join.conf from flags (keeping whatever else the file holds),
//! places pipeline.toml and the cloud-config nova serves to instances, and
//! prints the nova.conf and neutron.conf changes to make. It never edits
//! nova's files: those belong to the deployment tool.
//!
//! Running it twice changes nothing the second time; `--dry-run` shows what
//! would change and writes nothing. Secrets are read from a file or the
//! environment (never from the command line, where `ps` shows them) and are
//! masked in everything printed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

/// The shipped first-boot script (`packaging/cloud-init/novajoin-enroll.sh`).
pub const ENROLL_SCRIPT: &str = include_str!("../../packaging/cloud-init/novajoin-enroll.sh");
/// The repository's default pipeline.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipeline.toml");
/// Where the cloud-config installs the script inside the instance.
pub const ENROLL_SCRIPT_PATH: &str = "/usr/local/sbin/novajoin-enroll";
/// File name of the StaticJSON vendordata file nova serves.
pub const CLOUD_CONFIG_FILE: &str = "cloud-config-novajoin.json";

/// The StaticJSON vendordata (`cloud-config-novajoin.json`): a cloud-config
/// that writes [`ENROLL_SCRIPT`] into the instance and runs it once.
pub fn cloud_config_json() -> String {
    let mut yaml = String::from(
        "#cloud-config\n# novajoin: enroll this instance into FreeIPA with the one-time password\n\
         # in vendor_data2.json (written by novajoin install; do not edit here).\n\
         write_files:\n",
    );
    let _ = write!(
        yaml,
        "  - path: {ENROLL_SCRIPT_PATH}\n    owner: root:root\n    permissions: '0700'\n    content: |\n"
    );
    for line in ENROLL_SCRIPT.lines() {
        if line.is_empty() {
            yaml.push('\n');
        } else {
            let _ = writeln!(yaml, "      {line}");
        }
    }
    let _ = writeln!(yaml, "runcmd:\n  - [{ENROLL_SCRIPT_PATH}]");
    let mut out = serde_json::to_string(&serde_json::json!({ "cloud-init": yaml }))
        .expect("a string map serializes");
    out.push('\n');
    out
}

/// nova's notification formats (`[notifications] notification_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NotificationFormat {
    /// Both kinds: the legacy ones on `notifications` stay for ceilometer
    /// and other consumers; novajoin reads the versioned ones.
    Both,
    /// `instance.*` events on `versioned_notifications` only (the legacy
    /// notifications other services consume stop).
    Versioned,
    /// `compute.instance.*` events on `notifications` (nova's default).
    Unversioned,
}

impl NotificationFormat {
    /// The value in nova.conf.
    fn nova_word(self) -> &'static str {
        match self {
            NotificationFormat::Both => "both",
            NotificationFormat::Versioned => "versioned",
            NotificationFormat::Unversioned => "unversioned",
        }
    }

    /// The value in join.conf: the one format the listener consumes. With
    /// `both`, only the versioned notifications are routed to novajoin's
    /// topic, so no event reaches the listener twice.
    fn listener_word(self) -> &'static str {
        match self {
            NotificationFormat::Both | NotificationFormat::Versioned => "versioned",
            NotificationFormat::Unversioned => "unversioned",
        }
    }
}

/// Options of `novajoin install`.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where join.conf, pipeline.toml and the cloud-config go.
    #[arg(long, value_name = "DIR", default_value = "/etc/novajoin")]
    pub config_dir: PathBuf,
    /// Keystone URL for the service user, e.g. https://keystone.example.com:5000/v3.
    #[arg(long, value_name = "URL")]
    pub keystone_auth_url: String,
    /// The keystone service user novajoin (and nova's vendordata calls) use.
    #[arg(long, value_name = "NAME", default_value = "nova")]
    pub nova_user: String,
    /// A file holding that user's password (first line).
    #[arg(long, value_name = "PATH")]
    pub nova_password_file: Option<PathBuf>,
    /// That user's password, from the environment only.
    #[arg(
        long,
        env = "NOVAJOIN_NOVA_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    pub nova_password: Option<String>,
    /// The service user's project.
    #[arg(long = "project", value_name = "NAME", default_value = "service")]
    pub project: String,
    /// The service user's domain.
    #[arg(long, value_name = "NAME", default_value = "Default")]
    pub user_domain_name: String,
    /// The project's domain.
    #[arg(long, value_name = "NAME", default_value = "Default")]
    pub project_domain_name: String,
    /// The IPA client configuration of this host (domain and host name).
    #[arg(long, value_name = "PATH", default_value = "/etc/ipa/default.conf")]
    pub ipa_conf: PathBuf,
    /// DNS domain of enrolled instances; default: the domain in --ipa-conf.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Which notifications nova is set to send; novajoin notify reads the
    /// versioned ones unless this is `unversioned`.
    #[arg(long, value_enum, default_value_t = NotificationFormat::Both)]
    pub notification_format: NotificationFormat,
    /// nova.conf to copy transport_url from when NOVAJOIN_TRANSPORT_URL is unset.
    #[arg(long, value_name = "PATH", default_value = "/etc/nova/nova.conf")]
    pub nova_conf: PathBuf,
    /// RabbitMQ URL for novajoin notify, from the environment only.
    #[arg(
        long,
        env = "NOVAJOIN_TRANSPORT_URL",
        hide_env_values = true,
        hide = true
    )]
    pub transport_url: Option<String>,
    /// join_listen: `unix:/path` behind httpd (the shipped vhost), or an IP.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "unix:/run/novajoin/join.sock"
    )]
    pub listen: String,
    /// join_listen_port, when --listen is an IP address.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// The URL nova calls (printed into the nova.conf changes);
    /// default https://<this host>:9090/v1/.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// [metrics] listen, e.g. 127.0.0.1:9191.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
}

/// Why the installation cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A flag is missing or wrong.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One join.conf setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Section.
    pub section: &'static str,
    /// Option.
    pub key: &'static str,
    /// Value.
    pub value: String,
    /// Masked when printed.
    pub secret: bool,
}

fn set(section: &'static str, key: &'static str, value: impl Into<String>) -> Setting {
    Setting {
        section,
        key,
        value: value.into(),
        secret: false,
    }
}

fn secret(section: &'static str, key: &'static str, value: impl Into<String>) -> Setting {
    Setting {
        secret: true,
        ..set(section, key, value)
    }
}

/// Sets `key = value` in `[section]` of an oslo.config INI text, keeping
/// every other line (comments included): an existing uncommented line for
/// the key is replaced, otherwise the line is added at the end of the
/// section, and a missing section is added at the end of the file.
pub fn set_ini_value(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header = |l: &str| {
        let t = l.trim();
        t.starts_with('[') && t.ends_with(']')
    };
    let wanted = format!("[{section}]");
    let new_line = format!("{key} = {value}");
    let Some(start) = lines.iter().position(|l| l.trim() == wanted) else {
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.push(wanted);
        lines.push(new_line);
        return lines.join("\n") + "\n";
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| header(l))
        .map(|i| start + 1 + i)
        .unwrap_or(lines.len());
    let is_key = |l: &str| {
        let t = l.trim_start();
        if t.starts_with('#') || t.starts_with(';') || l.starts_with([' ', '\t']) {
            return false;
        }
        t.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(['=', ':']))
    };
    if let Some(i) = (start + 1..end).find(|&i| is_key(&lines[i])) {
        lines[i] = new_line;
    } else {
        let mut at = end;
        while at > start + 1 && lines[at - 1].trim().is_empty() {
            at -= 1;
        }
        lines.insert(at, new_line);
    }
    lines.join("\n") + "\n"
}

/// The value of `key` in `[section]` of an INI text (first uncommented).
pub fn get_ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            current = t[1..t.len() - 1].trim().to_string();
            continue;
        }
        if current != section || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = t.split_once(['=', ':']) {
            if k.trim() == key {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

/// What happens to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileChange {
    /// The file does not exist yet.
    Create,
    /// The file exists with other content.
    Update,
    /// The file already has this content.
    Unchanged,
    /// The file exists and is the operator's: left as it is.
    Kept,
}

/// One file the installation writes.
#[derive(Clone, Debug)]
pub struct PlannedFile {
    /// Where.
    pub path: PathBuf,
    /// The content to write.
    pub content: String,
    /// Permission bits.
    pub mode: u32,
    /// What happens.
    pub change: FileChange,
    /// For join.conf: the settings that differ from the file's current ones.
    pub changed_settings: Vec<Setting>,
}

/// Everything `novajoin install` would do.
#[derive(Clone, Debug)]
pub struct InstallPlan {
    /// The files, in the order they are written.
    pub files: Vec<PlannedFile>,
    /// The nova.conf / neutron.conf changes to print.
    pub nova_changes: String,
}

fn read_optional(path: &Path) -> Result<Option<String>, InstallError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The settings join.conf gets from the flags.
pub fn join_settings(args: &InstallArgs, existing: &str) -> Result<Vec<Setting>, InstallError> {
    let ipa = read_optional(&args.ipa_conf)?;
    let domain = match (&args.domain, &ipa) {
        (Some(d), _) => d.clone(),
        (None, Some(text)) => get_ini_value(text, "global", "domain").ok_or_else(|| {
            InstallError::Usage(format!(
                "{} has no domain; pass --domain",
                args.ipa_conf.display()
            ))
        })?,
        (None, None) => {
            return Err(InstallError::Usage(format!(
            "{} not found: enroll this host in IPA first (ipa-client-install), or pass --domain",
            args.ipa_conf.display()
        )))
        }
    };
    let password = match (&args.nova_password_file, &args.nova_password) {
        (Some(file), _) => Some(
            std::fs::read_to_string(file)
                .map_err(io_err(file))?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        ),
        (None, Some(p)) => Some(p.clone()),
        (None, None) => None,
    }
    .filter(|p| !p.is_empty());
    let password = match password {
        Some(p) => p,
        None => get_ini_value(existing, "service_credentials", "password").ok_or_else(|| {
            InstallError::Usage(
                "the keystone service user's password is needed: pass --nova-password-file FILE \
                 or set NOVAJOIN_NOVA_PASSWORD"
                    .into(),
            )
        })?,
    };
    let transport_url = match &args.transport_url {
        Some(t) => Some(t.clone()),
        None => read_optional(&args.nova_conf)?
            .and_then(|t| get_ini_value(&t, "DEFAULT", "transport_url")),
    };

    let mut s = vec![set("DEFAULT", "join_listen", args.listen.clone())];
    let behind_proxy = args.listen.starts_with("unix:");
    if let Some(port) = args.port {
        if behind_proxy {
            return Err(InstallError::Usage(
                "--port applies to an IP --listen, not a unix: socket".into(),
            ));
        }
        s.push(set("DEFAULT", "join_listen_port", port.to_string()));
    }
    s.push(set("DEFAULT", "domain", domain));
    s.push(set(
        "DEFAULT",
        "api_paste_config",
        args.config_dir.join("pipeline.toml").display().to_string(),
    ));
    s.push(set(
        "DEFAULT",
        "notification_format",
        args.notification_format.listener_word(),
    ));
    s.push(set(
        "DEFAULT",
        "notifications_topic",
        "novajoin_notifications",
    ));
    if let Some(t) = transport_url {
        s.push(secret("DEFAULT", "transport_url", t));
    }
    for section in ["service_credentials", "keystone_authtoken"] {
        s.push(set(section, "auth_type", "password"));
        s.push(set(section, "auth_url", args.keystone_auth_url.clone()));
        s.push(set(section, "username", args.nova_user.clone()));
        s.push(secret(section, "password", password.clone()));
        s.push(set(section, "project_name", args.project.clone()));
        s.push(set(
            section,
            "user_domain_name",
            args.user_domain_name.clone(),
        ));
        s.push(set(
            section,
            "project_domain_name",
            args.project_domain_name.clone(),
        ));
    }
    s.push(set(
        "keystone_authtoken",
        "www_authenticate_uri",
        args.keystone_auth_url.clone(),
    ));
    if behind_proxy {
        // httpd sets X-Forwarded-*; only then may the service trust them.
        s.push(set(
            "oslo_middleware",
            "enable_proxy_headers_parsing",
            "true",
        ));
    }
    if let Some(m) = &args.metrics_listen {
        s.push(set("metrics", "listen", m.clone()));
    }
    Ok(s)
}

fn this_host(args: &InstallArgs) -> String {
    if let Ok(Some(text)) = read_optional(&args.ipa_conf) {
        if let Some(h) = get_ini_value(&text, "global", "host") {
            return h;
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(s) = std::str::from_utf8(&buf[..end]) {
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    "localhost".into()
}

/// What the nova.conf changes say, for the printout and the shipped snippet.
#[derive(Clone, Debug)]
pub struct NovaConfInputs {
    /// The URL nova POSTs to.
    pub public_url: String,
    /// Where the cloud-config was placed.
    pub cloud_config: PathBuf,
    /// The service user's keystone URL.
    pub keystone_auth_url: String,
    /// The service user.
    pub user: String,
    /// Its project.
    pub project: String,
    /// Its domain.
    pub user_domain_name: String,
    /// The project's domain.
    pub project_domain_name: String,
    /// The IPA DNS domain.
    pub domain: String,
    /// Which notifications to send.
    pub notification_format: NotificationFormat,
}

/// The nova.conf and neutron.conf settings novajoin needs, as text.
pub fn nova_conf_changes(i: &NovaConfInputs) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# nova.conf on every host running nova-api-metadata (the metadata service)\n\
         # and nova-compute (config drives). Restart those services afterwards.\n\
         [api]\n\
         vendordata_providers = StaticJSON,DynamicJSON\n\
         vendordata_jsonfile_path = {}\n\
         vendordata_dynamic_targets = join@{}\n\
         vendordata_dynamic_connect_timeout = 5\n\
         # IPA calls can take seconds; nova's default of 5 is too short.\n\
         vendordata_dynamic_read_timeout = 30",
        i.cloud_config.display(),
        i.public_url
    );
    if i.public_url.starts_with("https://") {
        let _ = writeln!(
            s,
            "# The CA that signed the httpd certificate of the novajoin vhost.\n\
             vendordata_dynamic_ssl_certfile = /etc/ipa/ca.crt"
        );
    }
    let _ = writeln!(
        s,
        "# Instances name themselves <hostname>.<dhcp_domain>; make that the IPA name.\n\
         dhcp_domain = {}\n\n\
         [vendordata_dynamic_auth]\n\
         auth_type = password\n\
         auth_url = {}\n\
         username = {}\n\
         password = <the password of {}>\n\
         project_name = {}\n\
         user_domain_name = {}\n\
         project_domain_name = {}\n\n\
         [notifications]\n\
         notify_on_state_change = vm_state\n\
         notification_format = {}",
        i.domain,
        i.keystone_auth_url,
        i.user,
        i.user,
        i.project,
        i.user_domain_name,
        i.project_domain_name,
        i.notification_format.nova_word()
    );
    match i.notification_format {
        NotificationFormat::Both => {
            let _ = writeln!(
                s,
                "# novajoin reads the versioned notifications; the legacy ones keep going\n\
                 # to `notifications` (ceilometer and other consumers), not to novajoin.\n\
                 versioned_notifications_topics = versioned_notifications,novajoin_notifications\n\n\
                 [oslo_messaging_notifications]\n\
                 driver = messagingv2"
            );
        }
        NotificationFormat::Versioned => {
            let _ = writeln!(
                s,
                "versioned_notifications_topics = versioned_notifications,novajoin_notifications\n\n\
                 [oslo_messaging_notifications]\n\
                 driver = messagingv2"
            );
        }
        NotificationFormat::Unversioned => {
            let _ = writeln!(
                s,
                "\n[oslo_messaging_notifications]\n\
                 driver = messagingv2\n\
                 topics = notifications,novajoin_notifications"
            );
        }
    }
    let _ = writeln!(
        s,
        "\n# neutron.conf on the neutron servers (floating IP DNS records).\n\
         [oslo_messaging_notifications]\n\
         driver = messagingv2\n\
         topics = notifications,novajoin_notifications"
    );
    s
}

fn planned(path: PathBuf, content: String, mode: u32, current: Option<&str>) -> PlannedFile {
    let change = match current {
        None => FileChange::Create,
        Some(c) if c == content => FileChange::Unchanged,
        Some(_) => FileChange::Update,
    };
    PlannedFile {
        path,
        content,
        mode,
        change,
        changed_settings: Vec::new(),
    }
}

/// Works out every change without touching anything.
pub fn plan(args: &InstallArgs) -> Result<InstallPlan, InstallError> {
    let join_path = args.config_dir.join("join.conf");
    let existing = read_optional(&join_path)?;
    let mut text = existing.clone().unwrap_or_else(|| {
        "# join.conf written by `novajoin install`. Every option, with its default:\n\
         # `novajoin config-sample`.\n"
            .to_string()
    });
    let settings = join_settings(args, existing.as_deref().unwrap_or(""))?;
    let mut changed = Vec::new();
    for st in &settings {
        if get_ini_value(&text, st.section, st.key).as_deref() != Some(st.value.as_str()) {
            changed.push(st.clone());
            text = set_ini_value(&text, st.section, st.key, &st.value);
        }
    }
    let mut join = planned(join_path, text, 0o640, existing.as_deref());
    join.changed_settings = changed;

    let pipeline_path = args.config_dir.join("pipeline.toml");
    let mut pipeline = planned(
        pipeline_path.clone(),
        DEFAULT_PIPELINE.to_string(),
        0o644,
        read_optional(&pipeline_path)?.as_deref(),
    );
    if pipeline.change == FileChange::Update {
        // The operator's pipeline: never overwritten.
        pipeline.change = FileChange::Kept;
    }
    let cc_path = args.config_dir.join(CLOUD_CONFIG_FILE);
    let cloud_config = planned(
        cc_path.clone(),
        cloud_config_json(),
        0o644,
        read_optional(&cc_path)?.as_deref(),
    );

    let domain = settings
        .iter()
        .find(|s| s.key == "domain")
        .map(|s| s.value.clone())
        .unwrap_or_default();
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://{}:9090/v1/", this_host(args)));
    let nova_changes = nova_conf_changes(&NovaConfInputs {
        public_url,
        cloud_config: cc_path,
        keystone_auth_url: args.keystone_auth_url.clone(),
        user: args.nova_user.clone(),
        project: args.project.clone(),
        user_domain_name: args.user_domain_name.clone(),
        project_domain_name: args.project_domain_name.clone(),
        domain,
        notification_format: args.notification_format,
    });
    Ok(InstallPlan {
        files: vec![join, pipeline, cloud_config],
        nova_changes,
    })
}

/// Writes `content` to `path` atomically (temp file + rename) with `mode`,
/// group `novajoin` when that group exists and we may set it.
fn write_file(path: &Path, content: &str, mode: u32) -> Result<(), InstallError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            // Created with the final mode so a secret is never world-readable.
            .mode(mode)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(content.as_bytes()).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io_err(&tmp))?;
    chgrp_novajoin(&tmp);
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn chgrp_novajoin(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(name) = std::ffi::CString::new("novajoin") else {
        return;
    };
    // SAFETY: getgrnam returns NULL or a pointer to static storage that we
    // read immediately; chown with uid -1 keeps the owner.
    unsafe {
        let gr = libc::getgrnam(name.as_ptr());
        if gr.is_null() {
            return;
        }
        let gid = (*gr).gr_gid;
        if let Ok(p) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
            let _ = libc::chown(p.as_ptr(), u32::MAX, gid);
        }
    }
}

/// Carries out `plan` (nothing when `dry_run`); returns the report text.
pub fn apply(plan: &InstallPlan, dir: &Path, dry_run: bool) -> Result<String, InstallError> {
    let mut out = String::new();
    if !dry_run && !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .map_err(io_err(dir))?;
        chgrp_novajoin(dir);
    }
    let verb = |c: FileChange| match (c, dry_run) {
        (FileChange::Create, true) => "would create",
        (FileChange::Create, false) => "created",
        (FileChange::Update, true) => "would update",
        (FileChange::Update, false) => "updated",
        (FileChange::Unchanged, _) => "unchanged",
        (FileChange::Kept, _) => "kept (differs from the shipped default; yours stays)",
    };
    for f in &plan.files {
        let _ = writeln!(out, "{}: {}", f.path.display(), verb(f.change));
        for st in &f.changed_settings {
            let shown = if st.secret { "********" } else { &st.value };
            let _ = writeln!(out, "    [{}] {} = {}", st.section, st.key, shown);
        }
        if !dry_run && matches!(f.change, FileChange::Create | FileChange::Update) {
            write_file(&f.path, &f.content, f.mode)?;
        }
    }
    if let Some(line) = status_link(dry_run) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "\nMake these changes yourself (novajoin install does not edit nova's files):\n\n{}",
        plan.nova_changes
    );
    let _ = writeln!(
        out,
        "Then:\n\
         * prepare IPA and fetch the keytab, as an IPA administrator:\n  \
         novajoin ipa-setup --keytab-owner novajoin   (keytab /etc/novajoin/krb5.keytab);\n\
         * import the glance metadef: glance md-namespace-import --file /usr/share/novajoin/freeipa.json;\n\
         * systemctl enable --now novajoin-server novajoin-notify, and reload httpd;\n\
         * check the deployment now and after every upgrade:\n  \
         novajoin-status upgrade check --nova-conf /etc/nova/nova.conf   (0 success, 1 warning, 2 failure)."
    );
    Ok(out)
}

/// The `novajoin-status` name beside this binary (a symlink to it), as
/// every OpenStack service ships `<service>-status`. Returns the report
/// line; a link that cannot be made is reported, not an error.
fn status_link(dry_run: bool) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    if exe.file_name()? != "novajoin" {
        return None;
    }
    let link = exe.with_file_name(crate::cli::status::STATUS_PROGRAM);
    let shown = format!("{} -> novajoin", link.display());
    let current = std::fs::read_link(&link).ok();
    if current.as_deref() == Some(Path::new("novajoin")) {
        return Some(format!("{shown}: unchanged"));
    }
    if link.symlink_metadata().is_ok() {
        return Some(format!(
            "{shown}: kept ({} exists and is not that link; novajoin-status upgrade check needs it)",
            link.display()
        ));
    }
    if dry_run {
        return Some(format!("{shown}: would create"));
    }
    Some(match std::os::unix::fs::symlink("novajoin", &link) {
        Ok(()) => format!("{shown}: created"),
        Err(e) => format!(
            "{shown}: not created ({e}); run: ln -s novajoin {}",
            link.display()
        ),
    })
}

/// Runs the subcommand.
pub fn run(args: &InstallArgs) -> i32 {
    let result = plan(args).and_then(|p| apply(&p, &args.config_dir, args.dry_run));
    match result {
        Ok(report) => {
            print!("{report}");
            0
        }
        Err(e) => {
            eprintln!("novajoin install: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_ini_value_replaces_adds_and_keeps_comments() {
        let text =
            "# top\n[DEFAULT]\n# join_listen = 1.2.3.4\njoin_listen=0.0.0.0\n\n[ipa]\nserver = x\n";
        let t = set_ini_value(text, "DEFAULT", "join_listen", "unix:/run/j.sock");
        assert_eq!(
            t,
            "# top\n[DEFAULT]\n# join_listen = 1.2.3.4\njoin_listen = unix:/run/j.sock\n\n[ipa]\nserver = x\n"
        );
        let t = set_ini_value(&t, "DEFAULT", "domain", "example.test");
        assert!(
            t.contains("join_listen = unix:/run/j.sock\ndomain = example.test\n\n[ipa]"),
            "{t}"
        );
        let t = set_ini_value(&t, "metrics", "listen", "127.0.0.1:9191");
        assert!(
            t.ends_with("server = x\n\n[metrics]\nlisten = 127.0.0.1:9191\n"),
            "{t}"
        );
        assert_eq!(
            get_ini_value(&t, "metrics", "listen").as_deref(),
            Some("127.0.0.1:9191")
        );
        assert_eq!(
            get_ini_value(&t, "DEFAULT", "join_listen").as_deref(),
            Some("unix:/run/j.sock")
        );
        // Same value again: same text.
        assert_eq!(set_ini_value(&t, "metrics", "listen", "127.0.0.1:9191"), t);
    }

    #[test]
    fn cloud_config_is_json_with_the_script() {
        let v: serde_json::Value = serde_json::from_str(&cloud_config_json()).unwrap();
        let cc = v["cloud-init"].as_str().unwrap();
        assert!(cc.starts_with("#cloud-config\n"));
        let y: serde_yaml::Value = serde_yaml::from_str(cc).unwrap();
        assert_eq!(
            y["write_files"][0]["content"].as_str().unwrap(),
            ENROLL_SCRIPT
        );
        assert_eq!(y["runcmd"][0][0].as_str().unwrap(), ENROLL_SCRIPT_PATH);
    }
}
