//! The History chart's library, uPlot, embedded in the binary: its dist files come from npm at
//! the version `assets/vendor/package-lock.json` pins (with its integrity hash), so its code is
//! not kept in this repository. `npm ci` runs there when `node_modules` is missing or holds
//! another version; the files are copied to OUT_DIR for `include_str!`.

use std::path::{Path, PathBuf};
use std::process::Command;

const VENDOR: &str = "assets/vendor";
const PACKAGE: &str = "uplot";
/// The dist files the panel serves, and their names in OUT_DIR.
const FILES: [(&str, &str); 2] = [
    ("dist/uPlot.iife.min.js", "uplot.js"),
    ("dist/uPlot.min.css", "uplot.css"),
];

fn main() {
    let vendor = Path::new(env!("CARGO_MANIFEST_DIR")).join(VENDOR);
    let lock = vendor.join("package-lock.json");
    println!("cargo:rerun-if-changed={}", lock.display());
    println!(
        "cargo:rerun-if-changed={}",
        vendor.join("package.json").display()
    );
    let pinned = version_in_lock(&lock);
    let package = vendor.join("node_modules").join(PACKAGE);
    if installed_version(&package).as_deref() != Some(pinned.as_str()) {
        npm_ci(&vendor);
    }
    match installed_version(&package) {
        Some(v) if v == pinned => {}
        v => fail(&format!(
            "npm ci in {} installed {PACKAGE} {} but package-lock.json pins {pinned}: remove its node_modules and build again",
            vendor.display(),
            v.as_deref().unwrap_or("nothing")
        )),
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (from, to) in FILES {
        let src = package.join(from);
        println!("cargo:rerun-if-changed={}", src.display());
        if let Err(e) = std::fs::copy(&src, out.join(to)) {
            fail(&format!("cannot copy {}: {e}", src.display()));
        }
    }
    println!("cargo:rustc-env=PWSYNC_UPLOT_VERSION={pinned}");
}

/// The version `package-lock.json` pins for the package.
fn version_in_lock(lock: &Path) -> String {
    let text = std::fs::read_to_string(lock)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", lock.display())));
    let json: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| fail(&format!("{} is not JSON: {e}", lock.display())));
    json["packages"][format!("node_modules/{PACKAGE}")]["version"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| fail(&format!("{} pins no {PACKAGE}", lock.display())))
}

fn installed_version(package: &Path) -> Option<String> {
    let text = std::fs::read_to_string(package.join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(json["version"].as_str()?.to_string())
}

fn npm_ci(vendor: &Path) {
    let status = Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(vendor)
        // A build script's stdout is for cargo's directives.
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!(
            "`npm ci` in {} failed ({s}): the panel's chart library comes from npm's registry; check the network or the npm configuration",
            vendor.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(&format!(
            "building pwsync-web needs npm (for the panel's chart library, pinned in {}): install Node.js and npm (Debian: apt-get install nodejs npm)",
            vendor.join("package-lock.json").display()
        )),
        Err(e) => fail(&format!("cannot run npm: {e}")),
    }
}

/// One line on stderr, and the build stops.
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
