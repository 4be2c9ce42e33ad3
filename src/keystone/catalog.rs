//! The v3 service catalog carried by a token: endpoint lookup, and the v2
//! shape keystonemiddleware puts in `X-Service-Catalog`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One catalog entry (a service and its endpoints).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogService {
    /// Service type (`identity`, `image`, ...).
    #[serde(rename = "type")]
    pub service_type: String,
    /// Service name (`keystone`, `glance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Service id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its endpoints.
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// One endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEndpoint {
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// Region id (v3 `region_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_id: Option<String>,
    /// Region (older name of the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The URL.
    pub url: String,
    /// Endpoint id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl CatalogEndpoint {
    fn region_name(&self) -> Option<&str> {
        self.region_id.as_deref().or(self.region.as_deref())
    }
}

/// A token's catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Catalog(pub Vec<CatalogService>);

impl Catalog {
    /// The URL of the first endpoint of `service_type` with `interface`
    /// (`public`, `internal`, `admin`; `publicURL` style also accepted) in
    /// `region` when one is given.
    pub fn find(&self, service_type: &str, interface: &str, region: Option<&str>) -> Option<&str> {
        let interface = interface.trim_end_matches("URL");
        self.0
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| s.endpoints.iter())
            .find(|e| e.interface == interface && region.is_none_or(|r| e.region_name() == Some(r)))
            .map(|e| e.url.as_str())
    }

    /// Whether any service of this type is listed.
    pub fn has_type(&self, service_type: &str) -> bool {
        self.0.iter().any(|s| s.service_type == service_type)
    }

    /// The catalog in keystonemiddleware's `X-Service-Catalog` (v2) shape:
    /// per service, endpoints grouped by region as `{"region", "<iface>URL"}`,
    /// endpoint ids dropped.
    pub fn to_v2_json(&self) -> Value {
        let services: Vec<Value> = self
            .0
            .iter()
            .map(|s| {
                let mut by_region: Vec<(Option<String>, Map<String, Value>)> = Vec::new();
                for e in &s.endpoints {
                    let region = e.region_name().map(str::to_string);
                    let slot = match by_region.iter_mut().position(|(r, _)| *r == region) {
                        Some(i) => &mut by_region[i].1,
                        None => {
                            let mut m = Map::new();
                            if let Some(r) = &region {
                                m.insert("region".into(), Value::String(r.clone()));
                            }
                            by_region.push((region, m));
                            &mut by_region.last_mut().expect("just pushed").1
                        }
                    };
                    slot.insert(format!("{}URL", e.interface), Value::String(e.url.clone()));
                }
                let mut svc = Map::new();
                svc.insert("type".into(), Value::String(s.service_type.clone()));
                if let Some(n) = &s.name {
                    svc.insert("name".into(), Value::String(n.clone()));
                }
                svc.insert(
                    "endpoints".into(),
                    Value::Array(
                        by_region
                            .into_iter()
                            .map(|(_, m)| Value::Object(m))
                            .collect(),
                    ),
                );
                Value::Object(svc)
            })
            .collect();
        Value::Array(services)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Catalog {
        serde_json::from_value(serde_json::json!([
            {"type": "identity", "name": "keystone", "id": "s1", "endpoints": [
                {"id": "e1", "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": "http://pub:5000/v3"},
                {"id": "e2", "interface": "internal", "region_id": "RegionOne", "region": "RegionOne", "url": "http://int:5000/v3"},
                {"id": "e3", "interface": "internal", "region_id": "RegionTwo", "region": "RegionTwo", "url": "http://int2:5000/v3"}
            ]}
        ]))
        .unwrap()
    }

    #[test]
    fn finds_by_interface_and_region() {
        let c = sample();
        assert_eq!(
            c.find("identity", "internal", None),
            Some("http://int:5000/v3")
        );
        assert_eq!(
            c.find("identity", "internal", Some("RegionTwo")),
            Some("http://int2:5000/v3")
        );
        assert_eq!(
            c.find("identity", "publicURL", None),
            Some("http://pub:5000/v3")
        );
        assert_eq!(c.find("identity", "admin", None), None);
        assert_eq!(c.find("image", "public", None), None);
    }

    #[test]
    fn v2_shape_groups_by_region() {
        let v = sample().to_v2_json();
        assert_eq!(
            v,
            serde_json::json!([{"type": "identity", "name": "keystone", "endpoints": [
                {"region": "RegionOne", "publicURL": "http://pub:5000/v3", "internalURL": "http://int:5000/v3"},
                {"region": "RegionTwo", "internalURL": "http://int2:5000/v3"}
            ]}])
        );
    }
}
