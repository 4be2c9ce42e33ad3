//! Who owns an IPA host: the binding between a host this service created
//! and the instance it was created for.
//!
//! Instance names, metadata and image properties are tenant input; only the
//! instance uuid and project id that nova sends with its service token (or
//! in its notifications) identify an owner. Every host the service creates
//! carries a [`HostBinding`] in the stock host attribute
//! [`BINDING_ATTRIBUTE`], and every later change to that host — OTP reset,
//! sub-host, service link, DNS record, delete — first reads the binding and
//! compares it with the instance the request or notification is about
//! ([`owner_of`]).
//!
//! Why `nshardwareplatform` (IPA's `--platform`): it is a stock attribute
//! of every IPA host (object class `nsHost`), so no schema extension is
//! needed; IPA exposes it in `host_add`, `host_mod`, `host_show` and as an
//! exact-match search option of `host_find`; it is single-valued in IPA's
//! API; and nothing in IPA, SSSD or ipa-client-install reads or writes it,
//! whereas `description`, `userclass`, `nsosversion` and `nshostlocation`
//! are already filled from the instance (the last three from tenant input).
//! An enrolled host cannot write its own entry except its keys,
//! certificates and SSH keys, so a guest cannot rewrite its binding.

pub use crate::ipa::command::BINDING_ATTRIBUTE;
use crate::ipa::{HostEntry, IpaClient, IpaCommand, IpaError};

/// Description given to the instance hosts this service creates; the
/// Python novajoin set the same text, which is how its hosts are known.
pub const HOST_DESCRIPTION: &str = "IPA host for OpenStack";

/// The marker that starts every binding value (and its format version).
const MARKER: &str = "novajoin/1";

/// The binding's key for the issue time of the instance host's OTP.
const OTP_ISSUED: &str = "otp-issued";

/// Which part of an instance a bound host is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostRole {
    /// The instance's own host, the one its guest enrolls as.
    Instance,
    /// A sub-host made for the instance's services (compact services,
    /// managed services on a name the instance may use).
    SubHost,
}

/// The owner recorded on a host: instance uuid, project id and, when the
/// deployment names one, the region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostBinding {
    /// nova's instance uuid.
    pub instance_id: String,
    /// The instance's project id, when nova sent one.
    pub project_id: Option<String>,
    /// `[DEFAULT] region_name` of the service that created the host.
    pub region: Option<String>,
    /// Instance host or sub-host.
    pub role: HostRole,
    /// When the instance host's current OTP was issued (unix seconds),
    /// while it has one that is neither used nor expired (see
    /// [`crate::otp_lifetime`]). Not part of the owner's identity.
    pub otp_issued: Option<u64>,
}

/// Why a binding cannot be made from a request's identifiers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The instance uuid is missing.
    #[error(
        "'instance-id' is required to enroll an instance: it identifies the owner of the IPA host"
    )]
    MissingInstance,
    /// An identifier holds characters that cannot be recorded unambiguously.
    #[error("'{field}' {value:?} is not a valid identifier (letters, digits, '-' and '_' only)")]
    BadIdentifier {
        /// Which identifier.
        field: &'static str,
        /// Its value.
        value: String,
    },
}

fn identifier(field: &'static str, value: &str) -> Result<String, BindingError> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(value.to_string())
    } else {
        Err(BindingError::BadIdentifier {
            field,
            value: value.to_string(),
        })
    }
}

impl HostBinding {
    /// The binding of `instance_id`'s own host. The identifiers come from
    /// nova (request or notification), never from tenant-written fields.
    pub fn for_instance(
        instance_id: Option<&str>,
        project_id: Option<&str>,
        region: Option<&str>,
    ) -> Result<Self, BindingError> {
        let instance_id = instance_id
            .filter(|i| !i.is_empty())
            .ok_or(BindingError::MissingInstance)?;
        Ok(Self {
            instance_id: identifier("instance-id", instance_id)?,
            project_id: project_id
                .filter(|p| !p.is_empty())
                .map(|p| identifier("project-id", p))
                .transpose()?,
            region: region
                .filter(|r| !r.is_empty())
                .map(|r| identifier("region_name", r))
                .transpose()?,
            role: HostRole::Instance,
            otp_issued: None,
        })
    }

    /// The same binding, recording that an OTP was issued at `unix_seconds`.
    pub fn with_otp_issued(&self, unix_seconds: u64) -> Self {
        Self {
            otp_issued: Some(unix_seconds),
            ..self.clone()
        }
    }

    /// The same owner, for one of the instance's sub-hosts (which never
    /// carry an OTP).
    pub fn sub_host(&self) -> Self {
        Self {
            role: HostRole::SubHost,
            otp_issued: None,
            ..self.clone()
        }
    }

    /// The same owner, for the instance's own host, without an OTP.
    pub fn instance_host(&self) -> Self {
        Self {
            role: HostRole::Instance,
            otp_issued: None,
            ..self.clone()
        }
    }

    /// The attribute value, e.g.
    /// `novajoin/1 instance=5b2d… project=8c3d… region=RegionOne otp-issued=1765148400`
    /// (`subhost-of=` instead of `instance=` for a sub-host). The owner's
    /// identity comes first, so the value of [`Self::instance_host`] is a
    /// prefix of the instance host's binding whatever its OTP state.
    pub fn to_attribute(&self) -> String {
        let key = match self.role {
            HostRole::Instance => "instance",
            HostRole::SubHost => "subhost-of",
        };
        let mut out = format!("{MARKER} {key}={}", self.instance_id);
        if let Some(p) = &self.project_id {
            out.push_str(" project=");
            out.push_str(p);
        }
        if let Some(r) = &self.region {
            out.push_str(" region=");
            out.push_str(r);
        }
        if let Some(t) = self.otp_issued {
            out.push_str(&format!(" {OTP_ISSUED}={t}"));
        }
        out
    }

    /// Reads an attribute value; `None` when it is not a binding of ours.
    pub fn parse(value: &str) -> Option<Self> {
        let mut words = value.split(' ');
        if words.next()? != MARKER {
            return None;
        }
        let (mut instance, mut role, mut project, mut region) = (None, None, None, None);
        let mut otp_issued = None;
        for word in words {
            let (key, v) = word.split_once('=')?;
            if key == OTP_ISSUED {
                let t = v
                    .parse::<u64>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))?;
                if otp_issued.replace(t).is_some() {
                    return None;
                }
                continue;
            }
            let slot = match key {
                "instance" | "subhost-of" => {
                    role = Some(if key == "instance" {
                        HostRole::Instance
                    } else {
                        HostRole::SubHost
                    });
                    &mut instance
                }
                "project" => &mut project,
                "region" => &mut region,
                _ => return None,
            };
            if slot.replace(identifier(key_name(key), v).ok()?).is_some() {
                return None;
            }
        }
        let role = role?;
        if role == HostRole::SubHost && otp_issued.is_some() {
            return None;
        }
        Some(Self {
            instance_id: instance?,
            project_id: project,
            region,
            role,
            otp_issued,
        })
    }

    /// Whether `other` names the same owner (instance, project, region),
    /// whatever the role.
    pub fn same_owner(&self, other: &HostBinding) -> bool {
        self.instance_id == other.instance_id
            && self.project_id == other.project_id
            && self.region == other.region
    }
}

fn key_name(key: &str) -> &'static str {
    match key {
        "project" => "project-id",
        "region" => "region_name",
        _ => "instance-id",
    }
}

/// What an existing IPA host is to one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostOwner {
    /// Bound to this instance: it may be changed for it.
    This(HostRole),
    /// Made by the Python novajoin (its description, no binding): the
    /// original's rules apply until an enrollment proves ownership.
    Legacy,
    /// Bound to another instance (or the same uuid in another project or
    /// region): never changed for this one.
    Other(HostBinding),
    /// Not made by this service (no binding, not the Python novajoin's
    /// description): never changed.
    Unmanaged,
}

impl HostOwner {
    /// A short reason for logs and 409 answers. It never names the other
    /// owner: the answer may reach a tenant.
    pub fn refusal(&self) -> &'static str {
        match self {
            HostOwner::This(_) => "belongs to this instance",
            HostOwner::Legacy => {
                "was created by the Python novajoin and its owner cannot be proven"
            }
            HostOwner::Other(_) => "belongs to another instance",
            HostOwner::Unmanaged => "was not created by novajoin",
        }
    }
}

/// Who owns `host`, seen from the instance `me`.
pub fn owner_of(host: &HostEntry, me: &HostBinding) -> HostOwner {
    match host.binding.as_deref() {
        Some(value) => match HostBinding::parse(value) {
            Some(b) if b.same_owner(me) => HostOwner::This(b.role),
            Some(b) => HostOwner::Other(b),
            // Something else in the attribute: an administrator's value.
            None => HostOwner::Unmanaged,
        },
        None if host.description.as_deref() == Some(HOST_DESCRIPTION) => HostOwner::Legacy,
        None => HostOwner::Unmanaged,
    }
}

/// The hosts bound to one instance, found by their binding (so a renamed
/// instance, project or domain cannot hide them).
#[derive(Clone, Debug, Default)]
pub struct BoundHosts {
    /// The instance's own host.
    pub instance: Option<HostEntry>,
    /// Its sub-hosts.
    pub sub_hosts: Vec<HostEntry>,
}

impl BoundHosts {
    /// Whether nothing is bound to the instance.
    pub fn is_empty(&self) -> bool {
        self.instance.is_none() && self.sub_hosts.is_empty()
    }
}

/// Finds every host bound to `owner`, in one batch: the instance host by
/// IPA's free-text search for its identity (its binding may go on with the
/// OTP's issue time, so an exact match cannot find it) keeping only the
/// entries whose own binding names this owner (the search also looks in
/// attributes a tenant writes), and the sub-hosts by an exact match.
pub async fn bound_hosts(ipa: &IpaClient, owner: &HostBinding) -> Result<BoundHosts, IpaError> {
    let cmds = [
        IpaCommand::host_find_text(&owner.instance_host().to_attribute()),
        IpaCommand::host_find_bound(&owner.sub_host().to_attribute()),
    ];
    let mut results = ipa.batch(&cmds).await?.into_iter();
    let entries = |r: Option<Result<crate::ipa::CommandOutput, IpaError>>| {
        r.unwrap_or_else(|| Err(IpaError::Protocol("batch answer missing".into())))
            .map(|out| {
                out.entries()
                    .iter()
                    .filter_map(|e| e.as_object().and_then(HostEntry::from_entry))
                    .collect::<Vec<_>>()
            })
    };
    let instance = entries(results.next())?
        .into_iter()
        .find(|e| owner_of(e, owner) == HostOwner::This(HostRole::Instance));
    let sub_hosts = entries(results.next())?;
    Ok(BoundHosts {
        instance,
        sub_hosts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> HostBinding {
        HostBinding::for_instance(
            Some("5b2d9c1e-7a4f-4e8b-9c3d-2f1a0b9e8d7c"),
            Some("8c3d8a0f2b6e4d3c9a5e1f0b7c6d5e4f"),
            Some("RegionOne"),
        )
        .unwrap()
    }

    fn host(description: Option<&str>, binding: Option<String>) -> HostEntry {
        HostEntry {
            fqdn: "vm1.example.test".into(),
            description: description.map(str::to_string),
            has_keytab: false,
            has_password: true,
            krbprincipalname: vec![],
            managedby_host: vec![],
            userclass: vec![],
            nsosversion: None,
            nshostlocation: None,
            binding,
            keys_changed_at: None,
        }
    }

    #[test]
    fn a_binding_reads_back_as_written() {
        let b = me();
        let text = b.to_attribute();
        assert_eq!(
            text,
            "novajoin/1 instance=5b2d9c1e-7a4f-4e8b-9c3d-2f1a0b9e8d7c \
             project=8c3d8a0f2b6e4d3c9a5e1f0b7c6d5e4f region=RegionOne"
        );
        assert_eq!(HostBinding::parse(&text), Some(b.clone()));
        let sub = b.sub_host();
        assert!(sub.to_attribute().contains(" subhost-of="));
        assert_eq!(HostBinding::parse(&sub.to_attribute()), Some(sub));
        let bare = HostBinding::for_instance(Some("i-1"), None, None).unwrap();
        assert_eq!(bare.to_attribute(), "novajoin/1 instance=i-1");
        assert_eq!(HostBinding::parse("novajoin/1 instance=i-1"), Some(bare));
    }

    #[test]
    fn the_otp_issue_time_follows_the_owner_and_is_not_part_of_it() {
        let b = me().with_otp_issued(1_765_148_400);
        let text = b.to_attribute();
        assert!(
            text.ends_with(" region=RegionOne otp-issued=1765148400"),
            "{text}"
        );
        assert!(text.starts_with(&me().instance_host().to_attribute()));
        assert_eq!(HostBinding::parse(&text), Some(b.clone()));
        assert!(b.same_owner(&me()));
        assert_eq!(b.instance_host(), me());
        assert_eq!(b.sub_host().otp_issued, None);
        for bad in [
            "novajoin/1 instance=a otp-issued=1 otp-issued=2",
            "novajoin/1 instance=a otp-issued=-1",
            "novajoin/1 instance=a otp-issued=+1",
            "novajoin/1 instance=a otp-issued=",
            "novajoin/1 subhost-of=a otp-issued=1",
        ] {
            assert_eq!(HostBinding::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn identifiers_that_could_forge_a_binding_are_refused() {
        for bad in ["a b", "a=b", "x\ny", "é"] {
            assert!(
                HostBinding::for_instance(Some(bad), None, None).is_err(),
                "{bad:?}"
            );
            assert!(
                HostBinding::for_instance(Some("i"), Some(bad), None).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            HostBinding::for_instance(Some(""), None, None),
            Err(BindingError::MissingInstance)
        );
        assert_eq!(
            HostBinding::for_instance(None, None, None),
            Err(BindingError::MissingInstance)
        );
        for forged in [
            "novajoin/1 instance=a instance=b",
            "novajoin/1 project=p",
            "novajoin/2 instance=a",
            "Lenovo T61",
            "novajoin/1 instance=a extra=1",
        ] {
            assert_eq!(HostBinding::parse(forged), None, "{forged}");
        }
    }

    #[test]
    fn ownership_is_decided_by_the_binding_not_the_name() {
        let mine = me().to_attribute();
        assert_eq!(
            owner_of(&host(Some(HOST_DESCRIPTION), Some(mine)), &me()),
            HostOwner::This(HostRole::Instance)
        );
        let other = HostBinding::for_instance(
            Some("00000000-0000-0000-0000-000000000000"),
            Some("8c3d8a0f2b6e4d3c9a5e1f0b7c6d5e4f"),
            Some("RegionOne"),
        )
        .unwrap();
        assert!(matches!(
            owner_of(
                &host(Some(HOST_DESCRIPTION), Some(other.to_attribute())),
                &me()
            ),
            HostOwner::Other(_)
        ));
        let mut elsewhere = me();
        elsewhere.region = Some("RegionTwo".into());
        assert!(matches!(
            owner_of(&host(None, Some(elsewhere.to_attribute())), &me()),
            HostOwner::Other(_)
        ));
        assert_eq!(
            owner_of(&host(Some(HOST_DESCRIPTION), None), &me()),
            HostOwner::Legacy
        );
        assert_eq!(owner_of(&host(None, None), &me()), HostOwner::Unmanaged);
        assert_eq!(
            owner_of(&host(Some("db server"), Some("Dell R640".into())), &me()),
            HostOwner::Unmanaged
        );
    }
}
