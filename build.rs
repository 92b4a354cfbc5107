//! Compiles the small C shim that gives Redis-exact `long double` parsing, arithmetic and formatting.

fn main() {
    println!("cargo:rerun-if-changed=csrc/longdouble.c");
    cc::Build::new()
        .file("csrc/longdouble.c")
        .warnings(true)
        .compile("percore_longdouble");
}
