//! The list command family, including the blocking pops and moves.
