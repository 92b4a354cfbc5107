//! The percore binary: parse the configuration, then run the server on every core.

fn main() {
    percore::server::early_init();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let config = match percore::config::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("percore: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = percore::server::run(config) {
        eprintln!("percore: {e}");
        std::process::exit(1);
    }
}
