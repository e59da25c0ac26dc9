//! Make the Home Assistant venv the tests use (once, up front, e.g. from `.ci/run`) and print
//! its path: `cargo run -p pwsync-testkit --example ensure_ha`.
//! With `--reference-db` it also makes the cached reference recorder database.

fn main() {
    let t0 = std::time::Instant::now();
    match pwsync_testkit::ha::ensure_venv() {
        Ok(venv) => {
            eprintln!("HA venv ready in {:.1} s", t0.elapsed().as_secs_f64());
            if std::env::args().any(|a| a == "--reference-db") {
                match pwsync_testkit::ha::reference_sqlite_db_file() {
                    Ok(db) => eprintln!("reference recorder DB: {}", db.display()),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        std::process::exit(1);
                    }
                }
            }
            println!("{}", venv.display());
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
