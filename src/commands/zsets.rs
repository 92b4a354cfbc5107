//! The sorted-set command family: ZADD, ranges by rank/score/lex, set algebra, pops.
