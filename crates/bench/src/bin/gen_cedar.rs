//! Writes the Cedar policy files in `crates/bench/cedar/` from the benchmark workloads.
//!
//! Run `cargo run -p mcp-guard-bench --bin gen_cedar` after changing a workload generator; the
//! test `committed_cedar_files_are_current` fails until the files are regenerated.

use std::path::Path;

use mcp_guard_bench::BoxError;
use mcp_guard_bench::abac::AbacWorkload;
use mcp_guard_bench::rbac::RbacWorkload;

fn main() -> Result<(), BoxError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar");
    std::fs::create_dir_all(&dir)?;
    let files = [
        ("rbac_10.cedar", RbacWorkload::small().cedar_policies()),
        ("rbac_1000.cedar", RbacWorkload::large().cedar_policies()),
        ("abac_100.cedar", AbacWorkload::standard().cedar_policies()),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
