//! Token verification benchmarks; the code is in `benches/tokens.rs`.
