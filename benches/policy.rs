//! Cost of one `join:create` decision on the default policy (registered
//! defaults, no file), with the context dictionary the filter builds.
//!
//! Run: `cargo bench --bench policy`

// criterion_group! declares an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use novajoin::context::RequestContext;
use novajoin::keystone::Identity;
use novajoin::policy::context::context_dict;
use novajoin::policy::{Enforcer, PolicyOptions, NOVAJOIN_DEFAULTS};

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("novajoin-bench-{}", std::process::id()));
    let enforcer = Enforcer::new(
        NOVAJOIN_DEFAULTS,
        PolicyOptions::file_only(&dir.join("absent.json")),
    )
    .expect("defaults load");
    let ctx = RequestContext {
        identity: std::sync::Arc::new(Identity {
            user_id: "2f9a0c3e5d2b4d3c8e3b9b8f6c1d7e4a".into(),
            user_name: "nova".into(),
            user_domain_id: Some("default".into()),
            project_id: Some("7c2d0e1f3a4b4c5d8e9f0a1b2c3d4e5f".into()),
            project_name: Some("service".into()),
            project_domain_id: Some("default".into()),
            roles: vec!["admin".into(), "member".into(), "reader".into()],
            ..Default::default()
        }),
        is_admin: false,
        request_id: "req-5f0c6f2e-5a1e-4b8e-9d6f-3c2b1a0f9e8d".into(),
        global_request_id: None,
    };
    let dict = context_dict(&ctx);
    assert!(enforcer.enforce("join:create", &dict, &dict).allowed());
    c.bench_function("join:create evaluation (default policy)", |b| {
        b.iter(|| {
            black_box(enforcer.enforce(
                black_box("join:create"),
                black_box(&dict),
                black_box(&dict),
            ))
        })
    });
    c.bench_function("join:create incl. building the context dict", |b| {
        b.iter(|| {
            let d = context_dict(black_box(&ctx));
            black_box(enforcer.enforce("join:create", &d, &d))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
