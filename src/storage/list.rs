//! A list of byte strings value, with Redis's compact and large encodings.
//!
//! The API below (`End`, `push`, `pop`, `len`) is what the blocking-command
//! framework relies on; the representation behind it is the list family's.

use std::collections::VecDeque;

/// Which end of a list (LEFT/RIGHT in Redis's syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The head (LPUSH, LPOP, LEFT).
    Head,
    /// The tail (RPUSH, RPOP, RIGHT).
    Tail,
}

/// A list of byte strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListValue {
    items: VecDeque<Box<[u8]>>,
}

impl ListValue {
    /// An empty list.
    pub fn new() -> Self {
        ListValue::default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty (Redis deletes empty collections).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `elem` at `end`.
    pub fn push(&mut self, end: End, elem: &[u8]) {
        match end {
            End::Head => self.items.push_front(elem.into()),
            End::Tail => self.items.push_back(elem.into()),
        }
    }

    /// Removes and returns the element at `end`.
    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        match end {
            End::Head => self.items.pop_front(),
            End::Tail => self.items.pop_back(),
        }
        .map(|b| b.into_vec())
    }

    /// The OBJECT ENCODING name.
    pub fn encoding_name(&self) -> &'static str {
        "listpack"
    }

    /// Approximate heap bytes used.
    pub fn heap_size(&self) -> usize {
        self.items.capacity() * 16 + self.items.iter().map(|b| b.len()).sum::<usize>()
    }
}
