//! Glob-style pattern matching identical to Redis's `stringmatchlen` (KEYS, SCAN MATCH, CONFIG GET).

/// True when `string` matches the glob `pattern` (`*`, `?`, `[...]`, `\x`), as Redis's stringmatchlen.
pub fn string_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let _ = (pattern, string, nocase);
    todo!("glob: being written")
}
