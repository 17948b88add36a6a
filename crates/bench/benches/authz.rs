//! Authorization benchmarks: mcp-guard against Cedar on equivalent RBAC and ABAC workloads.
//!
//! Run with `cargo bench -p mcp-guard-bench --bench authz`. Each iteration decides one prebuilt
//! request, cycling through the workload's 64 requests (half allowed), so the time reported is the
//! time of one decision. Nothing is memoized: every iteration runs the full decision. Only the
//! decision is timed: the mcp-guard authorizer, resolved subjects and operations, and the Cedar
//! policy set, entities and requests are all built before measuring. The workloads, and why the
//! two sides are equivalent, are described in `src/rbac.rs` and `src/abac.rs`; `cargo test -p
//! mcp-guard-bench` checks that both engines return the same decision on every request.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_guard_bench::abac::AbacWorkload;
use mcp_guard_bench::rbac::RbacWorkload;
use mcp_guard_bench::{
    ABAC_100_CEDAR, CedarSetup, GuardSetup, RBAC_10_CEDAR, RBAC_1000_CEDAR, REQUESTS,
};

/// Times mcp-guard and Cedar on one workload, after checking both against the expected decisions.
fn compare(
    c: &mut Criterion,
    group: &str,
    (guard_name, guard): (&str, &GuardSetup),
    (cedar_name, cedar): (&str, &CedarSetup),
    expected: &[bool],
) {
    let ctx = guard.context();
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(
            guard.decide(&ctx, i),
            *want,
            "{group}/{guard_name} request {i}"
        );
        assert_eq!(cedar.decide(i), *want, "{group}/{cedar_name} request {i}");
    }
    let mut g = c.benchmark_group(group);
    g.bench_function(guard_name, |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % REQUESTS;
            guard.decide(&ctx, black_box(i))
        });
    });
    g.bench_function(cedar_name, |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % REQUESTS;
            cedar.decide(black_box(i))
        });
    });
    g.finish();
}

#[expect(
    clippy::expect_used,
    reason = "a benchmark cannot run without its workload; failing loudly is right"
)]
fn rbac(c: &mut Criterion) {
    for (w, cedar_text, guard_name, cedar_name) in [
        (
            RbacWorkload::small(),
            RBAC_10_CEDAR,
            "mcp-guard/10x5",
            "cedar/10",
        ),
        (
            RbacWorkload::large(),
            RBAC_1000_CEDAR,
            "mcp-guard/1000x10",
            "cedar/1000",
        ),
    ] {
        let guard = w.guard().expect("mcp-guard RBAC setup");
        let cedar = w.cedar(cedar_text).expect("Cedar RBAC setup");
        compare(
            c,
            "rbac",
            (guard_name, &guard),
            (cedar_name, &cedar),
            &w.expected,
        );
    }
}

#[expect(
    clippy::expect_used,
    reason = "a benchmark cannot run without its workload; failing loudly is right"
)]
fn abac(c: &mut Criterion) {
    let w = AbacWorkload::standard();
    let guard = w.guard().expect("mcp-guard ABAC setup");
    let cedar = w.cedar(ABAC_100_CEDAR).expect("Cedar ABAC setup");
    compare(
        c,
        "abac",
        ("mcp-guard/100", &guard),
        ("cedar/100", &cedar),
        &w.expected,
    );
}

fn config() -> Criterion {
    // Short runs: the machine has two cores and is shared.
    Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = rbac, abac
}
criterion_main!(benches);
