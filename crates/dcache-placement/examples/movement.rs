//! Measures how many primaries move when one member joins or leaves, for 2 to 64 members of equal
//! weight: `cargo run --release -p dcache-placement --example movement`. Figures are quoted in
//! docs/HASHING.md.

use dcache_placement::{Member, Placement, SLOTS};

fn members(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| Member::new(format!("node-{i}"), 1))
        .collect()
}

fn moved(a: &Placement, b: &Placement) -> usize {
    (0..SLOTS as u16)
        .filter(|&s| a.primary(s).id != b.primary(s).id)
        .count()
}

fn main() {
    let (mut worst_join, mut sum_join, mut worst_leave) = (0f64, 0f64, 0f64);
    println!("members  join (× ideal)  leave (extra over own slots)");
    for n in 2..64 {
        let before = Placement::compute(&members(n), 1).expect("valid members");
        let after = Placement::compute(&members(n + 1), 1).expect("valid members");
        let join = moved(&before, &after) as f64 * (n + 1) as f64 / SLOTS as f64;
        let all = members(n + 1);
        let gone = &all[n.div_ceil(2)];
        let rest: Vec<Member> = all.iter().filter(|m| m.id != gone.id).cloned().collect();
        let without = Placement::compute(&rest, 1).expect("valid members");
        let own = (0..SLOTS as u16)
            .filter(|&s| after.primary(s).id == gone.id)
            .count();
        let leave = (moved(&after, &without) - own) as f64 / own as f64;
        println!("{:>7}  {join:>16.3}  {:>27.1} %", n + 1, leave * 100.0);
        worst_join = worst_join.max(join);
        sum_join += join;
        worst_leave = worst_leave.max(leave);
    }
    println!(
        "join: worst {worst_join:.3}×, mean {:.3}×; leave: worst +{:.1} %",
        sum_join / 62.0,
        worst_leave * 100.0
    );
}
