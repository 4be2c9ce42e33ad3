//! Consistent hashing of keys over memcached servers (ketama-style): each
//! server owns many points on a 32-bit circle, and a key belongs to the
//! server owning the first point at or after the key's hash.
//!
//! Adding or removing a server moves only the keys of the arcs it gains or
//! loses (about 1/n of them), and the ring depends only on the set of
//! server names, not their order: every replica that lists the same
//! servers sends an instance's keys to the same server, which the
//! cross-replica claim needs.

/// Points per server: enough for an even spread over a few servers.
const POINTS_PER_SERVER: u32 = 160;

/// The circle of points, each naming the index of its server.
#[derive(Debug, Clone)]
pub struct Ring {
    points: Vec<(u32, usize)>,
}

fn hash32(bytes: &[u8]) -> u32 {
    let h = blake3::hash(bytes);
    let b = h.as_bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Ring {
    /// A ring over `names` (server index = position in `names`). Empty
    /// `names` give an empty ring, which [`Ring::server_for`] cannot use.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        let mut points = Vec::with_capacity(names.len() * POINTS_PER_SERVER as usize);
        for (idx, name) in names.iter().enumerate() {
            for i in 0..POINTS_PER_SERVER {
                points.push((hash32(format!("{}-{i}", name.as_ref()).as_bytes()), idx));
            }
        }
        // Ties (vanishingly rare) are broken by name, not by position, so
        // that the order servers are listed in never matters.
        points.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| names[a.1].as_ref().cmp(names[b.1].as_ref()))
        });
        Ring { points }
    }

    /// The index of the server that owns `key`; `None` on an empty ring.
    pub fn server_for(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash32(key);
        let at = self.points.partition_point(|(p, _)| *p < h);
        Some(self.points[at % self.points.len()].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners<S: AsRef<str>>(names: &[S], keys: &[String]) -> Vec<String> {
        let ring = Ring::new(names);
        keys.iter()
            .map(|k| {
                names[ring.server_for(k.as_bytes()).unwrap()]
                    .as_ref()
                    .to_string()
            })
            .collect()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("instance-{i}")).collect()
    }

    #[test]
    fn an_empty_ring_owns_nothing_and_one_server_owns_everything() {
        assert_eq!(Ring::new::<&str>(&[]).server_for(b"k"), None);
        let ring = Ring::new(&["a:11211"]);
        assert!(keys(100)
            .iter()
            .all(|k| ring.server_for(k.as_bytes()) == Some(0)));
    }

    #[test]
    fn the_order_servers_are_listed_in_does_not_matter() {
        let k = keys(2000);
        assert_eq!(
            owners(&["a:11211", "b:11211", "c:11211"], &k),
            owners(&["c:11211", "a:11211", "b:11211"], &k)
        );
    }

    #[test]
    fn keys_spread_over_every_server() {
        let names = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"];
        let k = keys(30_000);
        let o = owners(&names, &k);
        for n in names {
            let share = o.iter().filter(|x| *x == n).count();
            // An even share is 10 000; 160 points each keep it within 25 %.
            assert!((7_500..12_500).contains(&share), "{n}: {share}");
        }
    }

    #[test]
    fn adding_a_server_moves_only_the_keys_it_takes() {
        let k = keys(30_000);
        let before = owners(&["a:1", "b:1", "c:1"], &k);
        let after = owners(&["a:1", "b:1", "c:1", "d:1"], &k);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                // A key only ever moves to the new server.
                assert_eq!(a, "d:1");
                moved += 1;
            }
        }
        // About a quarter move to the new server; a modulo scheme moves three quarters.
        assert!((4_500..10_500).contains(&moved), "{moved}");
    }
}
