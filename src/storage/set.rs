//! A set of byte strings value, with Redis's compact and large encodings.

/// A set of byte strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetValue {}

impl SetValue {
    /// Number of elements.
    pub fn len(&self) -> usize {
        0
    }

    /// True when empty (Redis deletes empty collections).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The OBJECT ENCODING name.
    pub fn encoding_name(&self) -> &'static str {
        "intset"
    }

    /// Approximate heap bytes used.
    pub fn heap_size(&self) -> usize {
        0
    }
}
