//! What the agent's benches share: the standard workload.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/bench-authlog-{lines}.log`: `../shared/bench/gen_authlog.py -n LINES --seed
/// 42`, written once.
pub fn standard_workload(lines: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join(format!("target/bench-authlog-{lines}.log"));
    if !out.exists() {
        let generator = root.join("../shared/bench/gen_authlog.py");
        let status = Command::new("python3")
            .arg(&generator)
            .args(["-n", lines, "--seed", "42", "-o"])
            .arg(&out)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "{} failed", generator.display());
    }
    out
}
