mod support;
use std::time::{Duration, Instant};
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch() {
    let ipa = support::ipa::start().await;
    let c = support::ipa::client(&ipa);
    c.ping().await.unwrap();
    for lat in [0u64, 50] {
        ipa.set_latency(Duration::from_millis(lat));
        for conc in [1usize, 4, 16] {
            let t = Instant::now();
            let mut v = Vec::new();
            for i in 0..conc {
                let c = c.clone();
                v.push(tokio::spawn(async move {
                    let t = Instant::now();
                    let h = novajoin::ipa::NewHost {
                        fqdn: format!("h{lat}-{conc}-{i}.example.test"),
                        description: None,
                        otp: None,
                        userclass: None,
                        nsosversion: None,
                        nshostlocation: None,
                        force: true,
                    };
                    c.host_add(&h).await.unwrap();
                    t.elapsed()
                }));
            }
            let mut each = Vec::new();
            for h in v {
                each.push(h.await.unwrap().as_millis());
            }
            eprintln!(
                "latency {lat} conc {conc}: total {:?} each {:?}",
                t.elapsed(),
                each
            );
        }
    }
}
