//! Decode + map throughput on AWS DMS records of the chat schema's message table
//! (~450-byte records with transaction details). One record = decode the JSON envelope,
//! build the change event, render keys, convert every column, check DynamoDB's limits.
//!
//!     cargo bench --bench decode_map
//!
//! For stable before/after numbers on a loaded machine, count instructions instead of time:
//! with `DECODE_MAP_PASSES=N` the binary skips criterion and runs N passes of each function
//! below, so callgrind can count one of them (instructions per record = Ir / (N · 10,000)):
//!
//!     DECODE_MAP_PASSES=3 valgrind --tool=callgrind --toggle-collect='*decode_map_pass*' \
//!         target/release/deps/decode_map-HASH

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use cutover::cdc::{self, Decoded, Format};
use cutover::mapping::{Mapped, Mapping};

#[path = "../examples/chat_service/chat.rs"]
mod chat;

/// The chat service's `message` mapping (examples/chat_service/cutover.toml), as `chat`; the
/// records carry an `internal_flags` column that is excluded.
fn mapping() -> Mapping {
    let text = chat::ChatConfig::named("chat")
        .only(&["message"])
        .table_key("message", "exclude", r#"["internal_flags"]"#)
        .text();
    cutover::Config::from_toml(&text)
        .expect("config")
        .mapping()
        .expect("valid mapping")
}

fn records(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"data":{{"id":{id},"conversation_id":{c},"sender_id":{s},"body":"message number {i} with some text in it","created_at":"2024-01-02T10:{m:02}:{sec:02}.{ms:03}Z","edited":0,"internal_flags":0}},"metadata":{{"timestamp":"2024-01-02T10:00:00.123456Z","record-type":"data","operation":"insert","partition-key-type":"primary-key","schema-name":"chat","table-name":"message","transaction-id":{tx},"transaction-record-id":1,"prev-transaction-id":{ptx},"prev-transaction-record-id":1,"commit-timestamp":"2024-01-02T10:00:00.000000Z","stream-position":"mysql-bin-changelog.000042:{pos}:0:{pos2}:{tx}:mysql-bin-changelog.000042:{pos}"}}}}"#,
                id = 1_000_000 + i,
                c = i % 1000,
                s = i % 97,
                m = (i / 60) % 60,
                sec = i % 60,
                ms = i % 1000,
                tx = 9_000_000_000u64 + i as u64,
                ptx = 8_999_999_999u64 + i as u64,
                pos = 4 + i * 300,
                pos2 = 64 + i * 300,
            )
            .into_bytes()
        })
        .collect()
}

/// Decode every record (the `decode` benchmark's body).
#[inline(never)]
fn decode_pass(recs: &[Vec<u8>]) {
    for r in recs {
        std::hint::black_box(cdc::decode(Some(r), Format::Dms).expect("decodes"));
    }
}

/// Decode and map every record (the `decode+map` benchmark's body).
#[inline(never)]
fn decode_map_pass(recs: &[Vec<u8>], mapping: &Mapping) {
    for r in recs {
        let Decoded::Change(ev) = cdc::decode(Some(r), Format::Auto).expect("decodes") else {
            panic!("not a change")
        };
        let Mapped::Writes(w) = mapping.map(&ev).expect("maps") else {
            panic!("unmapped")
        };
        std::hint::black_box(w);
    }
}

fn bench(c: &mut Criterion) {
    let mapping = mapping();
    let recs = records(10_000);
    if let Some(passes) = std::env::var("DECODE_MAP_PASSES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        for _ in 0..passes {
            decode_pass(&recs);
            decode_map_pass(&recs, &mapping);
        }
        std::process::exit(0);
    }
    let avg = recs.iter().map(Vec::len).sum::<usize>() / recs.len();
    let mut g = c.benchmark_group(format!("dms_{avg}B"));
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.bench_function("decode", |b| b.iter(|| decode_pass(&recs)));
    g.bench_function("decode+map", |b| {
        b.iter_batched(
            || (),
            |_| decode_map_pass(&recs, &mapping),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
