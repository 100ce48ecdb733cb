//! Measures what a leave and a failure cost with replicas, epoch to epoch: the copies of slots to
//! make (members newly in a set) against the ideal (the copies the member held), and the balance
//! of every replica position afterwards (max/mean and mean/min over the members):
//! `cargo run --release -p dcache-placement --example replica_moves`. Figures are quoted in
//! docs/HASHING.md.

use dcache_placement::{Member, Placement, SLOTS};

fn members(ids: impl IntoIterator<Item = usize>) -> Vec<Member> {
    ids.into_iter()
        .map(|i| Member::new(format!("node-{i}"), 1))
        .collect()
}

/// Members in a slot's set in `b` that were not in it in `a`.
fn copies(a: &Placement, b: &Placement) -> usize {
    (0..SLOTS as u16)
        .map(|s| {
            b.replicas(s)
                .filter(|m| !a.replicas(s).any(|o| o.id == m.id))
                .count()
        })
        .sum()
}

/// The worst of max/mean and mean/min over the members, at any position.
fn imbalance(p: &Placement) -> f64 {
    let mean = SLOTS as f64 / p.members().len() as f64;
    (0..p.rf().min(p.members().len()))
        .flat_map(|position| p.counts(position))
        .map(|c| (c as f64 / mean).max(mean / c as f64))
        .fold(1.0, f64::max)
}

fn main() {
    println!("rf  members  change   copies (× ideal)  imbalance");
    for rf in [2, 3] {
        for n in 4..=16 {
            // Built as a cluster builds it: joins, one at a time.
            let mut placement = Placement::compute(&members(0..2), rf).expect("valid members");
            for k in 3..=n {
                placement = placement
                    .rebalance(&members(0..k), rf)
                    .expect("valid members");
            }
            let gone = format!("node-{}", n / 2);
            let held: usize = (0..SLOTS as u16)
                .filter(|&s| placement.replicas(s).any(|m| m.id == gone))
                .count();
            let rest: Vec<Member> = members(0..n).into_iter().filter(|m| m.id != gone).collect();
            let left = placement.rebalance(&rest, rf).expect("valid members");
            let cut = placement.without(&gone);
            let failed = cut.rebalance(&rest, rf).expect("valid members");
            for (change, from, to) in [("leave", &placement, &left), ("failure", &cut, &failed)] {
                println!(
                    "{rf:>2}  {n:>7}  {change:<7}  {:>16.3}  {:>9.3}",
                    copies(from, to) as f64 / held as f64,
                    imbalance(to)
                );
            }
        }
    }
}
