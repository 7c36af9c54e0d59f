//! PBKDF2-HMAC-SHA256 cost per iteration count: one offline badge check is one derive.
//!
//! Run: `cargo bench -p lanyard-protocol --bench kdf`. Figures go in docs/BENCHMARKS.md.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lanyard_protocol::kdf;

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("pbkdf2_sha256");
    group.sample_size(20);
    for iterations in [10_000u32, 50_000, 100_000, 200_000] {
        group.bench_function(format!("{iterations}_iterations"), |b| {
            b.iter(|| {
                black_box(kdf::derive(
                    black_box(b"0012345678"),
                    b"per-device-salt",
                    iterations,
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(kdf_benches, benches);
criterion_main!(kdf_benches);
