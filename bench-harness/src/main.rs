//! percore-bench: the load generator (built out in the benchmark issue).

fn main() {
    eprintln!("percore-bench: not built yet");
    std::process::exit(2);
}
