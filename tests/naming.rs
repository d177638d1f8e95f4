//! The naming rule against the 55 vectors confirmed on the real KATO server.

use katotune::kato::pattern::{
    events_repr, normalize_event, pattern_hash, symbol_count, wire_name,
};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    description: String,
    events: Vec<Vec<String>>,
    normalized_events: Vec<Vec<String>>,
    hashed: String,
    name: String,
    wire_name: String,
    server_stores: bool,
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string("tests/data/hash-vectors.json").unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn all_hash_vectors_give_the_servers_text_and_name() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 55);
    for v in &vectors {
        let mut events = v.events.clone();
        events.iter_mut().for_each(|e| normalize_event(e));
        assert_eq!(events, v.normalized_events, "{}", v.description);
        assert_eq!(events_repr(&events), v.hashed, "{}", v.description);
        assert_eq!(pattern_hash(&events), v.name, "{}", v.description);
        assert_eq!(wire_name(&events), v.wire_name, "{}", v.description);
        assert_eq!(
            symbol_count(&events) >= 2,
            v.server_stores,
            "{}",
            v.description
        );
    }
}

#[test]
fn nonprintable_table_matches_json() {
    #[derive(Deserialize)]
    struct Table {
        ranges: Vec<(u32, u32)>,
    }
    let text = std::fs::read_to_string("tests/data/py310-nonprintable-ranges.json").unwrap();
    let table: Table = serde_json::from_str(&text).unwrap();
    // Every range boundary must be escaped and its neighbours outside must not be.
    for (lo, hi) in table.ranges {
        for cp in [lo, hi] {
            if cp < 0x80 {
                continue;
            }
            if let Some(c) = char::from_u32(cp) {
                let repr = events_repr(&[vec![c.to_string()]]);
                assert!(repr.contains('\\'), "U+{cp:04X} should be escaped: {repr}");
            }
        }
        if let Some(c) = char::from_u32(hi + 1).filter(|_| hi + 1 >= 0x80) {
            let repr = events_repr(&[vec![c.to_string()]]);
            assert!(
                !repr.contains('\\'),
                "U+{:04X} should be raw: {repr}",
                hi + 1
            );
        }
    }
}

proptest! {
    #[test]
    fn renderer_never_panics_and_round_trips_simple_text(events in prop::collection::vec(prop::collection::vec(any::<String>(), 0..4), 0..4)) {
        let text = events_repr(&events);
        prop_assert!(text.starts_with('[') && text.ends_with(']'));
        prop_assert_eq!(pattern_hash(&events).len(), 40);
    }
}
