//! End-to-end: `dcache sim` on a generated workload, its output read back.

use std::process::Command;

/// Off a terminal the progress bar stays hidden: standard error holds only the seed line (no
/// carriage returns or escape codes), and standard output the table.
#[test]
fn sim_prints_its_table_and_no_progress_bar_off_a_terminal() {
    let out = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args([
            "sim",
            "--workload",
            "zipf:1.0:10000:200000",
            "--sizes",
            "100,1000",
            "--policies",
            "lru,s3fifo",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr, "workload zipf:1.0:10000:200000, seed 1\n");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "200000 requests; hit ratio in %", "{stdout}");
    assert_eq!(lines[1], "| size | lru | s3fifo | belady |", "{stdout}");
    assert!(lines[3].starts_with("| 100 | ") && lines[4].starts_with("| 1000 | "));
    assert_eq!(lines.len(), 5, "{stdout}");
}
