//! Real clients from PyPI, each in a virtualenv of its own under
//! `target/picket-venvs/<name>`, made once (a marker file records what was installed)
//! and reused by later runs. Needs `python3` with `venv` and PyPI.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// The Python of a virtualenv holding `requirements` (pip requirement specifiers), made
/// first when it is missing or holds something else.
pub fn venv(name: &str, requirements: &[&str]) -> PathBuf {
    let target = crate::target_dir();
    let dir = target.join("picket-venvs").join(name);
    let python = dir.join("bin").join("python");
    let marker = dir.join("picket-installed");
    let wanted = requirements.join("\n");
    if fs::read_to_string(&marker).is_ok_and(|had| had == wanted) && python.exists() {
        return python;
    }
    let _ = fs::remove_dir_all(&dir);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .expect("python3 runs (the tests need Python 3 with venv)");
    assert!(made.success(), "python3 -m venv {} failed", dir.display());
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(requirements)
        .output()
        .expect("pip runs");
    assert!(
        output.status.success(),
        "pip install {requirements:?} failed (PyPI must be reachable):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::write(&marker, wanted).expect("venv marker");
    python
}
