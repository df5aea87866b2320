//! The header fields of a parsed head, kept as one copy of the head's bytes plus the place of
//! each name and value: two allocations per head, however many fields it has.

use std::ops::Range;

/// Header fields in order, as sent (names keep their case; lookups ignore it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    raw: Vec<u8>,
    spans: Vec<(Range<usize>, Range<usize>)>,
}

impl Fields {
    /// Copies `head` (the bytes httparse parsed) and records where each of `headers` lies in it.
    /// Every header must borrow from `head`, as httparse's do.
    pub(crate) fn from_parsed(head: &[u8], headers: &[httparse::Header<'_>]) -> Fields {
        let base = head.as_ptr() as usize;
        let span = |p: *const u8, len: usize| {
            let start = p as usize - base;
            start..start + len
        };
        let spans = headers
            .iter()
            .map(|h| {
                (
                    span(h.name.as_ptr(), h.name.len()),
                    span(h.value.as_ptr(), h.value.len()),
                )
            })
            .collect();
        Fields {
            raw: head.to_vec(),
            spans,
        }
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every field, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone {
        self.spans.iter().map(|(n, v)| {
            // Names were validated by httparse as tokens (ASCII), so they are valid UTF-8.
            (
                std::str::from_utf8(&self.raw[n.clone()]).unwrap_or(""),
                &self.raw[v.clone()],
            )
        })
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}
